// Gradient of a convolution with respect to its input, which is also the transposed convolution
// (PyTorch's conv_transpose2d): one invocation per input element, gathering every output it fed.
//
//   grad_in[n, c, h, w] = bias[c] + sum over o in c's group and taps (i, j) of
//                         grad_out[n, o, p, q] * weight[o, c mod Cg, i, j]
//   for p = (h + top - i*dh) / sh and q = (w + left - j*dw) / sw dividing exactly, inside [0, P) x [0, Q).
//
// The parameters describe the forward convolution: `in_*` is the input (this kernel's output),
// `out_*` the output (this kernel's input). A gather, not an atomic scatter: each element is
// written once, by one invocation, in a fixed order. Used for strides above 1; stride 1 runs as
// a forward convolution with flipped weights (src/gpu/backward.rs).

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> grad_out: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    // idx is the C-order flat index of (n, c, h, w) in the forward input.
    let w = idx % params.in_w;
    let t0 = idx / params.in_w;
    let h = t0 % params.in_h;
    let t1 = t0 / params.in_h;
    let c = t1 % params.in_channels;
    let n = t1 / params.in_channels;

    let cg = params.in_channels / params.groups;
    let og = params.out_channels / params.groups;
    let g = c / cg;
    let cl = c % cg;
    let taps = params.kernel_h * params.kernel_w;
    let plane = params.out_h * params.out_w;
    // Padded coordinates of this element; a tap (i, j) reaches it from output row
    // p = (h + top - i*dh) / sh when that divides exactly.
    let hp = i32(h + params.pad_top);
    let wp = i32(w + params.pad_left);

    var acc = 0.0;
    for (var i = 0u; i < params.kernel_h; i++) {
        let tp = hp - i32(i * params.dilation_h);
        if tp < 0 || u32(tp) % params.stride_h != 0u {
            continue;
        }
        let p = u32(tp) / params.stride_h;
        if p >= params.out_h {
            continue;
        }
        for (var j = 0u; j < params.kernel_w; j++) {
            let tq = wp - i32(j * params.dilation_w);
            if tq < 0 || u32(tq) % params.stride_w != 0u {
                continue;
            }
            let q = u32(tq) / params.stride_w;
            if q >= params.out_w {
                continue;
            }
            let tap = i * params.kernel_w + j;
            var gy = (n * params.out_channels + g * og) * plane + p * params.out_w + q;
            var wi = (g * og * cg + cl) * taps + tap;
            for (var ol = 0u; ol < og; ol++) {
                acc += grad_out[gy] * weight[wi];
                gy += plane;
                wi += cg * taps;
            }
        }
    }
    if params.has_bias != 0u {
        acc += bias[c];
    }
    grad_in[idx] = acc;
}
