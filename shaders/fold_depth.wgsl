// A 3D convolution as a 2D one: the depth axis folded into the channels and the batch.
//
// For input x [N, C, D, H, W], weight w [O, Cg, KD, KH, KW] (Cg = C / groups) and output depth OD,
// the 2D problem has the batch N*OD, the channels KD*C and the weight [O, KD*Cg, KH, KW]:
//
//   fold_input:    xf[n*OD + od, g*KD*Cg + a*Cg + ci, h, w] = x[n, g*Cg + ci, od*sd + a*dd - pf, h, w]
//                  (0 where that depth is outside [0, D): the zero padding of the depth axis)
//   fold_weight:   wf[o, a*Cg + ci, i, j] = w[o, ci, a, i, j]
//   unfold_output: y[n, o, od, p, q] = yf[n*OD + od, o, p, q]
//
// so that sum over (a, ci, i, j) of xf * wf is the 3D convolution's sum over (ci, a, i, j). The
// backward pass runs the same way, with the adjoints of the three:
//
//   fold_output:       gf[n*OD + od, o, p, q] = g[n, o, od, p, q]
//   unfold_weight:     dw[o, ci, a, i, j] = dwf[o, a*Cg + ci, i, j]
//   unfold_input_grad: dx[n, c, d, h, w] = sum over the taps a whose depth od*sd + a*dd - pf is d
//                      (od inside [0, OD)) of dxf[n*OD + od, g*KD*Cg + a*Cg + ci, h, w],
//                      in order of a, so the sum does not depend on scheduling.
// Sizes: `batch` N, `in_channels` C, `groups`, `in_d` D, `in_h`, `in_w`, `out_channels` O,
// `out_d` OD, `out_h`, `out_w`, `kernel_d` KD, `kernel_h`, `kernel_w`, `stride_d`, `pad_front`,
// `dilation_d`. Twin: `fold_uniforms` in src/gpu/conv3d.rs.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> source: array<f32>;
@group(0) @binding(3) var<storage, read_write> folded: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

fn flat_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_stride;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let plane = params.in_h * params.in_w;
    let cg = params.in_channels / params.groups;
    let folded_channels = params.kernel_d * params.in_channels;
    let hw = e % plane;
    let cf = (e / plane) % folded_channels;
    let m = e / (plane * folded_channels);
    let od = m % params.out_d;
    let n = m / params.out_d;
    let g = cf / (params.kernel_d * cg);
    let a = (cf / cg) % params.kernel_d;
    let ci = cf % cg;
    let d = i32(od * params.stride_d + a * params.dilation_d) - i32(params.pad_front);
    var value = 0.0;
    if d >= 0 && d < i32(params.in_d) {
        let c = g * cg + ci;
        value = source[((n * params.in_channels + c) * params.in_d + u32(d)) * plane + hw];
    }
    folded[e] = value;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let cg = params.in_channels / params.groups;
    let ij = e % taps;
    let k = (e / taps) % (params.kernel_d * cg);
    let o = e / (taps * params.kernel_d * cg);
    let a = k / cg;
    let ci = k % cg;
    folded[e] = source[((o * cg + ci) * params.kernel_d + a) * taps + ij];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    // e indexes the 3D output [N, O, OD, P, Q]; `source` is the folded [N*OD, O, P, Q].
    let plane = params.out_h * params.out_w;
    let pq = e % plane;
    let od = (e / plane) % params.out_d;
    let o = (e / (plane * params.out_d)) % params.out_channels;
    let n = e / (plane * params.out_d * params.out_channels);
    folded[e] = source[((n * params.out_d + od) * params.out_channels + o) * plane + pq];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    // e indexes the folded [N*OD, O, P, Q]; `source` is the 3D [N, O, OD, P, Q].
    let plane = params.out_h * params.out_w;
    let pq = e % plane;
    let o = (e / plane) % params.out_channels;
    let m = e / (plane * params.out_channels);
    let od = m % params.out_d;
    let n = m / params.out_d;
    folded[e] = source[((n * params.out_channels + o) * params.out_d + od) * plane + pq];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    // e indexes the 3D weight [O, Cg, KD, KH, KW]; `source` is the folded [O, KD*Cg, KH, KW].
    let taps = params.kernel_h * params.kernel_w;
    let cg = params.in_channels / params.groups;
    let ij = e % taps;
    let a = (e / taps) % params.kernel_d;
    let ci = (e / (taps * params.kernel_d)) % cg;
    let o = e / (taps * params.kernel_d * cg);
    folded[e] = source[((o * params.kernel_d + a) * cg + ci) * taps + ij];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_input_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    // e indexes the 3D input [N, C, D, H, W]; `source` is the folded [N*OD, KD*C, H, W].
    let plane = params.in_h * params.in_w;
    let cg = params.in_channels / params.groups;
    let hw = e % plane;
    let d = (e / plane) % params.in_d;
    let c = (e / (plane * params.in_d)) % params.in_channels;
    let n = e / (plane * params.in_d * params.in_channels);
    let g = c / cg;
    let ci = c % cg;
    let folded_channels = params.kernel_d * params.in_channels;
    var sum = 0.0;
    for (var a = 0u; a < params.kernel_d; a++) {
        let at = i32(d + params.pad_front) - i32(a * params.dilation_d);
        if at < 0 || u32(at) % params.stride_d != 0u {
            continue;
        }
        let od = u32(at) / params.stride_d;
        if od >= params.out_d {
            continue;
        }
        let cf = g * params.kernel_d * cg + a * cg + ci;
        sum += source[((n * params.out_d + od) * folded_channels + cf) * plane + hw];
    }
    folded[e] = sum;
}
