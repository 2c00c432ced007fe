// Direct 2D convolution (cross-correlation), PyTorch nn.Conv2d semantics: one invocation per
// output element, covering batch, groups, stride, asymmetric padding in every padding mode,
// dilation and bias.
//
//   out[n, o, p, q] = bias[o] + sum_{ci, i, j} in[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]
//                                              * weight[o, ci, i, j],   g = o / (O / groups)
//
// It is the fallback for every shape and the oracle the faster kernels are checked against.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Twin: `Kernel::workgroup_size` in src/gpu/kernels.rs.
override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    // idx is the C-order flat index of (n, o, p, q) in the output.
    let q = idx % params.out_w;
    let t0 = idx / params.out_w;
    let p = t0 % params.out_h;
    let t1 = t0 / params.out_h;
    let o = t1 % params.out_channels;
    let n = t1 / params.out_channels;

    let cg = params.in_channels / params.groups;
    let og = params.out_channels / params.groups;
    let g = o / og;
    let taps = params.kernel_h * params.kernel_w;
    // Top-left tap in input coordinates; negative means it starts in the padding.
    let row0 = i32(p * params.stride_h) - i32(params.pad_top);
    let col0 = i32(q * params.stride_w) - i32(params.pad_left);
    let plane = params.in_h * params.in_w;

    var acc = 0.0;
    for (var ci = 0u; ci < cg; ci++) {
        let in_base = (n * params.in_channels + g * cg + ci) * plane;
        let w_base = (o * cg + ci) * taps;
        for (var i = 0u; i < params.kernel_h; i++) {
            let row = pad_source(row0 + i32(i * params.dilation_h), params.in_h, params.pad_mode);
            if row < 0 || row >= i32(params.in_h) {
                continue;
            }
            let in_row = in_base + u32(row) * params.in_w;
            let w_row = w_base + i * params.kernel_w;
            for (var j = 0u; j < params.kernel_w; j++) {
                let col = pad_source(col0 + i32(j * params.dilation_w), params.in_w, params.pad_mode);
                if col < 0 || col >= i32(params.in_w) {
                    continue;
                }
                acc += input[in_row + u32(col)] * weight[w_row + j];
            }
        }
    }
    if params.has_bias != 0u {
        acc += bias[o];
    }
    output[idx] = epilogue(acc, idx);
}
