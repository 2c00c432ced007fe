//! The CPU reference: naive loops, f64 accumulation, obviously right.
//!
//! It shares no index helpers with the GPU path, so one indexing bug cannot pass both sides.
//! For output element `(n, o, p, q)` with `g = o / (O/groups)`:
//!
//! `y = bias[o] + sum_{ci, i, j} x[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left] * w[o, ci, i, j]`
//!
//! where input positions outside `[0, H) x [0, W)` read as zero (the padding).
//!
//! [`conv2d_backward_f64`] differentiates `L = sum_{n, o, p, q} G[n, o, p, q] * y[n, o, p, q]` for a
//! given `G` (`grad_output`) by walking the same `(n, o, p, q, ci, i, j)` terms and scattering
//! each one's two partial derivatives:
//!
//! - `dL/dx[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left] += G[n, o, p, q] * w[o, ci, i, j]`
//! - `dL/dw[o, ci, i, j] += G[n, o, p, q] * x[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left]`
//! - `dL/db[o] += G[n, o, p, q]`
//!
//! (terms that read the padding contribute nothing). [`conv_transpose2d_f64`] is PyTorch's
//! `conv_transpose2d` written as the same kind of scatter: input element `(n, ci, p, q)` with
//! `g = ci / (Ci/groups)` adds `x[n, ci, p, q] * w[ci, c, i, j]` to
//! `out[n, g*Co/groups + c, p*sh + i*dh - pad_h, q*sw + j*dw - pad_w]` where that lies inside the
//! output. Neither is written as the gather over output positions that a GPU kernel uses, so the
//! two formulations check each other.

use crate::error::{Error, Result};
use crate::spec::{
    Conv2dParams, Conv2dShape, ConvParams as _, ConvTranspose2dParams, ConvTranspose2dShape,
};
use crate::tensor::Tensor;

/// One spatial axis of a convolution's kernel window: from output position `t`, tap `i` of `k`
/// reads input position `t*stride + i*dilation - pad`, inside the input when below `len`.
#[derive(Clone, Copy)]
struct Axis {
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
}

impl Axis {
    fn new(k: usize, stride: usize, dilation: usize, pad: usize, len: usize) -> Self {
        Axis {
            k,
            stride,
            dilation,
            pad,
            len,
        }
    }

    /// The taps that read inside the input from output position `t`, each with the input
    /// position it reads.
    fn taps(self, t: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..self.k).filter_map(move |i| {
            let at = (t * self.stride + i * self.dilation).checked_sub(self.pad)?;
            (at < self.len).then_some((i, at))
        })
    }
}

/// The kernel window of a convolution, between its output `[N, K, P, Q]` and its input
/// `[N, C, H, W]`, through the weight `[K, C/groups, kh, kw]`. A transposed convolution has the
/// same window, with its own input on the output's side and its own output on the input's.
struct Window {
    /// `(K, C)`.
    channels: (usize, usize),
    groups: usize,
    rows: Axis,
    cols: Axis,
}

/// The [`Window`] of a [`Conv2dShape`] or a [`ConvTranspose2dShape`] (the two name these fields
/// alike), `$input` being the shape on the window's input side.
macro_rules! window {
    ($s:expr, input: $input:expr) => {{
        let [_, c, h, w] = $input;
        Window {
            channels: ($s.weight_shape()[0], c),
            groups: $s.groups,
            rows: Axis::new($s.kernel_h, $s.stride_h, $s.dilation_h, $s.pad_top, h),
            cols: Axis::new($s.kernel_w, $s.stride_w, $s.dilation_w, $s.pad_left, w),
        }
    }};
}

impl Window {
    /// Calls `f(xi, wi)` with the flat indices of each input element `[n, c, row, col]` and weight
    /// element `[k, c mod C/groups, i, j]` that output element `[n, k, p, q]` meets: the channels
    /// `c` of `k`'s group and the taps `(i, j)` that land inside the input (the others meet only
    /// padding), in `(c, i, j)` order.
    fn each(&self, [n, k, p, q]: [usize; 4], mut f: impl FnMut(usize, usize)) {
        let (big_k, big_c) = self.channels;
        let (kg, cg) = (big_k / self.groups, big_c / self.groups);
        let (kh, kw) = (self.rows.k, self.cols.k);
        let (big_h, big_w) = (self.rows.len, self.cols.len);
        for ci in 0..cg {
            let c = k / kg * cg + ci;
            for (i, row) in self.rows.taps(p) {
                for (j, col) in self.cols.taps(q) {
                    let xi = ((n * big_c + c) * big_h + row) * big_w + col;
                    f(xi, ((k * cg + ci) * kh + i) * kw + j);
                }
            }
        }
    }
}

/// The convolution in f64: the validated shape and the output in C order, `[N, O, P, Q]`.
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`], and
/// [`Error::DataLength`] (tensors are checked at construction).
pub fn conv2d_f64(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<(Conv2dShape, Vec<f64>)> {
    convolve(input, weight, bias, params, |v| v)
}

/// The validated shape and the output in C order, each element accumulated in f64 and passed
/// through `round` as it is made (so an f32 output never has an f64 twin in memory).
fn convolve<T>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
    round: impl Fn(f64) -> T,
) -> Result<(Conv2dShape, Vec<T>)> {
    let s = params.shape_of(input, weight, bias)?;
    let mut out = crate::memory::try_with_capacity(s.output_len(), || {
        format!("the output {:?}", s.output_shape())
    })?;
    let (x, w) = (input.data(), weight.data());
    let window = window!(s, input: s.input_shape());
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            let b = bias.map_or(0.0, |b| f64::from(b.data()[o]));
            for p in 0..s.out_h {
                for q in 0..s.out_w {
                    let mut acc = b;
                    window.each([n, o, p, q], |xi, wi| {
                        acc += f64::from(x[xi]) * f64::from(w[wi]);
                    });
                    out.push(round(acc));
                }
            }
        }
    }
    Ok((s, out))
}

/// The convolution on the CPU, accumulated in f64 and rounded once to f32: `[N, O, P, Q]`.
///
/// # Errors
/// As [`conv2d_f64`].
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<Tensor> {
    let (s, out) = convolve(input, weight, bias, params, |v| v as f32)?;
    Tensor::new(s.output_shape(), out)
}

/// Gradients of `L = sum(grad_output * conv2d(input, weight, bias))`, in f64, each in C order with
/// the shape of what it differentiates.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dGrads64 {
    /// The validated convolution.
    pub shape: Conv2dShape,
    /// `dL/dinput`, `[N, C, H, W]`.
    pub input: Vec<f64>,
    /// `dL/dweight`, `[O, C/groups, kh, kw]`.
    pub weight: Vec<f64>,
    /// `dL/dbias`, `[O]`: `sum_{n, p, q} grad_output[n, o, p, q]` (computed whether or not the
    /// forward pass had a bias, which does not change the other two).
    pub bias: Vec<f64>,
}

/// The backward pass of [`conv2d_f64`] in f64, scattered term by term (see the module docs):
/// `dL/dx`, `dL/dw` and `dL/db` for `L = sum G * y`, `G = grad_output` `[N, O, P, Q]`.
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`] (with no bias), and
/// [`Error::GradOutputShape`] when `grad_output` is not `[N, O, P, Q]`.
pub fn conv2d_backward_f64(
    input: &Tensor,
    weight: &Tensor,
    grad_output: &Tensor,
    params: &Conv2dParams,
) -> Result<Conv2dGrads64> {
    let s = Conv2dShape::new(input.shape(), weight.shape(), None, params)?;
    if grad_output.shape() != s.output_shape() {
        return Err(Error::GradOutputShape {
            expected: s.output_shape().to_vec(),
            got: grad_output.shape().to_vec(),
        });
    }
    let (x, w, gy) = (input.data(), weight.data(), grad_output.data());
    let big_o = s.out_channels;
    let window = window!(s, input: s.input_shape());
    let mut grad_x = crate::memory::try_vec(s.input_len(), 0.0f64, || {
        format!("the f64 input gradient of {:?}", s.input_shape())
    })?;
    let mut grad_w = crate::memory::try_vec(s.weight_len(), 0.0f64, || {
        format!("the f64 weight gradient of {:?}", s.weight_shape())
    })?;
    let mut grad_b = vec![0.0f64; big_o];
    // The forward pass's terms; each product x * w in y[n, o, p, q] hands G * w to x and G * x to w.
    for n in 0..s.batch {
        for o in 0..big_o {
            for p in 0..s.out_h {
                for q in 0..s.out_w {
                    let gv = f64::from(gy[((n * big_o + o) * s.out_h + p) * s.out_w + q]);
                    grad_b[o] += gv;
                    window.each([n, o, p, q], |xi, wi| {
                        grad_x[xi] += gv * f64::from(w[wi]);
                        grad_w[wi] += gv * f64::from(x[xi]);
                    });
                }
            }
        }
    }
    Ok(Conv2dGrads64 {
        shape: s,
        input: grad_x,
        weight: grad_w,
        bias: grad_b,
    })
}

/// PyTorch's `conv_transpose2d` in f64, as a scatter: `out[n, g*Co/groups + c, p*sh + i*dh - pad_h,
/// q*sw + j*dw - pad_w] += x[n, ci, p, q] * w[ci, c, i, j]` with `g = ci / (Ci/groups)`, for
/// positions inside the `[N, Co, H, W]` output, which starts as `bias[oc]`.
///
/// # Errors
/// Every shape or parameter error of [`ConvTranspose2dShape::new`].
pub fn conv_transpose2d_f64(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &ConvTranspose2dParams,
) -> Result<(ConvTranspose2dShape, Vec<f64>)> {
    let s = params.shape_of(input, weight, bias)?;
    let (x, w) = (input.data(), weight.data());
    let (big_ci, big_p, big_q) = (s.in_channels, s.in_h, s.in_w);
    let (big_co, big_hw) = (s.out_channels, s.out_h * s.out_w);
    // Input element [n, ci, p, q] scatters as a convolution's output element gathers.
    let window = window!(s, input: s.output_shape());
    let mut out = crate::memory::try_vec(s.output_len(), 0.0f64, || {
        format!("the f64 output {:?}", s.output_shape())
    })?;
    if let Some(b) = bias {
        for (k, v) in out.iter_mut().enumerate() {
            *v = f64::from(b.data()[(k / big_hw) % big_co]);
        }
    }
    for n in 0..s.batch {
        for ci in 0..big_ci {
            for p in 0..big_p {
                for q in 0..big_q {
                    let xv = f64::from(x[((n * big_ci + ci) * big_p + p) * big_q + q]);
                    window.each([n, ci, p, q], |oi, wi| out[oi] += xv * f64::from(w[wi]));
                }
            }
        }
    }
    Ok((s, out))
}
