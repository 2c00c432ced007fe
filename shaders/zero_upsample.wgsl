// Spreads a tensor [N, C, P, Q] out to [N, C, (P-1)*sh + 1, (Q-1)*sw + 1] with zeros between its
// values: up[n, c, y, x] = in[n, c, y / sh, x / sw] where sh divides y and sw divides x, else 0.
// A strided input gradient is then a stride-1 one over this tensor, which runs on the fast
// forward kernels (src/gpu/backward.rs). `batch`, `out_channels`, `out_h`, `out_w` give the
// tensor spread out, `stride_h`, `stride_w` the spacing.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> up: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    let up_w = (params.out_w - 1u) * params.stride_w + 1u;
    let up_h = (params.out_h - 1u) * params.stride_h + 1u;
    let x = e % up_w;
    let y = (e / up_w) % up_h;
    let plane = e / (up_w * up_h);
    var value = 0.0;
    if x % params.stride_w == 0u && y % params.stride_h == 0u {
        let src = (plane * params.out_h + y / params.stride_h) * params.out_w + x / params.stride_w;
        value = input[src];
    }
    up[e] = value;
}
