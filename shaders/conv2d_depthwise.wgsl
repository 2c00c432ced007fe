// Depthwise convolution (one input channel per group, m = O / groups output channels each) with
// the input tile staged in workgroup memory, for real GPUs:
//
//   out[n, o, p, q] = bias[o] + sum_{i, j} in[n, o / m, p*sh + i*dh - top, q*sw + j*dw - left]
//                                          * weight[o, 0, i, j]
//
// A workgroup computes a TILE_H x TILE_W tile of output pixels of one output channel of one
// image. Its 256 invocations first copy the input window the tile reads, halo included
// ((TILE - 1) * stride + (k - 1) * dilation + 1 per axis, zeros for padding), into workgroup
// memory, each input value once; after one barrier each invocation computes TILE_H / 8 outputs
// of one column from there, so every input value is read from global memory once per workgroup
// instead of once per tap. The planner refuses shapes whose window exceeds HALO_CAPACITY.
//
// Grid: workgroup_id.x = tile (row-major over the tiles of the output plane), workgroup_id.y =
// output channel o, workgroup_id.z = image n.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Twin: `DEPTHWISE_TILE` in src/gpu/kernels.rs (output rows and columns per workgroup).
const TILE_H: u32 = 16u;
const TILE_W: u32 = 32u;
const INVOCATIONS: u32 = 256u;
// Output rows each invocation computes: its column's rows r, r + 8, ...
const ROWS: u32 = TILE_H * TILE_W / INVOCATIONS;

// Twin: `DEPTHWISE_HALO_CAPACITY` in src/gpu/kernels.rs: 4096 f32 = 16384 bytes, row-major with
// a row pitch of halo_w.
const HALO_CAPACITY: u32 = 4096u;
var<workgroup> halo: array<f32, HALO_CAPACITY>;

// The pipeline cache sets WORKGROUP_SIZE on every kernel but SharedTiled; this one's tiles are
// laid out for 256 invocations, which its plan always asks for, so the value is accepted and unused.
override WORKGROUP_SIZE: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wid.y;
    let n = wid.z;
    let m = params.out_channels / params.groups;
    let tiles_w = (params.out_w + TILE_W - 1u) / TILE_W;
    let p0 = (wid.x / tiles_w) * TILE_H;
    let q0 = (wid.x % tiles_w) * TILE_W;
    let halo_h = (TILE_H - 1u) * params.stride_h + (params.kernel_h - 1u) * params.dilation_h + 1u;
    let halo_w = (TILE_W - 1u) * params.stride_w + (params.kernel_w - 1u) * params.dilation_w + 1u;
    let halo_len = halo_h * halo_w;

    // Stage the window: element e of the halo is input row row0 + e / halo_w, column
    // col0 + e % halo_w of channel o / m, or zero in the padding. The round count is uniform so
    // the barrier after the loop is reached by every invocation.
    let row0 = i32(p0 * params.stride_h) - i32(params.pad_top);
    let col0 = i32(q0 * params.stride_w) - i32(params.pad_left);
    let channel = (n * params.in_channels + o / m) * params.in_h * params.in_w;
    let rounds = (halo_len + INVOCATIONS - 1u) / INVOCATIONS;
    for (var t = 0u; t < rounds; t++) {
        let e = t * INVOCATIONS + li;
        if e < halo_len {
            let row = pad_source(row0 + i32(e / halo_w), params.in_h, params.pad_mode);
            let col = pad_source(col0 + i32(e % halo_w), params.in_w, params.pad_mode);
            var v = 0.0;
            if row >= 0 && row < i32(params.in_h) && col >= 0 && col < i32(params.in_w) {
                v = input[channel + u32(row) * params.in_w + u32(col)];
            }
            halo[e] = v;
        }
    }
    workgroupBarrier();

    // Column tq of the tile, rows tp + 8 r; acc[r] in the reference's tap order.
    let tq = li % TILE_W;
    let tp = li / TILE_W;
    let taps = params.kernel_h * params.kernel_w;
    let w_base = o * taps;
    var acc: array<f32, ROWS>;
    for (var i = 0u; i < params.kernel_h; i++) {
        for (var j = 0u; j < params.kernel_w; j++) {
            let w = weight[w_base + i * params.kernel_w + j];
            let col = tq * params.stride_w + j * params.dilation_w;
            for (var r = 0u; r < ROWS; r++) {
                let row = (tp + r * (INVOCATIONS / TILE_W)) * params.stride_h + i * params.dilation_h;
                acc[r] += halo[row * halo_w + col] * w;
            }
        }
    }

    var bias_value = 0.0;
    if params.has_bias != 0u {
        bias_value = bias[o];
    }
    let q = q0 + tq;
    for (var r = 0u; r < ROWS; r++) {
        let p = p0 + tp + r * (INVOCATIONS / TILE_W);
        if p < params.out_h && q < params.out_w {
            let i = ((n * params.out_channels + o) * params.out_h + p) * params.out_w + q;
            output[i] = epilogue(acc[r] + bias_value, i);
        }
    }
}
