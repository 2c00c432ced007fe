// Gradient of a convolution with respect to its weights, as a split reduction over chunks of
// output rows, register-tiled: invocation (chunk, g, o-tile, e-tile) accumulates a tile of
// TO output channels (4 or 8) x 8 weight entries, e = (ci, i, j) flattened, of group g:
//
//   partial[chunk, o, ci, i, j] = sum over rows (n, p) of the chunk, and q, of
//       grad_out[n, o, p, q] * in[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]
//
// with positions outside the input reading as zero (the padding). Each step loads TO gradients and
// 8 inputs for TO*8 multiply-adds (software adapters pay per load, not per multiply-add), and
// shaders/reduce_partials.wgsl adds the chunks in a fixed order: no atomics, deterministic.
// `chunk_len` is the rows (n, p) per chunk, `reduce_len` all N * P rows. The body of `main` is
// generated for each TO (src/gpu/codegen.rs, `grad_weight_source`): the tile is written out, as
// drivers do not unroll naga's loops.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

// One weight entry of the tile: its input channel offset, its tap's row and column reach, and
// whether it exists (the last tile may run past C/groups * kh * kw).
struct Entry {
    channel: u32,
    dy: i32,
    dx: i32,
    valid: bool,
}

fn entry(e: u32, k_len: u32, c0: u32) -> Entry {
    let taps = params.kernel_h * params.kernel_w;
    let ee = min(e, k_len - 1u);
    let j = ee % params.kernel_w;
    let i = (ee / params.kernel_w) % params.kernel_h;
    let ci = ee / taps;
    return Entry(
        c0 + ci,
        i32(i * params.dilation_h) - i32(params.pad_top),
        i32(j * params.dilation_w) - i32(params.pad_left),
        e < k_len,
    );
}

// The input under entry `t` at output position (n, p, q), or 0 in the padding.
fn load_x(t: Entry, n: u32, row0: i32, col0: i32) -> f32 {
    let row = pad_source(row0 + t.dy, params.in_h, params.pad_mode);
    let col = pad_source(col0 + t.dx, params.in_w, params.pad_mode);
    let inside = t.valid && row >= 0 && row < i32(params.in_h) && col >= 0 && col < i32(params.in_w);
    let idx = ((n * params.in_channels + t.channel) * params.in_h + u32(max(row, 0))) * params.in_w
        + u32(max(col, 0));
    return select(0.0, input[select(0u, idx, inside)], inside);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    // @generated body
}
