// Squared-error loss L = sum (prediction - wanted)^2 (`wanted`: the target; `target` is reserved
// in WGSL), in two entry points:
//   grad:    grad[e] = 2 * (prediction[e] - wanted[e])                 (one invocation per element)
//   partial: partial[c] = sum of (prediction - wanted)^2 over chunk c    (`chunk_len` elements each,
//            `reduce_len` in all), added up by shaders/reduce_partials.wgsl.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> prediction: array<f32>;
@group(0) @binding(1) var<storage, read> wanted: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    out[e] = 2.0 * (prediction[e] - wanted[e]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x + gid.y * params.row_stride;
    if c >= params.work_items {
        return;
    }
    let first = c * params.chunk_len;
    let last = min(first + params.chunk_len, params.reduce_len);
    var acc = 0.0;
    for (var e = first; e < last; e++) {
        let d = prediction[e] - wanted[e];
        acc += d * d;
    }
    out[c] = acc;
}
