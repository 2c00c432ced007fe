//! The CPU reference: naive loops, f64 accumulation, obviously right.
//!
//! It shares no index helpers with the GPU path, so one indexing bug cannot pass both sides.
//! For output element `(n, o, p, q)` with `g = o / (O/groups)`:
//!
//! `y = bias[o] + sum_{ci, i, j} x[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left] * w[o, ci, i, j]`
//!
//! where input positions outside `[0, H) x [0, W)` read as zero (the padding).

use crate::error::Result;
use crate::spec::{Conv2dParams, Conv2dShape};
use crate::tensor::Tensor;

/// The convolution in f64: the validated shape and the output in C order, `[N, O, P, Q]`.
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`], and
/// [`Error::DataLength`](crate::Error::DataLength) (tensors are checked at construction).
pub fn conv2d_f64(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<(Conv2dShape, Vec<f64>)> {
    let s = Conv2dShape::new(
        input.shape(),
        weight.shape(),
        bias.map(Tensor::shape),
        params,
    )?;
    let (x, w) = (input.data(), weight.data());
    let (big_n, big_c, big_h, big_w) = (s.batch, s.in_channels, s.in_h, s.in_w);
    let (big_o, kh, kw) = (s.out_channels, s.kernel_h, s.kernel_w);
    let cg = big_c / s.groups;
    let og = big_o / s.groups;
    let mut out = Vec::with_capacity(s.output_len());
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
                    out.push(acc);
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
    let (s, out) = conv2d_f64(input, weight, bias, params)?;
    Tensor::new(
        s.output_shape(),
        out.into_iter().map(|v| v as f32).collect(),
    )
}
