// Gradient of a convolution with respect to its bias, as a split reduction: invocation (chunk, o)
// sums grad_out[n, o, p, q] over the chunk's rows (n, p) and every q; shaders/reduce_partials.wgsl
// adds the chunks. `chunk_len` is the rows per chunk, `reduce_len` all N * P rows.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    let o = idx % params.out_channels;
    let chunk = idx / params.out_channels;
    let first = chunk * params.chunk_len;
    let last = min(first + params.chunk_len, params.reduce_len);
    let out_plane = params.out_h * params.out_w;
    var acc = 0.0;
    for (var r = first; r < last; r++) {
        let n = r / params.out_h;
        let p = r % params.out_h;
        let row = (n * params.out_channels + o) * out_plane + p * params.out_w;
        for (var q = 0u; q < params.out_w; q++) {
            acc += grad_out[row + q];
        }
    }
    partial[idx] = acc;
}
