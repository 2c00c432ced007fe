// Second pass of the split reductions: out[e] = sum over chunks c, in order, of partial[c * len + e],
// with len = `work_items` and the chunk count in `chunk_len`.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < params.chunk_len; c++) {
        acc += partial[c * params.work_items + e];
    }
    out[e] = acc;
}
