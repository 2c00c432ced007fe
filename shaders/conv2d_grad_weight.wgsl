// Gradient of a convolution with respect to its weights, as a split reduction over chunks of
// output rows, register-tiled: invocation (chunk, g, o-tile, e-tile) accumulates a tile of
// 4 output channels x 8 weight entries, e = (ci, i, j) flattened, of group g:
//
//   partial[chunk, o, ci, i, j] = sum over rows (n, p) of the chunk, and q, of
//       grad_out[n, o, p, q] * in[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]
//
// with positions outside the input reading as zero (the padding). Each step loads 4 gradients and
// 8 inputs for 32 multiply-adds (software adapters pay per load, not per multiply-add), and
// shaders/reduce_partials.wgsl adds the chunks in a fixed order: no atomics, deterministic.
// `chunk_len` is the rows (n, p) per chunk, `reduce_len` all N * P rows. The tile loops are
// written out (drivers do not unroll naga's loops). Twin: `GRAD_WEIGHT_TILE` in src/gpu/kernels.rs.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

// One weight entry of the tile: its input channel offset, its tap's row and column reach, and
// whether it exists (the last tile may run past C/groups * kh * kw).
struct Entry {
    channel: u32,
    dy: i32,
    dx: i32,
    valid: bool,
}

fn entry(e: u32, k_len: u32, c0: u32) -> Entry {
    let taps = params.kernel_h * params.kernel_w;
    let ee = min(e, k_len - 1u);
    let j = ee % params.kernel_w;
    let i = (ee / params.kernel_w) % params.kernel_h;
    let ci = ee / taps;
    return Entry(
        c0 + ci,
        i32(i * params.dilation_h) - i32(params.pad_top),
        i32(j * params.dilation_w) - i32(params.pad_left),
        e < k_len,
    );
}

// The input under entry `t` at output position (n, p, q), or 0 in the padding.
fn load_x(t: Entry, n: u32, row0: i32, col0: i32) -> f32 {
    let row = row0 + t.dy;
    let col = col0 + t.dx;
    let inside = t.valid && row >= 0 && row < i32(params.in_h) && col >= 0 && col < i32(params.in_w);
    let idx = ((n * params.in_channels + t.channel) * params.in_h + u32(max(row, 0))) * params.in_w
        + u32(max(col, 0));
    return select(0.0, input[select(0u, idx, inside)], inside);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    let cg = params.in_channels / params.groups;
    let og = params.out_channels / params.groups;
    let k_len = cg * params.kernel_h * params.kernel_w;
    let o_tiles = (og + 3u) / 4u;
    let e_tiles = (k_len + 7u) / 8u;
    let tiles = params.groups * o_tiles * e_tiles;
    let tile = idx % tiles;
    let chunk = idx / tiles;
    let et = tile % e_tiles;
    let ot = (tile / e_tiles) % o_tiles;
    let g = tile / (e_tiles * o_tiles);
    // Output channels o0 .. o0+3 of group g (clamped to the group's last; masked when stored).
    let o0 = g * og + ot * 4u;
    let o_last = g * og + og - 1u;
    let e0 = et * 8u;
    let c0 = g * cg;

    let t0 = entry(e0 + 0u, k_len, c0);
    let t1 = entry(e0 + 1u, k_len, c0);
    let t2 = entry(e0 + 2u, k_len, c0);
    let t3 = entry(e0 + 3u, k_len, c0);
    let t4 = entry(e0 + 4u, k_len, c0);
    let t5 = entry(e0 + 5u, k_len, c0);
    let t6 = entry(e0 + 6u, k_len, c0);
    let t7 = entry(e0 + 7u, k_len, c0);

    let first = chunk * params.chunk_len;
    let last = min(first + params.chunk_len, params.reduce_len);
    let out_plane = params.out_h * params.out_w;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var r = first; r < last; r++) {
        let n = r / params.out_h;
        let p = r % params.out_h;
        let row0 = i32(p * params.stride_h);
        let row_base = (n * params.out_channels) * out_plane + p * params.out_w;
        let gy0 = row_base + min(o0 + 0u, o_last) * out_plane;
        let gy1 = row_base + min(o0 + 1u, o_last) * out_plane;
        let gy2 = row_base + min(o0 + 2u, o_last) * out_plane;
        let gy3 = row_base + min(o0 + 3u, o_last) * out_plane;
        for (var q = 0u; q < params.out_w; q++) {
            let g4 = vec4<f32>(grad_out[gy0 + q], grad_out[gy1 + q], grad_out[gy2 + q], grad_out[gy3 + q]);
            let col0 = i32(q * params.stride_w);
            acc0 += g4 * load_x(t0, n, row0, col0);
            acc1 += g4 * load_x(t1, n, row0, col0);
            acc2 += g4 * load_x(t2, n, row0, col0);
            acc3 += g4 * load_x(t3, n, row0, col0);
            acc4 += g4 * load_x(t4, n, row0, col0);
            acc5 += g4 * load_x(t5, n, row0, col0);
            acc6 += g4 * load_x(t6, n, row0, col0);
            acc7 += g4 * load_x(t7, n, row0, col0);
        }
    }
    // partial[chunk] has the weight's layout [O, Cg, kh, kw]: entry e of channel o at o*k_len + e.
    let base = chunk * params.out_channels * k_len;
    if ot * 4u + 0u < og && t0.valid { partial[base + (o0 + 0u) * k_len + e0 + 0u] = acc0.x; }
    if ot * 4u + 1u < og && t0.valid { partial[base + (o0 + 1u) * k_len + e0 + 0u] = acc0.y; }
    if ot * 4u + 2u < og && t0.valid { partial[base + (o0 + 2u) * k_len + e0 + 0u] = acc0.z; }
    if ot * 4u + 3u < og && t0.valid { partial[base + (o0 + 3u) * k_len + e0 + 0u] = acc0.w; }
    if ot * 4u + 0u < og && t1.valid { partial[base + (o0 + 0u) * k_len + e0 + 1u] = acc1.x; }
    if ot * 4u + 1u < og && t1.valid { partial[base + (o0 + 1u) * k_len + e0 + 1u] = acc1.y; }
    if ot * 4u + 2u < og && t1.valid { partial[base + (o0 + 2u) * k_len + e0 + 1u] = acc1.z; }
    if ot * 4u + 3u < og && t1.valid { partial[base + (o0 + 3u) * k_len + e0 + 1u] = acc1.w; }
    if ot * 4u + 0u < og && t2.valid { partial[base + (o0 + 0u) * k_len + e0 + 2u] = acc2.x; }
    if ot * 4u + 1u < og && t2.valid { partial[base + (o0 + 1u) * k_len + e0 + 2u] = acc2.y; }
    if ot * 4u + 2u < og && t2.valid { partial[base + (o0 + 2u) * k_len + e0 + 2u] = acc2.z; }
    if ot * 4u + 3u < og && t2.valid { partial[base + (o0 + 3u) * k_len + e0 + 2u] = acc2.w; }
    if ot * 4u + 0u < og && t3.valid { partial[base + (o0 + 0u) * k_len + e0 + 3u] = acc3.x; }
    if ot * 4u + 1u < og && t3.valid { partial[base + (o0 + 1u) * k_len + e0 + 3u] = acc3.y; }
    if ot * 4u + 2u < og && t3.valid { partial[base + (o0 + 2u) * k_len + e0 + 3u] = acc3.z; }
    if ot * 4u + 3u < og && t3.valid { partial[base + (o0 + 3u) * k_len + e0 + 3u] = acc3.w; }
    if ot * 4u + 0u < og && t4.valid { partial[base + (o0 + 0u) * k_len + e0 + 4u] = acc4.x; }
    if ot * 4u + 1u < og && t4.valid { partial[base + (o0 + 1u) * k_len + e0 + 4u] = acc4.y; }
    if ot * 4u + 2u < og && t4.valid { partial[base + (o0 + 2u) * k_len + e0 + 4u] = acc4.z; }
    if ot * 4u + 3u < og && t4.valid { partial[base + (o0 + 3u) * k_len + e0 + 4u] = acc4.w; }
    if ot * 4u + 0u < og && t5.valid { partial[base + (o0 + 0u) * k_len + e0 + 5u] = acc5.x; }
    if ot * 4u + 1u < og && t5.valid { partial[base + (o0 + 1u) * k_len + e0 + 5u] = acc5.y; }
    if ot * 4u + 2u < og && t5.valid { partial[base + (o0 + 2u) * k_len + e0 + 5u] = acc5.z; }
    if ot * 4u + 3u < og && t5.valid { partial[base + (o0 + 3u) * k_len + e0 + 5u] = acc5.w; }
    if ot * 4u + 0u < og && t6.valid { partial[base + (o0 + 0u) * k_len + e0 + 6u] = acc6.x; }
    if ot * 4u + 1u < og && t6.valid { partial[base + (o0 + 1u) * k_len + e0 + 6u] = acc6.y; }
    if ot * 4u + 2u < og && t6.valid { partial[base + (o0 + 2u) * k_len + e0 + 6u] = acc6.z; }
    if ot * 4u + 3u < og && t6.valid { partial[base + (o0 + 3u) * k_len + e0 + 6u] = acc6.w; }
    if ot * 4u + 0u < og && t7.valid { partial[base + (o0 + 0u) * k_len + e0 + 7u] = acc7.x; }
    if ot * 4u + 1u < og && t7.valid { partial[base + (o0 + 1u) * k_len + e0 + 7u] = acc7.y; }
    if ot * 4u + 2u < og && t7.valid { partial[base + (o0 + 2u) * k_len + e0 + 7u] = acc7.z; }
    if ot * 4u + 3u < og && t7.valid { partial[base + (o0 + 3u) * k_len + e0 + 7u] = acc7.w; }
}
