// The uniform block every wgconv compute shader reads, prepended to each shader's text at load
// time (src/gpu/kernels.rs) so there is one definition.
// Twin: `ConvUniforms` in src/gpu/kernels.rs (same field order, all u32).
struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    groups: u32,
    out_h: u32,
    out_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    dilation_h: u32,
    dilation_w: u32,
    has_bias: u32,
    // Work items of a flattened dispatch (outputs, 4x4 tiles or packed elements).
    work_items: u32,
    // Invocations per dispatch row of a flattened dispatch: num_workgroups.x * workgroup size.
    row_stride: u32,
    // Split reductions (gradients, losses): rows or elements per chunk, and their total.
    chunk_len: u32,
    reduce_len: u32,
    // A kernel's f32 operand as bits (the SGD learning rate).
    scalar_bits: u32,
    // The depth axis of a 3D convolution (shaders/fold_depth.wgsl).
    in_d: u32,
    out_d: u32,
    kernel_d: u32,
    stride_d: u32,
    pad_front: u32,
    dilation_d: u32,
    // The first folded image (n*OD + od) of a piece of a split 3D convolution.
    first_image: u32,
    // What the padding holds: 0 zeros, 1 reflect, 2 replicate, 3 circular.
    pad_mode: u32,
    // The fused epilogue: the activation's number (0 none, see `activate`), its two f32
    // parameters as bits, and whether a residual (shaders/epilogue.wgsl) is added first.
    activation: u32,
    act_a: u32,
    act_b: u32,
    has_residual: u32,
}

// The position that padded position `c` of an axis of `n` elements reads under padding mode
// `mode` (`params.pad_mode`): `c` itself inside [0, n) or for zeros, else the mirrored (edge
// once), edge or wrapped position. Twin: `PaddingMode::source` in src/spec/mode.rs. The caller's
// bounds test still follows, so zeros, and positions further out than the amounts a mode allows
// (the overhang of a tile past the last output), read as zero.
fn pad_source(c: i32, n: u32, mode: u32) -> i32 {
    let len = i32(n);
    if mode == 0u || (c >= 0 && c < len) {
        return c;
    }
    if mode == 1u {
        return select(2 * (len - 1) - c, -c, c < 0);
    }
    if mode == 2u {
        return clamp(c, 0, len - 1);
    }
    return select(c - len, c + len, c < 0);
}

// The adjoint of `pad_source`, for gradients: candidate `k` of the padded positions that may read
// element `i` of an axis of `n` elements padded by `before` in front. Candidate 0 is `i`'s own
// position, `i + before`; candidates 1..before+after are the padded positions outside the input,
// first the `before` ones in front, then those behind. Returns the candidate's padded position when
// it reads `i`, else -1.
fn pad_candidate(k: u32, i: u32, before: u32, n: u32, mode: u32) -> i32 {
    if k == 0u {
        return i32(i + before);
    }
    let j = k - 1u;
    let p = select(n + j, j, j < before);
    if pad_source(i32(p) - i32(before), n, mode) != i32(i) {
        return -1;
    }
    return i32(p);
}

// The fused epilogue's activation of `x`: `params.activation` with its parameters `act_a` and
// `act_b` (f32 bits). Twin: `Activation::apply` in src/spec/activation.rs (same numbering). The
// exponential forms take exp of non-positive arguments only, so none overflows to inf / inf.
fn activate(x: f32) -> f32 {
    switch params.activation {
        case 0u: {
            return x;
        }
        case 1u: {
            return max(x, 0.0);
        }
        case 2u: {
            return min(max(x, 0.0), 6.0);
        }
        case 3u: {
            return select(x * bitcast<f32>(params.act_a), x, x > 0.0);
        }
        case 4u: {
            return sigmoid_of(x);
        }
        case 5u: {
            return tanh_of(x);
        }
        case 6u: {
            return 0.5 * x * (1.0 + erf_of(x * 0.70710678118654752));
        }
        case 7u: {
            return 0.5 * x * (1.0 + tanh_of(0.79788456080286536 * (x + 0.044715 * x * x * x)));
        }
        case 8u: {
            return x * sigmoid_of(x);
        }
        case 9u: {
            return x * min(max(x + 3.0, 0.0), 6.0) / 6.0;
        }
        default: {
            return min(max(x, bitcast<f32>(params.act_a)), bitcast<f32>(params.act_b));
        }
    }
}

// 1 / (1 + exp(-x)) from e = exp(-|x|) in (0, 1]: sigmoid(|x|) = 1 / (1 + e), and
// sigmoid(-|x|) = e / (1 + e).
fn sigmoid_of(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 1].
fn tanh_of(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(-t, t, x >= 0.0);
}

// erf(x) by Abramowitz and Stegun 7.1.26 (absolute error at most 1.5e-7), odd by symmetry.
fn erf_of(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
        + 0.254829592) * t;
    let y = 1.0 - poly * exp(-a * a);
    return select(-y, y, x >= 0.0);
}
