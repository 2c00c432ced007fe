// Plain stochastic gradient descent: param[e] -= lr * grad[e], lr = bitcast<f32>(`scalar_bits`).

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    param[e] -= bitcast<f32>(params.scalar_bits) * grad[e];
}
