// A 3D convolution as a 2D one: the depth axis folded into the channels and the batch.
//
// For input x [N, C, D, H, W], weight w [O, Cg, KD, KH, KW] (Cg = C / groups) and output depth OD,
// the 2D problem has the batch N*OD, the channels KD*C and the weight [O, KD*Cg, KH, KW]:
//
//   fold_input:    xf[n*OD + od, g*KD*Cg + a*Cg + ci, h, w] = x[n, g*Cg + ci, od*sd + a*dd - pf, h, w]
//                  (where that depth is outside [0, D), the depth padding: 0, or the depth
//                  `pad_source` names under a padding mode)
//   fold_weight:   wf[o, a*Cg + ci, i, j] = w[o, ci, a, i, j]
//   unfold_output: y[n, o, od, p, q] = act(yf[n*OD + od, o, p, q] + r[n, o, od, p, q])
//                  (the fused epilogue: `activate`, and the residual r when `has_residual`)
//
// so that sum over (a, ci, i, j) of xf * wf is the 3D convolution's sum over (ci, a, i, j). The
// backward pass runs the same way, with the adjoints of the three:
//
//   fold_output:       gf[n*OD + od, o, p, q] = g[n, o, od, p, q]
//   unfold_weight:     dw[o, ci, a, i, j] = dwf[o, a*Cg + ci, i, j]
//   unfold_input_grad: dx[n, c, d, h, w] = bias[c] (when has_bias) + sum over the taps a
//                      whose depth od*sd + a*dd - pf reads d (is d, or under a padding mode a padded depth that reads d; od
//                      inside [0, OD)) of dxf[n*OD + od, g*KD*Cg + a*Cg + ci, h, w],
//                      in order, so the sum does not depend on scheduling.
// Each invocation moves one row (a width's worth of elements, or one kernel plane), so the index
// arithmetic (divisions, which CPU adapters do lane by lane) is paid once per row.
// Sizes: `batch` N, `in_channels` C, `groups`, `in_d` D, `in_h`, `in_w`, `out_channels` O,
// `out_d` OD, `out_h`, `out_w`, `kernel_d` KD, `kernel_h`, `kernel_w`, `stride_d`, `pad_front`,
// `dilation_d`. Twin: `fold_uniforms` in src/gpu/conv3d.rs.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> source: array<f32>;
// The second operand of the kernels that take two: unfold_output's fused-epilogue residual,
// of the 3D output's shape; unfold_input_grad's bias [C], added when `has_bias` (a transposed
// 3D convolution's; src/gpu/transposed_nd.rs).
@group(0) @binding(1) var<storage, read> second: array<f32>;
@group(0) @binding(3) var<storage, read_write> folded: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

fn flat_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.row_stride;
}

// One row of xf [N*OD, KD*C, H, W] per invocation: e = (m * KD*C + cf) * H + h, m counted from
// `first_image` (a split convolution folds its images a piece at a time).
@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let cg = params.in_channels / params.groups;
    let folded_channels = params.kernel_d * params.in_channels;
    let h = e % params.in_h;
    let cf = (e / params.in_h) % folded_channels;
    let m = params.first_image + e / (params.in_h * folded_channels);
    let od = m % params.out_d;
    let n = m / params.out_d;
    let g = cf / (params.kernel_d * cg);
    let a = (cf / cg) % params.kernel_d;
    let ci = cf % cg;
    let d = pad_source(i32(od * params.stride_d + a * params.dilation_d) - i32(params.pad_front), params.in_d, params.pad_mode);
    let dst = e * params.in_w;
    if d < 0 || d >= i32(params.in_d) {
        for (var w = 0u; w < params.in_w; w++) {
            folded[dst + w] = 0.0;
        }
        return;
    }
    let c = g * cg + ci;
    let src = (((n * params.in_channels + c) * params.in_d + u32(d)) * params.in_h + h) * params.in_w;
    for (var w = 0u; w < params.in_w; w++) {
        folded[dst + w] = source[src + w];
    }
}

// One kernel plane of wf [O, KD*Cg, KH, KW] per invocation: e = o * KD*Cg + a*Cg + ci.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let cg = params.in_channels / params.groups;
    let k = e % (params.kernel_d * cg);
    let o = e / (params.kernel_d * cg);
    let src = ((o * cg + k % cg) * params.kernel_d + k / cg) * taps;
    for (var t = 0u; t < taps; t++) {
        folded[e * taps + t] = source[src + t];
    }
}

// One row of yf [N*OD, O, P, Q] per invocation, put in its place in y [N, O, OD, P, Q]:
// e = (m * O + o) * P + p, m counted from `first_image`.
@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let p = e % params.out_h;
    let o = (e / params.out_h) % params.out_channels;
    let m = params.first_image + e / (params.out_h * params.out_channels);
    let od = m % params.out_d;
    let n = m / params.out_d;
    let dst = (((n * params.out_channels + o) * params.out_d + od) * params.out_h + p) * params.out_w;
    for (var q = 0u; q < params.out_w; q++) {
        var v = source[e * params.out_w + q];
        if params.has_residual != 0u {
            v += second[dst + q];
        }
        folded[dst + q] = activate(v);
    }
}

// One row of gf [N*OD, O, P, Q] per invocation: e = ((n * OD + od) * O + o) * P + p.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let p = e % params.out_h;
    let o = (e / params.out_h) % params.out_channels;
    let m = e / (params.out_h * params.out_channels);
    let od = m % params.out_d;
    let n = m / params.out_d;
    let src = (((n * params.out_channels + o) * params.out_d + od) * params.out_h + p) * params.out_w;
    for (var q = 0u; q < params.out_w; q++) {
        folded[e * params.out_w + q] = source[src + q];
    }
}

// One kernel plane of dw [O, Cg, KD, KH, KW] per invocation: e = (o * Cg + ci) * KD + a.
@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let cg = params.in_channels / params.groups;
    let a = e % params.kernel_d;
    let ci = (e / params.kernel_d) % cg;
    let o = e / (params.kernel_d * cg);
    let src = ((o * params.kernel_d + a) * cg + ci) * taps;
    for (var t = 0u; t < taps; t++) {
        folded[e * taps + t] = source[src + t];
    }
}

// One row of dx [N, C, D, H, W] per invocation: e = ((n * C + c) * D + d) * H + h; the folded
// rows of the taps that read it are added in order of a.
@compute @workgroup_size(WORKGROUP_SIZE)
fn unfold_input_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if e >= params.work_items {
        return;
    }
    let cg = params.in_channels / params.groups;
    let h = e % params.in_h;
    let d = (e / params.in_h) % params.in_d;
    let c = (e / (params.in_h * params.in_d)) % params.in_channels;
    let n = e / (params.in_h * params.in_d * params.in_channels);
    let g = c / cg;
    let ci = c % cg;
    let folded_channels = params.kernel_d * params.in_channels;
    let dst = e * params.in_w;
    var start = 0.0;
    if params.has_bias != 0u {
        start = second[c];
    }
    for (var w = 0u; w < params.in_w; w++) {
        folded[dst + w] = start;
    }
    // The padded depths that read d: its own, and under a padding mode the ones in the padding
    // that mirror, repeat or wrap onto it (`pad_candidate`), up to the last depth any tap reads.
    var candidates = 1u;
    if params.pad_mode != 0u {
        let reach = (params.out_d - 1u) * params.stride_d + (params.kernel_d - 1u) * params.dilation_d + 1u;
        candidates += params.pad_front + reach - min(reach, params.pad_front + params.in_d);
    }
    for (var k = 0u; k < candidates; k++) {
        let padded = pad_candidate(k, d, params.pad_front, params.in_d, params.pad_mode);
        if padded < 0 {
            continue;
        }
        for (var a = 0u; a < params.kernel_d; a++) {
            let at = padded - i32(a * params.dilation_d);
            if at < 0 || u32(at) % params.stride_d != 0u {
                continue;
            }
            let od = u32(at) / params.stride_d;
            if od >= params.out_d {
                continue;
            }
            let cf = g * params.kernel_d * cg + a * cg + ci;
            let m = n * params.out_d + od;
            let src = ((m * folded_channels + cf) * params.in_h + h) * params.in_w;
            for (var w = 0u; w < params.in_w; w++) {
                folded[dst + w] += source[src + w];
            }
        }
    }
}
