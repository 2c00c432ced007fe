// Gradient of a convolution with respect to its weights, as a split reduction: invocation
// (chunk, o, ci, i, j) sums one chunk of output rows, and shaders/reduce_partials.wgsl adds the
// chunks in a fixed order (no atomics, so results are deterministic).
//
//   partial[chunk, o, ci, i, j] = sum over rows (n, p) of the chunk, and q, of
//       grad_out[n, o, p, q] * in[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]
//
// with positions outside the input reading as zero (the padding), g = o / (O / groups).
// `chunk_len` is the rows (n, p) per chunk, `reduce_len` all N * P rows.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    let cg = params.in_channels / params.groups;
    let og = params.out_channels / params.groups;
    let taps = params.kernel_h * params.kernel_w;
    let weights = params.out_channels * cg * taps;
    // idx = chunk * weights + (C-order index of (o, ci, i, j)).
    let e = idx % weights;
    let chunk = idx / weights;
    let j = e % params.kernel_w;
    let i = (e / params.kernel_w) % params.kernel_h;
    let ci = (e / taps) % cg;
    let o = e / (taps * cg);
    let c = (o / og) * cg + ci;

    let first = chunk * params.chunk_len;
    let last = min(first + params.chunk_len, params.reduce_len);
    let in_plane = params.in_h * params.in_w;
    let out_plane = params.out_h * params.out_w;
    // Columns q whose tap j lands inside the input: left <= q*sw + j*dw < W + left.
    let col_off = i32(j * params.dilation_w) - i32(params.pad_left);
    var acc = 0.0;
    for (var r = first; r < last; r++) {
        let n = r / params.out_h;
        let p = r % params.out_h;
        let row = i32(p * params.stride_h + i * params.dilation_h) - i32(params.pad_top);
        if row < 0 || row >= i32(params.in_h) {
            continue;
        }
        let x_row = (n * params.in_channels + c) * in_plane + u32(row) * params.in_w;
        let gy_row = (n * params.out_channels + o) * out_plane + p * params.out_w;
        for (var q = 0u; q < params.out_w; q++) {
            let col = i32(q * params.stride_w) + col_off;
            if col < 0 || col >= i32(params.in_w) {
                continue;
            }
            acc += grad_out[gy_row + q] * input[x_row + u32(col)];
        }
    }
    partial[idx] = acc;
}
