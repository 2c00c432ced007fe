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
use crate::spec::{Conv2dParams, Conv2dShape, ConvTranspose2dParams, ConvTranspose2dShape};
use crate::tensor::{self, Tensor};

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
    let s = tensor::check_shapes(input, weight, bias, params, Conv2dShape::new)?;
    let mut out = crate::memory::try_with_capacity(s.output_len(), || {
        format!("the output {:?}", s.output_shape())
    })?;
    each_output(&s, input, weight, bias, |v| out.push(round(v)));
    Ok((s, out))
}

/// Calls `emit` with each output element in C order, accumulated in f64.
fn each_output(
    s: &Conv2dShape,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    mut emit: impl FnMut(f64),
) {
    let (x, w) = (input.data(), weight.data());
    let (big_n, big_c, big_h, big_w) = (s.batch, s.in_channels, s.in_h, s.in_w);
    let (big_o, kh, kw) = (s.out_channels, s.kernel_h, s.kernel_w);
    let cg = big_c / s.groups;
    let og = big_o / s.groups;
    for n in 0..big_n {
        for o in 0..big_o {
            let g = o / og;
            let b = bias.map_or(0.0, |b| f64::from(b.data()[o]));
            for p in 0..s.out_h {
                for q in 0..s.out_w {
                    let mut acc = b;
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for i in 0..kh {
                            let row =
                                (p * s.stride_h + i * s.dilation_h) as i128 - s.pad_top as i128;
                            if row < 0 || row >= big_h as i128 {
                                continue;
                            }
                            for j in 0..kw {
                                let col = (q * s.stride_w + j * s.dilation_w) as i128
                                    - s.pad_left as i128;
                                if col < 0 || col >= big_w as i128 {
                                    continue;
                                }
                                let xv = x[((n * big_c + c) * big_h + row as usize) * big_w
                                    + col as usize];
                                let wv = w[((o * cg + ci) * kh + i) * kw + j];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    emit(acc);
                }
            }
        }
    }
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
    let (big_n, big_c, big_h, big_w) = (s.batch, s.in_channels, s.in_h, s.in_w);
    let (big_o, kh, kw) = (s.out_channels, s.kernel_h, s.kernel_w);
    let cg = big_c / s.groups;
    let og = big_o / s.groups;
    let mut grad_x = crate::memory::try_vec(s.input_len(), 0.0f64, || {
        format!("the f64 input gradient of {:?}", s.input_shape())
    })?;
    let mut grad_w = crate::memory::try_vec(s.weight_len(), 0.0f64, || {
        format!("the f64 weight gradient of {:?}", s.weight_shape())
    })?;
    let mut grad_b = vec![0.0f64; big_o];
    // The forward pass's loops; each product x * w in y[n, o, p, q] hands G * w to x and G * x to w.
    for n in 0..big_n {
        for o in 0..big_o {
            let g = o / og;
            for p in 0..s.out_h {
                for q in 0..s.out_w {
                    let gv = f64::from(gy[((n * big_o + o) * s.out_h + p) * s.out_w + q]);
                    grad_b[o] += gv;
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for i in 0..kh {
                            let row =
                                (p * s.stride_h + i * s.dilation_h) as i128 - s.pad_top as i128;
                            if row < 0 || row >= big_h as i128 {
                                continue;
                            }
                            for j in 0..kw {
                                let col = (q * s.stride_w + j * s.dilation_w) as i128
                                    - s.pad_left as i128;
                                if col < 0 || col >= big_w as i128 {
                                    continue;
                                }
                                let xi =
                                    ((n * big_c + c) * big_h + row as usize) * big_w + col as usize;
                                let wi = ((o * cg + ci) * kh + i) * kw + j;
                                grad_x[xi] += gv * f64::from(w[wi]);
                                grad_w[wi] += gv * f64::from(x[xi]);
                            }
                        }
                    }
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
    let s = tensor::check_shapes(input, weight, bias, params, ConvTranspose2dShape::new)?;
    let (x, w) = (input.data(), weight.data());
    let (big_n, big_ci, big_p, big_q) = (s.batch, s.in_channels, s.in_h, s.in_w);
    let (big_co, big_h, big_w) = (s.out_channels, s.out_h, s.out_w);
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    let cig = big_ci / s.groups;
    let cog = big_co / s.groups;
    let mut out = crate::memory::try_vec(s.output_len(), 0.0f64, || {
        format!("the f64 output {:?}", s.output_shape())
    })?;
    if let Some(b) = bias {
        for (k, v) in out.iter_mut().enumerate() {
            *v = f64::from(b.data()[(k / (big_h * big_w)) % big_co]);
        }
    }
    for n in 0..big_n {
        for ci in 0..big_ci {
            let g = ci / cig;
            for p in 0..big_p {
                for q in 0..big_q {
                    let xv = f64::from(x[((n * big_ci + ci) * big_p + p) * big_q + q]);
                    for c in 0..cog {
                        let oc = g * cog + c;
                        for i in 0..kh {
                            let row =
                                (p * s.stride_h + i * s.dilation_h) as i128 - s.pad_top as i128;
                            if row < 0 || row >= big_h as i128 {
                                continue;
                            }
                            for j in 0..kw {
                                let col = (q * s.stride_w + j * s.dilation_w) as i128
                                    - s.pad_left as i128;
                                if col < 0 || col >= big_w as i128 {
                                    continue;
                                }
                                let wv = f64::from(w[((ci * cog + c) * kh + i) * kw + j]);
                                out[((n * big_co + oc) * big_h + row as usize) * big_w
                                    + col as usize] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((s, out))
}
