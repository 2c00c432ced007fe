// Weights of the forward convolution that computes a stride-1 convolution's input gradient:
//   flipped[c, ol, i, j] = weight[g*og + ol, c mod Cg, kh-1-i, kw-1-j],   g = c / Cg
// i.e. per group, input and output channels swapped and the kernel turned by 180 degrees.
// `in_channels`/`out_channels` are the forward convolution's C and O.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> flipped: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    let cg = params.in_channels / params.groups;
    let og = params.out_channels / params.groups;
    let kh = params.kernel_h;
    let kw = params.kernel_w;
    let j = e % kw;
    let i = (e / kw) % kh;
    let ol = (e / (kw * kh)) % og;
    let c = e / (kw * kh * og);
    let o = (c / cg) * og + ol;
    flipped[e] = weight[((o * cg + c % cg) * kh + (kh - 1u - i)) * kw + (kw - 1u - j)];
}
