//! The tolerance and the comparisons every GPU-vs-reference test uses, natively and in the
//! browser (tests/web.rs includes this file as well).
#![allow(dead_code)]

use wgconv::cpu::reference::{Conv2dGrads64, ConvNdGrads64};
use wgconv::{Conv2dParams, ConvNdShape, Padding, PaddingMode, Tensor};

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
