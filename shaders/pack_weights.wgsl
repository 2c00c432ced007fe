// Packs OIHW weights into the layout the implicit-GEMM kernels read:
//   packed[g][ot][k][r] = weight[g*og + ot*4 + r, ci, i, j],   k = (i*kw + j) * cg + ci
// with og = O/groups, cg = C/groups, and zeros for output channels past og, so each k step of a
// tile of 4 output channels is one aligned vec4 load.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> packed: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    let og = params.out_channels / params.groups;
    let cg = params.in_channels / params.groups;
    let taps = params.kernel_h * params.kernel_w;
    let k_len = taps * cg;
    let o4_tiles = (og + 3u) / 4u;
    let r = e % 4u;
    let k = (e / 4u) % k_len;
    let ot = (e / (4u * k_len)) % o4_tiles;
    let g = e / (4u * k_len * o4_tiles);
    let o = ot * 4u + r;
    var value = 0.0;
    if o < og {
        let tap = k / cg;
        let ci = k % cg;
        value = weight[((g * og + o) * cg + ci) * taps + tap];
    }
    packed[e] = value;
}
