// 1x1 convolution (stride 1, no padding, groups 1) as a matrix product over channels, per image:
//
//   out[n] (O x P*Q) = weight (O x C) * in[n] (C x H*W) + bias,   P*Q = H*W
//
// Each invocation computes a 4x4 register tile: 4 output channels x 4 consecutive pixels.
// Edge tiles clamp their loads and skip their stores, so any O and H*W work.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Twin: `Kernel::workgroup_size` in src/gpu/kernels.rs.
override WORKGROUP_SIZE: u32 = 64u;
// Twin: `POINTWISE_TILE` in src/gpu/kernels.rs.
const TILE: u32 = 4u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.row_stride;
    if idx >= params.work_items {
        return;
    }
    let pixels = params.in_h * params.in_w;
    let pixel_tiles = (pixels + TILE - 1u) / TILE;
    let channel_tiles = (params.out_channels + TILE - 1u) / TILE;
    let pt = idx % pixel_tiles;
    let ot = (idx / pixel_tiles) % channel_tiles;
    let n = idx / (pixel_tiles * channel_tiles);

    let p0 = pt * TILE;
    let o0 = ot * TILE;
    // Clamped coordinates keep every load in bounds; the matching stores are skipped below.
    let last_p = pixels - 1u;
    let last_o = params.out_channels - 1u;
    let ps = vec4<u32>(min(p0, last_p), min(p0 + 1u, last_p), min(p0 + 2u, last_p), min(p0 + 3u, last_p));
    let os = vec4<u32>(min(o0, last_o), min(o0 + 1u, last_o), min(o0 + 2u, last_o), min(o0 + 3u, last_o));
    let in_base = n * params.in_channels * pixels;
    let c = params.in_channels;

    // acc[r] holds output channel os[r] for the 4 pixels ps.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = 0u; k < c; k++) {
        let row = in_base + k * pixels;
        let x = vec4<f32>(input[row + ps.x], input[row + ps.y], input[row + ps.z], input[row + ps.w]);
        acc0 += weight[os.x * c + k] * x;
        acc1 += weight[os.y * c + k] * x;
        acc2 += weight[os.z * c + k] * x;
        acc3 += weight[os.w * c + k] * x;
    }
    if params.has_bias != 0u {
        acc0 += bias[os.x];
        acc1 += bias[os.y];
        acc2 += bias[os.z];
        acc3 += bias[os.w];
    }
    let out_base = n * params.out_channels * pixels;
    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < TILE; r++) {
        let o = o0 + r;
        if o >= params.out_channels {
            break;
        }
        let acc = rows[r];
        let base = out_base + o * pixels + p0;
        for (var s = 0u; s < TILE; s++) {
            if p0 + s < pixels {
                output[base + s] = epilogue(acc[s], base + s);
            }
        }
    }
}
