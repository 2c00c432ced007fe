//! The tolerance and the comparisons every GPU-vs-reference test uses, natively and in the
//! browser (tests/web.rs includes this file as well).
#![allow(dead_code)]

use wgconv::cpu::reference::{Conv2dGrads64, ConvNdGrads64};
use wgconv::{Activation, Conv2dParams, ConvNdShape, Padding, PaddingMode, Tensor};

/// Tolerance constant `c` in `|gpu - ref| <= c * K * eps32 * max|x| * max|w| + eps32 * max|b| + tiny`.
///
/// Why 1: the GPU sums K products in f32. With zero-mean data (all random data in these tests:
/// uniform in [-1, 1] or standard normal), the partial sums grow like sqrt(k) * sigma, so the
/// accumulated rounding error has an rms of about u * sigma * K / sqrt(2), u = eps/2,
/// sigma = rms(x*w) <= max|x| * max|w| / 3 for uniform data: about 0.12 * K * eps * max|x| * max|w|.
/// The final rounding of the result adds at most 0.5 * eps * |y| <= 0.5 * K * eps * max|x|*max|w|
/// in the extreme, so c = 1 is above the worst deterministic part plus 4 standard deviations of the
/// random part in the worst case, and over 8 in the typical one. The bias adds one rounding
/// (eps * max|b|). An indexing bug produces errors of order max|x| * max|w|, far above this.
pub const TOLERANCE_C: f64 = 1.0;

/// The tolerance for one convolution: `c * K * eps * max|x| * max|w| + eps * max|b| + tiny`.
pub fn tolerance(k: usize, max_x: f64, max_w: f64, max_b: f64) -> f64 {
    let eps = f64::from(f32::EPSILON);
    TOLERANCE_C * k as f64 * eps * max_x * max_w + eps * max_b + f64::from(f32::MIN_POSITIVE)
}

/// The largest slope of `act`: how much an error in its argument can grow through it
/// (gelu's `Phi(x) + x phi(x)` peaks at 1.129, silu's at 1.100, hardswish's `(2x + 3) / 6` at 1.5).
pub fn lipschitz(act: Activation) -> f64 {
    match act {
        Activation::LeakyRelu(slope) => f64::from(slope.abs()).max(1.0),
        Activation::Sigmoid => 0.25,
        Activation::Gelu | Activation::GeluTanh => 1.13,
        Activation::Silu => 1.1,
        Activation::Hardswish => 1.5,
        _ => 1.0,
    }
}

/// The tolerance of a fused epilogue `act(conv + bias + residual)` whose convolution (bias
/// included) is within `conv_tol` of the truth, with `max_pre` the largest `|conv + bias +
/// residual|` and `max_r` the largest residual:
///
/// - the residual's f32 addition rounds once: `eps * (max_pre + max_r)` bounds it (the sum
///   before it is at most `max_pre + max_r`);
/// - the activation multiplies the argument's error by at most [`lipschitz`];
/// - its own f32 evaluation: exact for the piecewise-linear ones up to one rounding of the
///   product (`eps * max_pre`); for the others, exp / tanh / erf (Abramowitz-Stegun, 1.5e-7
///   absolute = 1.3 eps) and a few roundings of products of magnitude at most `max(1, |x|)`,
///   which 8 eps * max(1, max_pre) bounds with room (the worst formula, gelu's, adds 0.7 eps |x|
///   from erf and 3 roundings).
pub fn epilogue_tolerance(act: Activation, conv_tol: f64, max_pre: f64, max_r: f64) -> f64 {
    let eps = f64::from(f32::EPSILON);
    let pre = conv_tol + eps * (max_pre + max_r);
    let own = match act {
        Activation::None
        | Activation::Relu
        | Activation::Relu6
        | Activation::LeakyRelu(_)
        | Activation::Clamp { .. } => eps * max_pre,
        _ => 8.0 * eps * max_pre.max(1.0),
    };
    lipschitz(act) * pre + own
}

/// How far `dz = grad_output * act'(pre)` computed in f32 can be from the truth, for
/// `|grad_output| <= max_gy` and a pre-activation within `pre_tol` of its truth (largest
/// `max_pre`): for the smooth activations (sigmoid, tanh, gelu, gelu-tanh, silu: `|act''| <= 1`)
/// `max_gy * (pre_tol + 8 eps max(1, max_pre))` (the slope moves by at most `pre_tol`, and its
/// own f32 evaluation as in [`epilogue_tolerance`]); for the piecewise ones 0 (their slope is
/// exact away from the kinks, which the golden cases keep the pre-activations clear of), the
/// product's rounding being in the convolution's own tolerance.
pub fn activation_grad_error(act: Activation, pre_tol: f64, max_pre: f64, max_gy: f64) -> f64 {
    let eps = f64::from(f32::EPSILON);
    match act {
        Activation::Sigmoid
        | Activation::Tanh
        | Activation::Gelu
        | Activation::GeluTanh
        | Activation::Silu => max_gy * (pre_tol + 8.0 * eps * max_pre.max(1.0)),
        _ => 0.0,
    }
}

/// Largest absolute value in a tensor.
pub fn max_abs(t: &Tensor) -> f64 {
    t.data()
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())))
}

/// Compares `got` (GPU, f32) with `want` (reference, f64) element by element.
///
/// Fails on the first element outside `tol` (NaN included: outputs start as NaN, so a skipped
/// element fails loudly), naming its `[n, o, p, q]` index, both values, the tolerance and the
/// worst relative error over the whole tensor.
pub fn compare(
    context: &str,
    shape: [usize; 4],
    got: &[f32],
    want: &[f64],
    tol: f64,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{context}: got {} elements, want {}",
            got.len(),
            want.len()
        ));
    }
    let mut first_bad = None;
    let mut worst_rel = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (f64::from(g) - w).abs();
        let within = diff <= tol; // false for NaN
        if !within && first_bad.is_none() {
            first_bad = Some((i, g, w, diff));
        }
        let rel = diff / w.abs().max(f64::from(f32::MIN_POSITIVE));
        if rel > worst_rel || rel.is_nan() {
            worst_rel = rel;
        }
    }
    match first_bad {
        None => Ok(()),
        Some((i, g, w, diff)) => {
            let [_, o, p, q] = shape;
            let idx = [i / (o * p * q), (i / (p * q)) % o, (i / q) % p, i % q];
            Err(format!(
                "{context}: first bad element at [n, o, p, q] = {idx:?} (flat {i}): gpu {g:e}, reference {w:e}, \
                 |diff| {diff:e} > tolerance {tol:e}; worst relative error over the tensor {worst_rel:e}"
            ))
        }
    }
}

/// A readable one-line description of a convolution configuration.
pub fn describe(input: &[usize], weight: &[usize], bias: bool, p: &Conv2dParams) -> String {
    let padding = match p.padding {
        Padding::Same => "same".to_string(),
        Padding::Valid => "valid".to_string(),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => format!("[{top},{bottom},{left},{right}]"),
    };
    format!(
        "input {input:?} weight {weight:?} bias {bias} stride {:?} padding {padding} dilation {:?} groups {}",
        p.stride, p.dilation, p.groups
    )
}

/// The downloaded gradients of one backward pass (`bias` when the layer has one).
pub struct Grads<'a> {
    pub input: &'a [f32],
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

/// Compares a backward pass's gradients with the f64 reference's, each within the tolerance of
/// its own sums: the input gradient adds `O/groups * kh * kw` products of the output gradient
/// (`max|g| = mg`) and the weight (`mw`); the weight gradient `N * P * Q` products of the output
/// gradient and the input (`mx`); the bias gradient `N * P * Q` output-gradient values.
pub fn compare_grads(
    context: &str,
    want: &Conv2dGrads64,
    got: Grads<'_>,
    scale: (f64, f64, f64),
) -> Result<(), String> {
    let s = &want.shape;
    let sums = GradSums {
        rows: s.batch * s.out_h * s.out_w,
        taps: s.out_channels_per_group() * s.kernel_h * s.kernel_w,
        shapes: [s.input_shape(), s.weight_shape(), [1, s.out_channels, 1, 1]],
    };
    sums.compare(context, [&want.input, &want.weight, &want.bias], got, scale)
}

/// How many padded positions read one input element, at most: its own, and under a padding mode
/// other than zeros every padded position that mirrors, repeats or wraps onto it, at most
/// `1 + before + after` per axis. An input gradient entry adds the taps of all of them.
pub fn padding_readers<const N: usize>(s: &ConvNdShape<N>) -> usize {
    match s.padding_mode {
        PaddingMode::Zeros => 1,
        _ => s.padding.iter().map(|[b, a]| 1 + b + a).product(),
    }
}

/// [`compare_grads`] over any number of spatial axes: the sums run over `N * prod(output)` rows
/// and `O/groups * prod(kernel)` taps of each of the [`padding_readers`].
pub fn compare_grads_nd<const N: usize>(
    context: &str,
    want: &ConvNdGrads64<N>,
    got: Grads<'_>,
    scale: (f64, f64, f64),
) -> Result<(), String> {
    let s = &want.shape;
    let sums = GradSums {
        rows: s.batch * s.output.iter().product::<usize>(),
        taps: padding_readers(s) * s.out_channels / s.groups * s.kernel.iter().product::<usize>(),
        shapes: [
            view4(&s.input_shape()),
            view4(&s.weight_shape()),
            [1, s.out_channels, 1, 1],
        ],
    };
    sums.compare(context, [&want.input, &want.weight, &want.bias], got, scale)
}

/// What the gradient tolerances count, and the 4-D shapes failures name indices by.
struct GradSums {
    rows: usize,
    taps: usize,
    shapes: [[usize; 4]; 3],
}

impl GradSums {
    fn compare(
        &self,
        context: &str,
        [input, weight, bias]: [&[f64]; 3],
        got: Grads<'_>,
        (mx, mw, mg): (f64, f64, f64),
    ) -> Result<(), String> {
        let [input_shape, weight_shape, bias_shape] = self.shapes;
        let tol = |n, a, b| tolerance(n, a, b, 0.0);
        compare(
            &format!("{context}, grad input"),
            input_shape,
            got.input,
            input,
            tol(self.taps, mg, mw),
        )?;
        compare(
            &format!("{context}, grad weight"),
            weight_shape,
            got.weight,
            weight,
            tol(self.rows, mg, mx),
        )?;
        if let Some(got_bias) = got.bias {
            compare(
                &format!("{context}, grad bias"),
                bias_shape,
                got_bias,
                bias,
                tol(self.rows, mg, 1.0),
            )?;
        }
        Ok(())
    }
}

/// A tensor shape as the 4-D `[n, o, rows, cols]` a comparison names indices by: shorter shapes
/// get leading 1s, and a 5-D one's depth and height make its rows.
pub fn view4(shape: &[usize]) -> [usize; 4] {
    match *shape {
        [n, o, d, h, w] => [n, o, d * h, w],
        _ => {
            let mut v = [1; 4];
            let tail = shape.len().min(4);
            v[4 - tail..].copy_from_slice(&shape[shape.len() - tail..]);
            v
        }
    }
}
