// Implicit-GEMM convolution with a register tile and no workgroup barriers, for CPU adapters
// (lavapipe, llvmpipe), where each workgroup is a CPU task, invocations are SIMD lanes and a
// barrier is a coroutine switch.
//
// Per (image n, group g) it computes the matrix product
//   out[o, pixel] = sum_k packed_weight[o, k] * im2col[k, pixel] + bias[o],   k = (tap, ci)
// without materialising im2col: each invocation gathers its pixels' inputs tap by tap.
//
// Grid: workgroup_id.x = block of TN * WORKGROUP_SIZE output pixels, workgroup_id.y = tile of TM
// output channels within the group, workgroup_id.z = n * groups + g. Invocation `lid` owns pixels
// block + lid + t * WORKGROUP_SIZE, t = 0..TN-1, and TM output channels.
// Weight indices depend on the workgroup only; with subgroups each weight vec4 is loaded by one
// lane and broadcast to the others.
//
// The body of `main` is generated (src/gpu/codegen.rs): the taps, the TM x 4 multiply-adds and the
// stores are unrolled in the text, because naga emits loops that drivers do not unroll. As written
// here, with the marker comment only, the file is the validated frame the generator fills.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
// Packed weights: [groups][ceil(O/groups / 4)][K][4], K = kh*kw*C/groups ordered (tap, ci),
// output channels past O/groups zero. Twin: shaders/pack_weights.wgsl.
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // @generated body
}
