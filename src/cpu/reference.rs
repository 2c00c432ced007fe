//! The CPU reference: naive loops, f64 accumulation, obviously right.
//!
//! It shares no index helpers with the GPU path, so one indexing bug cannot pass both sides.
//! For output element `(n, o, p, q)` with `g = o / (O/groups)`:
//!
//! `y = bias[o] + sum_{ci, i, j} x[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left] * w[o, ci, i, j]`
//!
//! where input positions outside `[0, H) x [0, W)` read the padding: zero, or under another
//! [`PaddingMode`] the element it names ([`PaddingMode::source`]); the backward pass then hands
//! that element the term's gradient, which is the adjoint of the padding.
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
    Conv1dParams, Conv2dParams, Conv2dShape, ConvNdParams, ConvNdShape, ConvParams as _,
    ConvTranspose2dParams, ConvTranspose2dShape, ConvTransposeNdParams, ConvTransposeNdShape,
    PaddingMode,
};
use crate::tensor::Tensor;

/// One spatial axis of a convolution's kernel window: from output position `t`, tap `i` of `k`
/// reads input position `t*stride + i*dilation - pad`, inside the input when below `len`, and
/// otherwise what `mode` puts there.
#[derive(Clone, Copy)]
struct Axis {
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
    mode: PaddingMode,
}

impl Axis {
    /// The taps `lo..hi` that read an input element from output position `t`: all of them under
    /// a mode other than zeros, else those inside the input (contiguous: the position
    /// `t*stride + i*dilation - pad` grows with `i`).
    fn taps(self, t: usize) -> std::ops::Range<usize> {
        if self.mode != PaddingMode::Zeros {
            return 0..self.k;
        }
        let at = |i: usize| (t * self.stride + i * self.dilation).checked_sub(self.pad);
        let lo = (0..self.k).find(|&i| at(i).is_some_and(|p| p < self.len));
        let Some(lo) = lo else { return 0..0 };
        let hi = (lo..self.k)
            .take_while(|&i| at(i).is_some_and(|p| p < self.len))
            .last()
            .map_or(lo, |i| i + 1);
        lo..hi
    }

    /// The input element tap `i` reads from output position `t`, `None` for a zero.
    fn at(self, t: usize, i: usize) -> Option<usize> {
        let padded = (t * self.stride + i * self.dilation) as i64;
        self.mode.source(padded - self.pad as i64, self.len)
    }
}

/// The kernel window of a convolution, between its output `[N, K, *out]` and its input
/// `[N, C, *in]`, through the weight `[K, C/groups, *kernel]`, over any number of spatial axes.
/// A transposed convolution has the same window, with its own input on the output's side and its
/// own output on the input's.
struct Window {
    /// `(K, C)`.
    channels: (usize, usize),
    groups: usize,
    axes: Vec<Axis>,
    /// True convolution: tap `t` of an axis of length `k` multiplies the weight's element
    /// `k-1-t` along it (the kernel turned 180 degrees).
    flip: bool,
}

impl Window {
    /// The window of a forward problem over `N` axes, its input of `channels` channels.
    fn of<const N: usize>(s: &ConvNdShape<N>) -> Self {
        Window {
            channels: (s.out_channels, s.in_channels),
            groups: s.groups,
            axes: (0..N)
                .map(|a| Axis {
                    k: s.kernel[a],
                    stride: s.stride[a],
                    dilation: s.dilation[a],
                    pad: s.padding[a][0],
                    len: s.input[a],
                    mode: s.padding_mode,
                })
                .collect(),
            flip: s.flip_kernel,
        }
    }

    /// Calls `f(xi, wi)` with the flat indices of each input element `[n, c, *at]` and weight
    /// element `[k, c mod C/groups, *taps]` that output element `[n, k, *pos]` meets: the
    /// channels `c` of `k`'s group and the taps that land inside the input on every axis (the
    /// others meet only padding), in `(c, taps...)` row-major order.
    fn each(&self, n: usize, k: usize, pos: &[usize], mut f: impl FnMut(usize, usize)) {
        let (big_k, big_c) = self.channels;
        let (kg, cg) = (big_k / self.groups, big_c / self.groups);
        // At most three axes: the in-range taps of each, as fixed arrays (no allocation per
        // output element).
        let mut taps = [0..1, 0..1, 0..1];
        let mut axes = [Axis {
            k: 1,
            stride: 1,
            dilation: 1,
            pad: 0,
            len: 1,
            mode: PaddingMode::Zeros,
        }; 3];
        let mut at = [0usize; 3];
        let skip = 3 - self.axes.len();
        for (a, (axis, &t)) in self.axes.iter().zip(pos).enumerate() {
            taps[skip + a] = axis.taps(t);
            axes[skip + a] = *axis;
            at[skip + a] = t;
        }
        if taps.iter().any(|r| r.is_empty()) {
            return;
        }
        let [d_len, h_len, w_len] = axes.map(|a| a.len);
        let [kd, kh, kw] = axes.map(|a| a.k);
        // The weight's element that tap `t` of an axis of length `k` multiplies.
        let tap = |t: usize, k: usize| if self.flip { k - 1 - t } else { t };
        for ci in 0..cg {
            let c = k / kg * cg + ci;
            let x_image = (n * big_c + c) * d_len * h_len * w_len;
            let w_image = (k * cg + ci) * kd * kh * kw;
            for a in taps[0].clone() {
                let Some(d) = axes[0].at(at[0], a) else {
                    continue;
                };
                for i in taps[1].clone() {
                    let Some(h) = axes[1].at(at[1], i) else {
                        continue;
                    };
                    for j in taps[2].clone() {
                        let Some(w) = axes[2].at(at[2], j) else {
                            continue;
                        };
                        let xi = x_image + (d * h_len + h) * w_len + w;
                        let wi = (tap(a, kd) * kh + tap(i, kh)) * kw + tap(j, kw);
                        f(xi, w_image + wi);
                    }
                }
            }
        }
    }
}

/// Calls `f` with every position of a grid of `lens`, row-major (once, with no coordinates, when
/// there are no axes; never when an axis is empty).
fn for_each_position(lens: &[usize], mut f: impl FnMut(&[usize])) {
    if lens.contains(&0) {
        return;
    }
    let mut pos = vec![0usize; lens.len()];
    loop {
        f(&pos);
        let Some(a) = (0..lens.len()).rev().find(|&a| pos[a] + 1 < lens[a]) else {
            return;
        };
        pos[a] += 1;
        pos[a + 1..].iter_mut().for_each(|t| *t = 0);
    }
}

/// The convolution in f64: the validated shape (an unbatched input a batch of one) and the
/// output in C order, `[N, O, P, Q]`.
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
    let (s, out) = convolve(input, weight, bias, None, &params.into(), |v| v)?;
    Ok((s.as_conv2d(), out))
}

/// The convolution over `N` spatial axes in f64 (through `params.activation`, the fused
/// epilogue without a residual): the validated shape and the output in C order, `[N, O, *out]`
/// (or `[O, *out]` unbatched).
///
/// # Errors
/// Every shape or parameter error of [`ConvNdShape::new`].
pub fn conv_nd_f64<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &ConvNdParams<N>,
) -> Result<(ConvNdShape<N>, Vec<f64>)> {
    convolve(input, weight, bias, None, params, |v| v)
}

/// The convolution with its fused epilogue in f64: `act(conv + bias + residual)` with `act`
/// `params.activation` ([`Activation::apply`](crate::spec::Activation::apply)) and `residual`
/// of the output's shape, added before it.
///
/// # Errors
/// As [`conv_nd_f64`], and [`Error::ResidualShape`].
pub fn conv_nd_fused_f64<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    params: &ConvNdParams<N>,
) -> Result<(ConvNdShape<N>, Vec<f64>)> {
    convolve(input, weight, bias, residual, params, |v| v)
}

/// The validated shape and the output in C order, each element accumulated in f64, put through
/// the epilogue (plus the residual's element, then the activation) and through `round` as it is
/// made (so an f32 output never has an f64 twin in memory).
fn convolve<const N: usize, T>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    params: &ConvNdParams<N>,
    round: impl Fn(f64) -> T,
) -> Result<(ConvNdShape<N>, Vec<T>)> {
    let s = params
        .shape_of(input, weight, bias)?
        .with_residual(residual.map(Tensor::shape))?;
    let mut out = crate::memory::try_with_capacity(s.output_len(), || {
        format!("the output {:?}", s.output_shape())
    })?;
    let (x, w) = (input.data(), weight.data());
    let mut r = residual.map(|r| r.data().iter());
    let window = Window::of(&s);
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            let b = bias.map_or(0.0, |b| f64::from(b.data()[o]));
            for_each_position(&s.output, |pos| {
                let mut acc = b;
                window.each(n, o, pos, |xi, wi| {
                    acc += f64::from(x[xi]) * f64::from(w[wi]);
                });
                // The residual is walked in its C order, which is the loop order.
                if let Some(v) = r.as_mut().and_then(Iterator::next) {
                    acc += f64::from(*v);
                }
                out.push(round(s.activation.apply(acc)));
            });
        }
    }
    Ok((s, out))
}

/// The convolution on the CPU, accumulated in f64 and rounded once to f32: `[N, O, P, Q]`, or
/// `[O, P, Q]` for an unbatched input `[C, H, W]`.
///
/// # Errors
/// As [`conv2d_f64`].
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<Tensor> {
    conv_nd(input, weight, bias, &params.into())
}

/// The 1D convolution on the CPU (PyTorch's `conv1d`), accumulated in f64 and rounded once to
/// f32: `[N, O, L_out]`, or `[O, L_out]` for an unbatched input `[C, L]`.
///
/// # Errors
/// As [`conv_nd_f64`].
pub fn conv1d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv1dParams,
) -> Result<Tensor> {
    conv_nd(input, weight, bias, params)
}

/// The convolution over `N` spatial axes on the CPU, accumulated in f64, rounded once to f32.
///
/// # Errors
/// As [`conv_nd_f64`].
pub fn conv_nd<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &ConvNdParams<N>,
) -> Result<Tensor> {
    conv_nd_fused(input, weight, bias, None, params)
}

/// The convolution over `N` spatial axes with its fused epilogue ([`conv_nd_fused_f64`]),
/// accumulated in f64, rounded once to f32.
///
/// # Errors
/// As [`conv_nd_fused_f64`].
pub fn conv_nd_fused<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    params: &ConvNdParams<N>,
) -> Result<Tensor> {
    let (s, out) = convolve(input, weight, bias, residual, params, |v| v as f32)?;
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

/// Gradients of a convolution over `N` spatial axes ([`conv_nd_backward_f64`]), each in C order
/// with the shape of what it differentiates.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvNdGrads64<const N: usize> {
    /// The validated convolution.
    pub shape: ConvNdShape<N>,
    /// `dL/dinput`, the input's shape.
    pub input: Vec<f64>,
    /// `dL/dweight`, `[O, C/groups, *kernel]`.
    pub weight: Vec<f64>,
    /// `dL/dbias`, `[O]` (computed whether or not the forward pass had a bias).
    pub bias: Vec<f64>,
}

/// The backward pass of [`conv2d_f64`] in f64, scattered term by term (see the module docs):
/// `dL/dx`, `dL/dw` and `dL/db` for `L = sum G * y`, `G = grad_output` `[N, O, P, Q]` (`[O, P, Q]`
/// for an unbatched input).
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`] (with no bias), and
/// [`Error::GradOutputShape`] when `grad_output` is not the output's shape.
pub fn conv2d_backward_f64(
    input: &Tensor,
    weight: &Tensor,
    grad_output: &Tensor,
    params: &Conv2dParams,
) -> Result<Conv2dGrads64> {
    let g = conv_nd_backward_f64(input, weight, grad_output, &params.into())?;
    Ok(Conv2dGrads64 {
        shape: g.shape.as_conv2d(),
        input: g.input,
        weight: g.weight,
        bias: g.bias,
    })
}

/// The backward pass of [`conv_nd_f64`] in f64, scattered term by term as for 2D (see the module
/// docs).
///
/// # Errors
/// Every shape or parameter error of [`ConvNdShape::new`] (with no bias), and
/// [`Error::GradOutputShape`] when `grad_output` is not the output's shape.
pub fn conv_nd_backward_f64<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    grad_output: &Tensor,
    params: &ConvNdParams<N>,
) -> Result<ConvNdGrads64<N>> {
    let s = ConvNdShape::new(input.shape(), weight.shape(), None, params)?;
    s.check_backward("conv_nd_backward_f64", grad_output.shape())?;
    let (x, w, gy) = (input.data(), weight.data(), grad_output.data());
    let window = Window::of(&s);
    let mut grad_x = crate::memory::try_vec(input.len(), 0.0f64, || {
        format!("the f64 input gradient of {:?}", s.input_shape())
    })?;
    let mut grad_w = crate::memory::try_vec(weight.len(), 0.0f64, || {
        format!("the f64 weight gradient of {:?}", s.weight_shape())
    })?;
    let mut grad_b = vec![0.0f64; s.out_channels];
    // The forward pass's terms; each product x * w in y[n, o, *pos] hands G * w to x and G * x
    // to w. grad_output is walked in its C order, which is the loop order.
    let mut gy = gy.iter();
    for n in 0..s.batch {
        for (o, gb) in grad_b.iter_mut().enumerate() {
            for_each_position(&s.output, |pos| {
                let gv = gy.next().map_or(0.0, |&v| f64::from(v));
                *gb += gv;
                window.each(n, o, pos, |xi, wi| {
                    grad_x[xi] += gv * f64::from(w[wi]);
                    grad_w[wi] += gv * f64::from(x[xi]);
                });
            });
        }
    }
    Ok(ConvNdGrads64 {
        shape: s,
        input: grad_x,
        weight: grad_w,
        bias: grad_b,
    })
}

/// The backward pass through the fused epilogue of [`conv_nd_fused_f64`] in f64: with
/// `pre = conv + bias + residual` recomputed, `dz = grad_output * act'(pre)` element by element
/// ([`Activation::derivative`](crate::spec::Activation::derivative)), the convolution's
/// gradients for `dz` ([`conv_nd_backward_f64`]) and the residual's gradient, `dz` itself.
///
/// # Errors
/// As [`conv_nd_fused_f64`], and [`Error::GradOutputShape`].
pub fn conv_nd_fused_backward_f64<const N: usize>(
    (input, weight, bias, residual): (&Tensor, &Tensor, Option<&Tensor>, Option<&Tensor>),
    grad_output: &Tensor,
    params: &ConvNdParams<N>,
) -> Result<(ConvNdGrads64<N>, Vec<f64>)> {
    let linear = ConvNdParams {
        activation: crate::spec::Activation::None,
        ..*params
    };
    let (s, pre) = conv_nd_fused_f64(input, weight, bias, residual, &linear)?;
    if grad_output.shape() != s.output_shape() {
        return Err(Error::GradOutputShape {
            expected: s.output_shape(),
            got: grad_output.shape().to_vec(),
        });
    }
    let dz: Vec<f64> = (pre.iter().zip(grad_output.data()))
        .map(|(&z, &g)| f64::from(g) * params.activation.derivative(z))
        .collect();
    // The convolution's backward pass takes f32 tensors: dz is split into an f32 head and an
    // f32 tail, whose two gradients (linear in dz) add up to dz's in f64.
    let head: Vec<f32> = dz.iter().map(|&v| v as f32).collect();
    let tail: Vec<f32> = (dz.iter().zip(&head))
        .map(|(&v, &h)| (v - f64::from(h)) as f32)
        .collect();
    let shape = s.output_shape();
    let mut g = conv_nd_backward_f64(input, weight, &Tensor::new(&shape[..], head)?, &linear)?;
    let t = conv_nd_backward_f64(input, weight, &Tensor::new(&shape[..], tail)?, &linear)?;
    for (a, b) in [
        (&mut g.input, &t.input),
        (&mut g.weight, &t.weight),
        (&mut g.bias, &t.bias),
    ] {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    }
    g.shape = s;
    Ok((g, dz))
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
    // Validated as conv_transpose2d (4D only, its messages), then the scatter over two axes.
    let s = params.shape_of(input, weight, bias)?;
    let pair = |(a, b): (usize, usize)| [a, b];
    let nd = ConvTransposeNdParams {
        stride: pair(params.stride),
        padding: pair(params.padding),
        output_padding: pair(params.output_padding),
        dilation: pair(params.dilation),
        groups: params.groups,
    };
    let (_, out) = conv_transpose_nd_f64(input, weight, bias, &nd)?;
    Ok((s, out))
}

/// PyTorch's `conv_transpose1d`/`conv_transpose3d` in f64, the scatter of
/// [`conv_transpose2d_f64`] over `N` axes: input element `[n, ci, *p]` adds
/// `x[n, ci, *p] * w[ci, c, *t]` to output `[n, g*Co/groups + c, *(p*stride + t*dilation -
/// padding)]` where that lies inside the output, which starts as `bias`. The validated shape
/// and the output in C order (`[N, Co, *out]`, or `[Co, *out]` unbatched).
///
/// # Errors
/// Every shape or parameter error of [`ConvTransposeNdShape::new`].
pub fn conv_transpose_nd_f64<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &ConvTransposeNdParams<N>,
) -> Result<(ConvTransposeNdShape<N>, Vec<f64>)> {
    let s = params.shape_of(input, weight, bias)?;
    // Input element [n, ci, *p] scatters as a convolution's output element gathers.
    let window = Window {
        channels: (s.in_channels, s.out_channels),
        groups: s.groups,
        axes: (0..N)
            .map(|a| Axis {
                k: s.kernel[a],
                stride: s.stride[a],
                dilation: s.dilation[a],
                pad: s.padding[a],
                len: s.output[a],
                mode: PaddingMode::Zeros,
            })
            .collect(),
        flip: false,
    };
    let mut out = crate::memory::try_vec(s.output_len(), 0.0f64, || {
        format!("the f64 output {:?}", s.output_shape())
    })?;
    let plane: usize = s.output.iter().product();
    if let Some(b) = bias {
        for (k, v) in out.iter_mut().enumerate() {
            *v = f64::from(b.data()[(k / plane) % s.out_channels]);
        }
    }
    let (w, mut x) = (weight.data(), input.data().iter());
    // The input is walked in its C order, which is the loop order.
    for n in 0..s.batch {
        for ci in 0..s.in_channels {
            for_each_position(&s.input, |pos| {
                let xv = x.next().map_or(0.0, |&v| f64::from(v));
                window.each(n, ci, pos, |oi, wi| out[oi] += xv * f64::from(w[wi]));
            });
        }
    }
    Ok((s, out))
}

/// [`conv_transpose_nd_f64`] rounded once to f32, in the output's shape.
///
/// # Errors
/// As [`conv_transpose_nd_f64`].
pub fn conv_transpose_nd<const N: usize>(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &ConvTransposeNdParams<N>,
) -> Result<Tensor> {
    let (s, out) = conv_transpose_nd_f64(input, weight, bias, params)?;
    Tensor::new(
        s.output_shape(),
        out.into_iter().map(|v| v as f32).collect(),
    )
}
