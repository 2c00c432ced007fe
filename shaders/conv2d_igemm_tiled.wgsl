// Implicit-GEMM convolution tiled through workgroup (shared) memory, for real GPUs.
//
// Per (image n, group g): out[o, pixel] = sum_k packed_weight[o, k] * im2col[k, pixel] + bias[o],
// k = (tap, ci), without an im2col buffer: each step stages a 64 x 16 weight tile and a 16 x 64
// gathered input tile in workgroup memory; each of the 256 invocations then accumulates a 4 x 4
// register tile (4 output channels x 4 pixels).
//
// Grid: workgroup_id.x = block of 64 output pixels, workgroup_id.y = block of 64 output channels
// within the group, workgroup_id.z = n * groups + g.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
// Packed weights, twin of shaders/pack_weights.wgsl: [groups][ceil(og/4)][K][4].
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Twin: `TILED_BLOCK` in src/gpu/kernels.rs (output channels and pixels per workgroup).
const BLOCK: u32 = 64u;
const BK: u32 = 16u;

// a_tile[k * 16 + o4]: 4 output channels per vec4; b_tile[k * 64 + pixel].
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = wid.z / params.groups;
    let g = wid.z % params.groups;
    let og = params.out_channels / params.groups;
    let cg = params.in_channels / params.groups;
    let taps = params.kernel_h * params.kernel_w;
    let k_len = taps * cg;
    let o4_tiles = (og + 3u) / 4u;
    let plane = params.in_h * params.in_w;
    let pixels = params.out_h * params.out_w;
    let in_base = (n * params.in_channels + g * cg) * plane;

    // The pixel this invocation gathers for the input tile.
    let load_col = li % BLOCK;
    let load_pix = wid.x * BLOCK + load_col;
    let load_ok = load_pix < pixels;
    let load_p = load_pix / params.out_w;
    let load_q = load_pix % params.out_w;
    let row0 = i32(load_p * params.stride_h) - i32(params.pad_top);
    let col0 = i32(load_q * params.stride_w) - i32(params.pad_left);

    // The 4 output channels this invocation stages for the weight tile.
    let a_o4 = wid.y * (BLOCK / 4u) + li % 16u;
    let a_ok = a_o4 < o4_tiles;
    let a_row = (g * o4_tiles + min(a_o4, o4_tiles - 1u)) * k_len;

    // The register tile this invocation computes.
    let tx = li % 16u;
    let ty = li / 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < k_len; k0 += BK) {
        let ka = k0 + li / 16u;
        var a = vec4<f32>(0.0);
        if a_ok && ka < k_len {
            a = weight[a_row + ka];
        }
        a_tile[li] = a;
        for (var s = 0u; s < 4u; s++) {
            let kl = li / BLOCK + 4u * s;
            let kb = k0 + kl;
            var v = 0.0;
            if load_ok && kb < k_len {
                let tap = kb / cg;
                let ci = kb % cg;
                let row = pad_source(row0 + i32((tap / params.kernel_w) * params.dilation_h), params.in_h, params.pad_mode);
                let col = pad_source(col0 + i32((tap % params.kernel_w) * params.dilation_w), params.in_w, params.pad_mode);
                if row >= 0 && row < i32(params.in_h) && col >= 0 && col < i32(params.in_w) {
                    v = input[in_base + ci * plane + u32(row) * params.in_w + u32(col)];
                }
            }
            b_tile[kl * BLOCK + load_col] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let w = a_tile[kk * 16u + ty];
            let base = kk * BLOCK + tx * 4u;
            let x = vec4<f32>(b_tile[base], b_tile[base + 1u], b_tile[base + 2u], b_tile[base + 3u]);
            acc0 += w.x * x;
            acc1 += w.y * x;
            acc2 += w.z * x;
            acc3 += w.w * x;
        }
        workgroupBarrier();
    }

    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let o = wid.y * BLOCK + ty * 4u + r;
        if o >= og {
            break;
        }
        let oc = g * og + o;
        var b = 0.0;
        if params.has_bias != 0u {
            b = bias[oc];
        }
        let out_base = (n * params.out_channels + oc) * pixels;
        for (var c = 0u; c < 4u; c++) {
            let pix = wid.x * BLOCK + tx * 4u + c;
            if pix < pixels {
                output[out_base + pix] = epilogue(rows[r][c] + b, out_base + pix);
            }
        }
    }
}
