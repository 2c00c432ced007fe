//! Gradients against central differences of the f64 forward reference, over any number of
//! spatial axes (tests/grad_reference.rs for 2D, the conv1d and conv3d tests for theirs).
#![allow(dead_code)]

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use wgconv::cpu::reference::{conv_nd_backward_f64, conv_nd_f64};
use wgconv::{ConvNdParams, ConvNdShape, Tensor};

use super::random_tensor;

/// `sum_k a_k * b_k` in f64.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn to_f64(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| f64::from(v)).collect()
}

/// `t` with every element replaced by `|v| + add`.
pub fn abs_plus(t: &Tensor, add: f32) -> Tensor {
    Tensor::new(t.shape(), t.data().iter().map(|v| v.abs() + add).collect()).expect("same shape")
}

/// `t` with element `k` replaced by `v`.
pub fn with_element(t: &Tensor, k: usize, v: f32) -> Tensor {
    let mut data = t.data().to_vec();
    data[k] = v;
    Tensor::new(t.shape(), data).expect("same shape")
}

/// `L = sum(G * conv(x, w, b))` with the f64 forward reference.
pub fn loss<const N: usize>(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &[f64],
    params: &ConvNdParams<N>,
) -> f64 {
    let (_, y) = conv_nd_f64(x, w, Some(b), params).expect("valid configuration");
    dot(&y, g)
}

/// Step of the central differences, a power of two. `v +- STEP` may round in f32 (by half an ulp),
/// so the quotient divides by the step actually taken, `f64(v + STEP) - f64(v - STEP)`, which is
/// exact in f64; the rounding then changes nothing. Large, because `L` is affine in each
/// element: the difference quotient has no truncation error at any step, and its f64 rounding
/// error is divided by the step.
pub const STEP: f32 = 1.0 / 16.0;

/// Checks each gradient entry (all of a tensor's, or 32 random ones of a larger tensor) against
/// the central difference `(L(t + h e_k) - L(t - h e_k)) / (2h)` of the forward reference, with
/// a bias always present (its gradient is always computed).
///
/// Tolerance: `L` is affine in each element, so the quotient has no truncation error, only f64
/// rounding. Each evaluation of `L` sums products along paths of at most `n_fwd = K + 2 + M`
/// additions (K per output, the bias, then the M outputs weighted by G), so it is within
/// `n_fwd * eps64/2 * bound` of exact, where `bound = sum |G| * conv2d(|x|, |w|, |b|)` with every
/// element of the perturbed tensor enlarged by the step covers both evaluations: the quotient is
/// within `n_fwd * eps64 * bound / 2h`. The analytic entry sums at most
/// `n_grad = max(O/groups*kh*kw, N*P*Q)` terms whose absolute values add up to at most
/// `bound / h` (`bound` grows by `h` times that sum when the element is enlarged), so it is within
/// `n_grad * eps64 * bound / 2h`. The check allows 4 times the sum of the two. A wrong index
/// changes an entry by a whole product `G * w` or `G * x` (of order 0.1 to 1 here); the tolerance
/// is at most about 2e-8 in these configurations, and the errors seen are below 1e-12.
pub fn check_against_central_differences<const N: usize>(
    context: &str,
    input: &[usize],
    weight: &[usize],
    params: &ConvNdParams<N>,
    rng: &mut ChaCha8Rng,
) {
    let x = random_tensor(rng, input);
    let w = random_tensor(rng, weight);
    let b = random_tensor(rng, &[weight[0]]);
    let s = ConvNdShape::new(input, weight, None, params).expect(context);
    let g_tensor = random_tensor(rng, &s.output_shape());
    let g = to_f64(&g_tensor);
    let grads = conv_nd_backward_f64(&x, &w, &g_tensor, params).expect(context);
    assert_eq!(grads.shape, s, "{context}");
    assert_eq!(grads.input.len(), x.len(), "{context}");
    assert_eq!(grads.weight.len(), w.len(), "{context}");
    assert_eq!(grads.bias.len(), s.out_channels, "{context}");

    let taps: usize = s.kernel.iter().product();
    let n_fwd = s.in_channels / s.groups * taps + 2 + s.output_len();
    let n_grad = (super::padding_readers(&s) * s.out_channels / s.groups * taps)
        .max(s.batch * s.output.iter().product::<usize>());
    let abs_g: Vec<f64> = g.iter().map(|v| v.abs()).collect();
    let tensors = [x, w, b];
    for (which, (name, analytic)) in [
        ("input", &grads.input),
        ("weight", &grads.weight),
        ("bias", &grads.bias),
    ]
    .into_iter()
    .enumerate()
    {
        let enlarged: Vec<Tensor> = tensors
            .iter()
            .enumerate()
            .map(|(k, t)| abs_plus(t, if k == which { STEP } else { 0.0 }))
            .collect();
        let bound = loss(&enlarged[0], &enlarged[1], &enlarged[2], &abs_g, params);

        let t = &tensors[which];
        let mut entries: Vec<usize> = (0..t.len()).collect();
        if entries.len() > 32 {
            entries.shuffle(rng);
            entries.truncate(32);
        }
        for k in entries {
            let v = t.data()[k];
            let (plus, minus) = (v + STEP, v - STEP);
            let loss_with = |value: f32| {
                let mut ts = tensors.clone();
                ts[which] = with_element(t, k, value);
                loss(&ts[0], &ts[1], &ts[2], &g, params)
            };
            let step = f64::from(plus) - f64::from(minus); // exact: both are f32 near 1
            let fd = (loss_with(plus) - loss_with(minus)) / step;
            let tol = 4.0 * (n_fwd + n_grad) as f64 * f64::EPSILON * bound / step;
            assert!(
                (fd - analytic[k]).abs() <= tol,
                "{context}: grad_{name}[{k}]: analytic {:e}, central difference {fd:e}, \
                 tolerance {tol:e}",
                analytic[k]
            );
        }
    }
}
