// The gradient of a padding that reads the input (reflect, replicate, circular), folded back:
// given the gradient `padded` [N, C, Hp, Wp] with respect to the padded input (Hp = H + top +
// bottom, Wp = W + left + right), the gradient with respect to the input [N, C, H, W] is
//
//   grad[n, c, h, w] = sum over padded rows y and columns x that read (h, w) of padded[n, c, y, x]
//
// where row y reads h when `pad_source(y - top, H) == h` (likewise for columns): its own position
// (h + top, w + left), plus the mirrored, edge or wrapped positions in the padding
// (`pad_candidate`, shaders/conv_params.wgsl). One element per invocation, its candidates added in
// order, so the sum does not depend on scheduling. `batch`, `in_channels`, `in_h`, `in_w`,
// `pad_top`, `pad_left` and `pad_mode` are the forward problem's; `out_h`, `out_w` are Hp, Wp.
// Twin: `Engine::grad_input_through_padding` in src/gpu/backward.rs.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> padded: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    let w = e % params.in_w;
    let h = (e / params.in_w) % params.in_h;
    let plane = e / (params.in_w * params.in_h);
    let rows = params.out_h - params.in_h + 1u;
    let cols = params.out_w - params.in_w + 1u;
    let base = plane * params.out_h * params.out_w;
    var sum = 0.0;
    for (var ky = 0u; ky < rows; ky++) {
        let y = pad_candidate(ky, h, params.pad_top, params.in_h, params.pad_mode);
        if y < 0 {
            continue;
        }
        for (var kx = 0u; kx < cols; kx++) {
            let x = pad_candidate(kx, w, params.pad_left, params.in_w, params.pad_mode);
            if x >= 0 {
                sum += padded[base + u32(y) * params.out_w + u32(x)];
            }
        }
    }
    grad[e] = sum;
}
