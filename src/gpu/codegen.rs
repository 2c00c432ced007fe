//! Generates the bodies of the register-tiled shaders: the implicit-GEMM convolution
//! (shaders/conv2d_igemm_regtile.wgsl) for one kernel geometry, and the weight gradient
//! (shaders/conv2d_grad_weight.wgsl) for one tile.
//!
//! The register tile (`TM` output channels x 4 pixels), whether there is padding and, for few input
//! channels, the channel count become straight-line WGSL: every multiply-add of the tile, every
//! gather and every store is written out, since naga emits loops that CPU drivers do not unroll.
//! The loops over taps and channels stay loops over uniforms, so a handful of pipelines serve
//! every layer (each distinct pipeline costs a shader compile on the driver).

use std::fmt::Write as _;

use crate::spec::PaddingMode;

/// The uniform block's WGSL definition, prepended to every kernel's text.
pub const PARAMS_WGSL: &str = include_str!("../../shaders/conv_params.wgsl");

/// The fused epilogue's `epilogue` and `residual_at` functions, prepended to the forward
/// kernels after the uniform block.
pub const EPILOGUE_WGSL: &str = include_str!("../../shaders/epilogue.wgsl");

/// A kernel file's text with the uniform block's definition in front: what wgpu compiles.
pub fn with_params(file_text: &str) -> String {
    format!("{PARAMS_WGSL}\n{file_text}")
}

/// A forward kernel's text with the uniform block and the fused epilogue in front.
pub fn with_epilogue(file_text: &str) -> String {
    format!("{PARAMS_WGSL}\n{EPILOGUE_WGSL}\n{file_text}")
}

/// The compile-time specialization of one register-tiled kernel. Kernel size, stride and
/// dilation stay uniforms, so a handful of pipelines serve every layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegTileSpec {
    /// Output channels per invocation, a multiple of 4 (shared by all lanes of a workgroup).
    pub tm: u32,
    /// Pixels per invocation, one per slot: the planner uses 4, 8 or 16.
    pub tn: u32,
    /// Whether any side is padded (otherwise every tap of a valid pixel is inside the input).
    pub padded: bool,
    /// What the padding holds, when `padded`: zeros are masked off; the other modes are written
    /// out as the branch-free index arithmetic of that one mode (a valid pixel's taps then all
    /// read the input, so they need no mask).
    pub mode: PaddingMode,
    /// `Some(C/groups)` to unroll the channel loop too (few channels, e.g. an RGB stem).
    pub unrolled_channels: Option<u32>,
    /// `Some(subgroup size)` to load each weight once per subgroup and broadcast it to the lanes.
    pub subgroup: Option<u32>,
}

/// Channel counts up to this are unrolled into the text.
pub const MAX_UNROLLED_CHANNELS: u32 = 4;

const MARKER: &str = "    // @generated body\n";

/// The complete shader text for `spec`.
pub fn regtile_source(spec: &RegTileSpec) -> String {
    let template = include_str!("../../shaders/conv2d_igemm_regtile.wgsl");
    // The template is ours and has the marker and signature; a miss would fail the naga test.
    let text = with_epilogue(&template.replacen(MARKER, &regtile_body(spec), 1));
    match spec.subgroup {
        None => text,
        // naga takes subgroup operations without an `enable` (wgpu's SUBGROUP feature gates them).
        Some(_) => text.replacen(SIGNATURE, SUBGROUP_SIGNATURE, 1),
    }
}

const SIGNATURE: &str = "@builtin(local_invocation_id) lid: vec3<u32>) {";
const SUBGROUP_SIGNATURE: &str =
    "@builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {";

fn regtile_body(s: &RegTileSpec) -> String {
    let mut b = String::new();
    let (tm, tn) = (s.tm, s.tn);
    // `writeln!` into a String cannot fail.
    macro_rules! w {
        ($($arg:tt)*) => { let _ = writeln!(b, $($arg)*); };
    }
    let channels = s
        .unrolled_channels
        .map_or("looped".to_string(), |c| format!("{c} unrolled"));
    w!(
        "    // Generated for TM={tm}, TN={tn}, padded {} ({}), channels {channels}.",
        s.padded,
        s.mode
    );
    w!("    let n = wid.z / params.groups;");
    w!("    let g = wid.z % params.groups;");
    w!("    let og = params.out_channels / params.groups;");
    w!("    let cg = params.in_channels / params.groups;");
    w!("    let plane = params.in_h * params.in_w;");
    w!("    let pixels = params.out_h * params.out_w;");
    w!("    let k_len = params.kernel_h * params.kernel_w * cg;");
    w!("    let o4_tiles = (og + 3u) / 4u;");
    w!("    let in_base = (n * params.in_channels + g * cg) * plane;");
    w!("    // Packed-weight rows of this tile's output channels, 4 per row (clamped; extras are not stored).");
    let rows = tm / 4;
    match s.subgroup {
        None => {
            for r4 in 0..rows {
                w!("    let wrow{r4} = (g * o4_tiles + min(wid.y * {rows}u + {r4}u, o4_tiles - 1u)) * k_len;");
            }
        }
        Some(size) => {
            w!("    // Lane l loads rows l, l + {size}, ...; the other lanes get them by broadcast.");
            for j in 0..rows.div_ceil(size) {
                let first = j * size;
                let last = rows - 1;
                w!("    let lrow{j} = (g * o4_tiles + min(wid.y * {rows}u + min({first}u + lane, {last}u), o4_tiles - 1u)) * k_len;");
            }
        }
    }
    w!("    // This invocation's pixels, their validity and top-left input coordinates.");
    w!("    let pix_base = wid.x * (WORKGROUP_SIZE * {tn}u) + lid.x;");
    for t in 0..tn {
        w!("    let pix{t} = pix_base + {t}u * WORKGROUP_SIZE;");
        w!("    let ok{t} = pix{t} < pixels;");
        w!("    let row{t} = i32((pix{t} / params.out_w) * params.stride_h) - i32(params.pad_top);");
        w!("    let col{t} = i32((pix{t} % params.out_w) * params.stride_w) - i32(params.pad_left);");
    }
    for r in 0..tm {
        for t in 0..tn {
            w!("    var acc{r}_{t} = 0.0;");
        }
    }
    w!("    let nh = i32(params.in_h);");
    w!("    let nw = i32(params.in_w);");
    w!("    for (var i = 0u; i < params.kernel_h; i++) {{");
    w!("        for (var j = 0u; j < params.kernel_w; j++) {{");
    w!("            let dr = i32(i * params.dilation_h);");
    w!("            let dc = i32(j * params.dilation_w);");
    for t in 0..tn {
        let (r, c) = (format!("row{t} + dr"), format!("col{t} + dc"));
        match (s.padded, s.mode) {
            (true, PaddingMode::Reflect) => {
                // |i|, then mirrored at the far edge: min(i, 2(n-1) - i).
                w!("            let ar{t} = abs({r});");
                w!("            let r{t} = min(ar{t}, 2 * (nh - 1) - ar{t});");
                w!("            let ac{t} = abs({c});");
                w!("            let c{t} = min(ac{t}, 2 * (nw - 1) - ac{t});");
            }
            (true, PaddingMode::Replicate) => {
                w!("            let r{t} = clamp({r}, 0, nh - 1);");
                w!("            let c{t} = clamp({c}, 0, nw - 1);");
            }
            (true, PaddingMode::Circular) => {
                w!("            let pr{t} = {r};");
                w!("            let r{t} = pr{t} + select(0, nh, pr{t} < 0) - select(0, nh, pr{t} >= nh);");
                w!("            let pc{t} = {c};");
                w!("            let c{t} = pc{t} + select(0, nw, pc{t} < 0) - select(0, nw, pc{t} >= nw);");
            }
            _ => {
                w!("            let r{t} = {r};");
                w!("            let c{t} = {c};");
            }
        }
        if s.padded && s.mode == PaddingMode::Zeros {
            w!("            let m{t} = ok{t} && r{t} >= 0 && r{t} < i32(params.in_h) && c{t} >= 0 && c{t} < i32(params.in_w);");
        } else {
            w!("            let m{t} = ok{t};");
        }
        // Masked-off slots read the (valid) first element of the plane and use zero.
        w!("            let off{t} = in_base + select(0u, u32(r{t}) * params.in_w + u32(c{t}), m{t});");
    }
    w!("            let kb = (i * params.kernel_w + j) * cg;");
    match s.unrolled_channels {
        Some(c) => {
            for ci in 0..c {
                w!("            {{");
                w!("                let ci = {ci}u;");
                mac(&mut b, s, "                ");
                w!("            }}");
            }
        }
        None => {
            w!("            for (var ci = 0u; ci < cg; ci++) {{");
            mac(&mut b, s, "                ");
            w!("            }}");
        }
    }
    w!("        }}");
    w!("    }}");
    w!("    // Stores: output channel wid.y * {tm} + r, pixels pix_base + t * WORKGROUP_SIZE.");
    for r in 0..tm {
        w!("    {{");
        w!("        let o = wid.y * {tm}u + {r}u;");
        w!("        if o < og {{");
        w!("            let oc = g * og + o;");
        w!("            var b = 0.0;");
        w!("            if params.has_bias != 0u {{");
        w!("                b = bias[oc];");
        w!("            }}");
        w!("            let base = (n * params.out_channels + oc) * pixels;");
        for t in 0..tn {
            w!("            if ok{t} {{");
            w!("                output[base + pix{t}] = acc{r}_{t} + b + residual_at(base + pix{t});");
            w!("            }}");
        }
        w!("        }}");
        w!("    }}");
    }
    // The fused activation, as a loop over the stores just made (each read back by the lane
    // that wrote it): one call site, where one per store would multiply the kernel's size (and
    // the driver's compile time) by TM x TN.
    w!("    if params.activation != 0u {{");
    w!("        for (var r = 0u; r < {tm}u; r++) {{");
    w!("            let o = wid.y * {tm}u + r;");
    w!("            if o >= og {{");
    w!("                break;");
    w!("            }}");
    w!("            let base = (n * params.out_channels + g * og + o) * pixels;");
    w!("            for (var t = 0u; t < {tn}u; t++) {{");
    w!("                let pix = pix_base + t * WORKGROUP_SIZE;");
    w!("                if pix < pixels {{");
    w!("                    output[base + pix] = activate(output[base + pix]);");
    w!("                }}");
    w!("            }}");
    w!("        }}");
    w!("    }}");
    b
}

/// One k step: gather TN inputs (one per lane and slot), load TM weights (the same for every
/// lane, so the driver can broadcast them), TM x TN multiply-adds.
fn mac(b: &mut String, s: &RegTileSpec, indent: &str) {
    for t in 0..s.tn {
        let _ = writeln!(
            b,
            "{indent}let x{t} = select(0.0, input[off{t} + ci * plane], m{t});"
        );
    }
    match s.subgroup {
        None => {
            for r4 in 0..s.tm / 4 {
                let _ = writeln!(b, "{indent}let w{r4} = weight[wrow{r4} + kb + ci];");
            }
        }
        Some(size) => {
            for j in 0..(s.tm / 4).div_ceil(size) {
                let _ = writeln!(b, "{indent}let l{j} = weight[lrow{j} + kb + ci];");
            }
            for r4 in 0..s.tm / 4 {
                let _ = writeln!(
                    b,
                    "{indent}let w{r4} = subgroupBroadcast(l{}, {}u);",
                    r4 / size,
                    r4 % size
                );
            }
        }
    }
    for r in 0..s.tm {
        let lane = ["x", "y", "z", "w"][(r % 4) as usize];
        for t in 0..s.tn {
            let _ = writeln!(
                b,
                "{indent}acc{r}_{t} = fma(w{}.{lane}, x{t}, acc{r}_{t});",
                r / 4
            );
        }
    }
}

/// The weight-gradient shader (shaders/conv2d_grad_weight.wgsl) with a tile of `tile_o` output
/// channels (a multiple of 4) x `entries` weight entries `(ci, i, j)` written out: per step,
/// `tile_o` gradient loads and `entries` input loads feed `tile_o * entries` multiply-adds in vec4s.
pub fn grad_weight_source(tile_o: u32, entries: u32) -> String {
    let template = include_str!("../../shaders/conv2d_grad_weight.wgsl");
    with_params(&template.replacen(MARKER, &grad_weight_body(tile_o, entries), 1))
}

fn grad_weight_body(tile_o: u32, entries: u32) -> String {
    let mut b = String::new();
    macro_rules! w {
        ($($arg:tt)*) => { let _ = writeln!(b, $($arg)*); };
    }
    let (to, te, vecs) = (tile_o, entries, tile_o / 4);
    w!("    // Generated: {to} output channels x {te} weight entries per invocation.");
    w!("    let idx = gid.x + gid.y * params.row_stride;");
    w!("    if idx >= params.work_items {{");
    w!("        return;");
    w!("    }}");
    w!("    let cg = params.in_channels / params.groups;");
    w!("    let og = params.out_channels / params.groups;");
    w!("    let k_len = cg * params.kernel_h * params.kernel_w;");
    w!("    let o_tiles = (og + {}u) / {to}u;", to - 1);
    w!("    let e_tiles = (k_len + {}u) / {te}u;", te - 1);
    w!("    let tiles = params.groups * o_tiles * e_tiles;");
    w!("    let tile = idx % tiles;");
    w!("    let chunk = idx / tiles;");
    w!("    let et = tile % e_tiles;");
    w!("    let ot = (tile / e_tiles) % o_tiles;");
    w!("    let g = tile / (e_tiles * o_tiles);");
    w!("    // Output channels o0.. of group g (loads clamped to the group's last; stores masked).");
    w!("    let o0 = g * og + ot * {to}u;");
    w!("    let o_last = g * og + og - 1u;");
    w!("    let e0 = et * {te}u;");
    w!("    let c0 = g * cg;");
    for e in 0..te {
        w!("    let t{e} = entry(e0 + {e}u, k_len, c0);");
    }
    w!("    let first = chunk * params.chunk_len;");
    w!("    let last = min(first + params.chunk_len, params.reduce_len);");
    w!("    let out_plane = params.out_h * params.out_w;");
    for v in 0..vecs {
        for e in 0..te {
            w!("    var acc{v}_{e} = vec4<f32>(0.0);");
        }
    }
    w!("    for (var r = first; r < last; r++) {{");
    w!("        let n = r / params.out_h;");
    w!("        let p = r % params.out_h;");
    w!("        let row0 = i32(p * params.stride_h);");
    w!("        let row_base = (n * params.out_channels) * out_plane + p * params.out_w;");
    for a in 0..to {
        w!("        let gy{a} = row_base + min(o0 + {a}u, o_last) * out_plane;");
    }
    w!("        for (var q = 0u; q < params.out_w; q++) {{");
    w!("            let col0 = i32(q * params.stride_w);");
    for v in 0..vecs {
        let loads: Vec<String> = (0..4)
            .map(|a| format!("grad_out[gy{} + q]", 4 * v + a))
            .collect();
        w!("            let g{v} = vec4<f32>({});", loads.join(", "));
    }
    for e in 0..te {
        w!("            let x{e} = load_x(t{e}, n, row0, col0);");
        for v in 0..vecs {
            w!("            acc{v}_{e} += g{v} * x{e};");
        }
    }
    w!("        }}");
    w!("    }}");
    w!("    // partial[chunk] has the weight's layout [O, Cg, kh, kw]: entry e of channel o at o*k_len + e.");
    w!("    let base = chunk * params.out_channels * k_len;");
    for v in 0..vecs {
        for e in 0..te {
            for (a, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                let o = 4 * v + a as u32;
                w!("    if ot * {to}u + {o}u < og && t{e}.valid {{ partial[base + (o0 + {o}u) * k_len + e0 + {e}u] = acc{v}_{e}.{lane}; }}");
            }
        }
    }
    b
}
