//! Trainable convolution layers whose weights live on the GPU, as PyTorch's `nn.Conv2d`
//! ([`Conv2d`]), `nn.Conv1d` ([`Conv1d`]) and `nn.Conv3d` ([`Conv3d`]).
//!
//! ```no_run
//! use wgconv::layer::{Conv2d, Conv2dConfig};
//! use wgconv::{Engine, Tensor};
//!
//! let engine = Engine::new()?;
//! // The lecture's edge detector: learn K in Y = corr2d(X, K) from X and Y.
//! let mut conv = Conv2d::new(&engine, Conv2dConfig::new(1, 1, (1, 2)).bias(false).seed(0))?;
//! let x = engine.upload(&Tensor::full([1, 1, 6, 8], 1.0)?)?;
//! let y = engine.upload(&Tensor::full([1, 1, 6, 7], 0.0)?)?;
//! for _ in 0..10 {
//!     let y_hat = conv.forward(&engine, &x)?;
//!     let (loss, grad) = engine.squared_error(&y_hat, &y)?;
//!     let grads = conv.backward(&engine, &x, &grad)?;
//!     conv.sgd_step(&engine, &grads, 3e-2)?;
//!     # let _ = loss;
//! }
//! # Ok::<(), wgconv::Error>(())
//! ```

#[cfg(feature = "train")]
use rand::{RngExt, SeedableRng};
#[cfg(feature = "train")]
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::gpu::backward::Conv2dGrads;
use crate::gpu::engine::Engine;
use crate::gpu::tensor::GpuTensor;
use crate::spec::{
    Activation, Conv1dParams, Conv2dParams, Conv3dParams, ConvNdParams, ConvNdShape, IntoPair,
};
use crate::tensor::Tensor;

/// A 2D convolution with its weight `[O, C/groups, kh, kw]` and optional bias `[O]` on the GPU.
#[derive(Debug)]
pub struct Conv2d {
    weight: GpuTensor,
    bias: Option<GpuTensor>,
    params: Conv2dParams,
}

/// How [`Conv2d::new`] builds a layer: channels and kernel, then named options with PyTorch's
/// defaults (`Conv2dParams::default()`, a bias, seed 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
    /// Whether the layer has a bias `[O]` (PyTorch's `bias=True`).
    pub bias: bool,
    /// Seed of the ChaCha8 generator the initial values are drawn from.
    pub seed: u64,
}

impl Conv2dConfig {
    /// `in_channels` to `out_channels` with a `kernel` (`k` or `(kh, kw)`), default options.
    pub fn new(in_channels: usize, out_channels: usize, kernel: impl IntoPair) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel: kernel.into_pair(),
            params: Conv2dParams::default(),
            bias: true,
            seed: 0,
        }
    }

    /// With these stride, padding, dilation and groups.
    pub fn params(self, params: Conv2dParams) -> Self {
        Conv2dConfig { params, ..self }
    }

    /// With (`true`, the default) or without a bias.
    pub fn bias(self, bias: bool) -> Self {
        Conv2dConfig { bias, ..self }
    }

    /// With initial values drawn from `seed`.
    pub fn seed(self, seed: u64) -> Self {
        Conv2dConfig { seed, ..self }
    }
}

impl Conv2d {
    /// A layer as `config` says, initialised as PyTorch's `nn.Conv2d.reset_parameters`: weights
    /// and bias uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`, `fan_in = C/groups * kh * kw`
    /// (kaiming uniform with `a = sqrt(5)`), drawn from a ChaCha8 generator seeded with
    /// `config.seed`.
    ///
    /// # Errors
    /// The parameter and shape errors of [`Conv2dShape::new`](crate::Conv2dShape::new)
    /// (checked against a one-image input just large enough for the kernel and the padding),
    /// size and GPU errors.
    #[cfg(feature = "train")]
    pub fn new(engine: &Engine, config: Conv2dConfig) -> Result<Self> {
        let Conv2dConfig {
            in_channels,
            out_channels,
            kernel: (kh, kw),
            params,
            bias,
            seed,
        } = config;
        let groups = params.groups.max(1);
        let weight_shape = [out_channels, in_channels / groups, kh, kw];
        // Validate channels, groups and parameters on an input large enough for the kernel.
        let bias_shape = [out_channels];
        let nd = (&params).into();
        probe::<2>(
            Some(in_channels),
            &weight_shape,
            bias.then_some(&bias_shape[..]),
            &nd,
        )?;
        let fan_in = (in_channels / groups) * kh * kw;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform =
            |shape: &[usize]| Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-bound..=bound));
        let weight = engine.upload(&uniform(&weight_shape)?)?;
        let bias = if bias {
            Some(engine.upload(&uniform(&[out_channels])?)?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            params,
        })
    }

    /// A layer with the given weight (and bias), uploaded.
    ///
    /// # Errors
    /// The parameter and shape errors of [`Conv2dShape::new`](crate::Conv2dShape::new), size and
    /// GPU errors.
    pub fn from_tensors(
        engine: &Engine,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: Conv2dParams,
    ) -> Result<Self> {
        let &[_, _, _, _] = weight.shape() else {
            return Err(Error::WeightRank {
                op: "conv2d",
                expected: "4D weight [O, C/groups, kh, kw]",
                shape: weight.shape().to_vec(),
            });
        };
        probe::<2>(
            None,
            weight.shape(),
            bias.map(Tensor::shape),
            &(&params).into(),
        )?;
        Ok(Conv2d {
            weight: engine.upload(weight)?,
            bias: bias.map(|b| engine.upload(b)).transpose()?,
            params,
        })
    }

    /// The weight, `[O, C/groups, kh, kw]`.
    pub fn weight(&self) -> &GpuTensor {
        &self.weight
    }

    /// The bias, `[O]`, if the layer has one.
    pub fn bias(&self) -> Option<&GpuTensor> {
        self.bias.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// `act(conv2d(x, weight, bias))` on the GPU (`act` the parameters' fused activation).
    ///
    /// # Errors
    /// As [`Engine::conv2d_gpu`].
    pub fn forward(&self, engine: &Engine, x: &GpuTensor) -> Result<GpuTensor> {
        engine.conv2d_gpu(x, &self.weight, self.bias.as_ref(), &self.params)
    }

    /// The gradients with respect to `x`, the weight and the bias, given `grad_output = dL/dy`
    /// for `y = self.forward(x)`; through the fused activation when the parameters have one
    /// (the pre-activation recomputed, then [`Engine::activation_grad`]).
    ///
    /// # Errors
    /// As [`Engine::conv2d_backward`] and [`Engine::activation_grad`].
    pub fn backward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        grad_output: &GpuTensor,
    ) -> Result<Conv2dGrads> {
        let linear = Conv2dParams {
            activation: Activation::None,
            ..self.params
        };
        let (w, b) = (&self.weight, self.bias.as_ref());
        let dz = through_activation(engine, self.params.activation, grad_output, || {
            engine.conv2d_gpu(x, w, b, &linear)
        })?;
        engine.conv2d_backward(
            x,
            w,
            dz.as_ref().unwrap_or(grad_output),
            &linear,
            b.is_some(),
        )
    }

    /// One SGD step on the weight and bias: `p -= lr * dL/dp`.
    ///
    /// # Errors
    /// As [`Engine::sgd_step`], and [`Error::ShapeMismatch`] when `grads` lacks the bias's
    /// gradient.
    pub fn sgd_step(&mut self, engine: &Engine, grads: &Conv2dGrads, lr: f32) -> Result<()> {
        sgd_update(engine, &mut self.weight, self.bias.as_mut(), grads, lr)
    }
}

/// `dL/dpre = grad_output * act'(pre)` for a layer with a fused activation, `pre` computed by
/// `pre` (the convolution without the activation); `None` without one (the gradient is
/// `grad_output` itself).
fn through_activation(
    engine: &Engine,
    activation: Activation,
    grad_output: &GpuTensor,
    pre: impl FnOnce() -> Result<GpuTensor>,
) -> Result<Option<GpuTensor>> {
    if activation.is_none() {
        return Ok(None);
    }
    let pre = pre()?;
    engine
        .activation_grad(&pre, grad_output, activation)
        .map(Some)
}

/// `p -= lr * dL/dp` for a layer's weight and bias.
fn sgd_update(
    engine: &Engine,
    weight: &mut GpuTensor,
    bias: Option<&mut GpuTensor>,
    grads: &Conv2dGrads,
    lr: f32,
) -> Result<()> {
    engine.sgd_step(weight, &grads.weight, lr)?;
    match (bias, &grads.bias) {
        (Some(b), Some(g)) => engine.sgd_step(b, g, lr),
        (Some(b), None) => Err(Error::ShapeMismatch {
            what: "bias gradient",
            expected: b.shape().to_vec(),
            got: Vec::new(),
        }),
        (None, _) => Ok(()),
    }
}

/// The engine calls of a 1D or 3D convolution layer ([`ConvNd`]): implemented for
/// [`Conv1dParams`] and [`Conv3dParams`].
pub trait LayerCalls: Copy {
    /// `conv(x, weight, bias)` on the GPU.
    ///
    /// # Errors
    /// As the engine's call.
    fn forward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) -> Result<GpuTensor>;

    /// The gradients of `x`, `weight` and (when `with_bias`) the bias.
    ///
    /// # Errors
    /// As the engine's call.
    fn backward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        with_bias: bool,
    ) -> Result<Conv2dGrads>;
}

impl LayerCalls for Conv1dParams {
    fn forward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        engine.conv1d_gpu(x, weight, bias, self)
    }

    fn backward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        with_bias: bool,
    ) -> Result<Conv2dGrads> {
        engine.conv1d_backward(x, weight, grad_output, self, with_bias)
    }
}

impl LayerCalls for Conv3dParams {
    fn forward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        engine.conv3d_gpu(x, weight, bias, self)
    }

    fn backward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        with_bias: bool,
    ) -> Result<Conv2dGrads> {
        engine.conv3d_backward(x, weight, grad_output, self, with_bias)
    }
}

/// A 1D or 3D convolution layer, as PyTorch's `nn.Conv1d` ([`Conv1d`]) and `nn.Conv3d`
/// ([`Conv3d`]): its weight `[O, C/groups, *kernel]` and optional bias `[O]` on the GPU.
#[derive(Debug)]
pub struct ConvNd<const N: usize> {
    weight: GpuTensor,
    bias: Option<GpuTensor>,
    params: ConvNdParams<N>,
}

/// A trainable 1D convolution layer (`nn.Conv1d`).
pub type Conv1d = ConvNd<1>;

/// A trainable 3D convolution layer (`nn.Conv3d`).
pub type Conv3d = ConvNd<3>;

impl<const N: usize> ConvNd<N>
where
    ConvNdParams<N>: LayerCalls,
{
    /// `in_channels` to `out_channels` with `kernel` per axis, initialised as PyTorch's
    /// `reset_parameters` (uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`,
    /// `fan_in = C/groups * prod(kernel)`) from a ChaCha8 generator seeded with `seed`.
    ///
    /// # Errors
    /// The parameter and shape errors of [`ConvNdShape::new`] (checked against an input just
    /// large enough for the kernel), size and GPU errors.
    #[cfg(feature = "train")]
    pub fn new(
        engine: &Engine,
        (in_channels, out_channels): (usize, usize),
        kernel: [usize; N],
        params: ConvNdParams<N>,
        bias: bool,
        seed: u64,
    ) -> Result<Self> {
        let groups = params.groups.max(1);
        let mut weight_shape = vec![out_channels, in_channels / groups];
        weight_shape.extend_from_slice(&kernel);
        let bias_shape = [out_channels];
        probe::<N>(
            Some(in_channels),
            &weight_shape,
            bias.then_some(&bias_shape[..]),
            &params,
        )?;
        let fan_in = (in_channels / groups) * kernel.iter().product::<usize>();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform =
            |shape: &[usize]| Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-bound..=bound));
        let weight = engine.upload(&uniform(&weight_shape)?)?;
        let bias = if bias {
            Some(engine.upload(&uniform(&bias_shape)?)?)
        } else {
            None
        };
        Ok(ConvNd {
            weight,
            bias,
            params,
        })
    }

    /// A layer with the given weight (and bias), uploaded.
    ///
    /// # Errors
    /// The parameter and shape errors of [`ConvNdShape::new`], size and GPU errors.
    pub fn from_tensors(
        engine: &Engine,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: ConvNdParams<N>,
    ) -> Result<Self> {
        probe::<N>(None, weight.shape(), bias.map(Tensor::shape), &params)?;
        Ok(ConvNd {
            weight: engine.upload(weight)?,
            bias: bias.map(|b| engine.upload(b)).transpose()?,
            params,
        })
    }

    /// The weight, `[O, C/groups, *kernel]`.
    pub fn weight(&self) -> &GpuTensor {
        &self.weight
    }

    /// The bias, `[O]`, if the layer has one.
    pub fn bias(&self) -> Option<&GpuTensor> {
        self.bias.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn params(&self) -> &ConvNdParams<N> {
        &self.params
    }

    /// `conv(x, weight, bias)` on the GPU.
    ///
    /// # Errors
    /// As [`Engine::conv1d_gpu`] or [`Engine::conv3d_gpu`].
    pub fn forward(&self, engine: &Engine, x: &GpuTensor) -> Result<GpuTensor> {
        self.params
            .forward(engine, x, &self.weight, self.bias.as_ref())
    }

    /// The gradients with respect to `x`, the weight and the bias, given `grad_output = dL/dy`
    /// for `y = self.forward(x)`; through the fused activation when the parameters have one
    /// (as [`Conv2d::backward`]).
    ///
    /// # Errors
    /// As [`Engine::conv1d_backward`] or [`Engine::conv3d_backward`], and
    /// [`Engine::activation_grad`].
    pub fn backward(
        &self,
        engine: &Engine,
        x: &GpuTensor,
        grad_output: &GpuTensor,
    ) -> Result<Conv2dGrads> {
        let linear = ConvNdParams {
            activation: Activation::None,
            ..self.params
        };
        let (w, b) = (&self.weight, self.bias.as_ref());
        let dz = through_activation(engine, self.params.activation, grad_output, || {
            linear.forward(engine, x, w, b)
        })?;
        linear.backward(
            engine,
            x,
            w,
            dz.as_ref().unwrap_or(grad_output),
            b.is_some(),
        )
    }

    /// One SGD step on the weight and bias: `p -= lr * dL/dp`.
    ///
    /// # Errors
    /// As [`Conv2d::sgd_step`].
    pub fn sgd_step(&mut self, engine: &Engine, grads: &Conv2dGrads, lr: f32) -> Result<()> {
        sgd_update(engine, &mut self.weight, self.bias.as_mut(), grads, lr)
    }
}

/// Checks `weight` (and `bias`) with `params` on an input of one image of `channels` channels
/// (by default `weight[1] * groups`) just large enough for the dilated kernel and the padding
/// mode: [`ConvNdShape::new`]'s errors, or [`Error::WeightRank`].
fn probe<const N: usize>(
    channels: Option<usize>,
    weight: &[usize],
    bias: Option<&[usize]>,
    params: &ConvNdParams<N>,
) -> Result<()> {
    if weight.len() != N + 2 {
        // The probe's own rank would be wrong too: name the weight's.
        let (op, expected) = match N {
            1 => ("conv1d", "3D weight [O, C/groups, k]"),
            _ => ("conv3d", "5D weight [O, C/groups, kd, kh, kw]"),
        };
        return Err(Error::WeightRank {
            op,
            expected,
            shape: weight.to_vec(),
        });
    }
    let channels = channels.unwrap_or(weight[1].saturating_mul(params.groups));
    let mut input = vec![1, channels];
    // Long enough for the dilated kernel, and past each side's padding (reflect needs the
    // input longer than it, circular at least as long).
    input.extend((0..N).map(|a| {
        let pad = match params.padding {
            crate::spec::PaddingNd::Explicit(pads) => pads[a][0].max(pads[a][1]),
            _ => 0,
        };
        params.dilation[a]
            .saturating_mul(weight[2 + a])
            .max(pad.saturating_add(1))
    }));
    ConvNdShape::new(&input, weight, bias, params).map(drop)
}

/// What [`learn_edge_kernel`] learned: the loss at every step (before that step's update) and
/// the kernel at the end.
#[cfg(feature = "train")]
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeLesson {
    /// `sum((conv(X) - Y)^2)` at steps 1, 2, ...
    pub losses: Vec<f32>,
    /// The learned 1x2 kernel.
    pub kernel: [f32; 2],
}

/// The lecture's closing exercise, entirely on the GPU: `X` is a 6x8 image of ones with
/// columns 2-5 zero, `Y = corr2d(X, [1, -1])` its vertical edges; a 1x2 [`Conv2d`] without bias,
/// initialised from `seed`, learns the kernel by `steps` SGD steps of `lr` on the loss
/// `sum((conv(X) - Y)^2)`. `report(step, loss)` is called after every step (from 1).
///
/// # Errors
/// GPU errors; [`Error::NonFinite`] for a NaN or infinite `lr`; [`Error::Diverged`] when the
/// loss or the kernel stops being finite (a learning rate far too large).
#[cfg(feature = "train")]
pub fn learn_edge_kernel(
    engine: &Engine,
    steps: usize,
    lr: f32,
    seed: u64,
    mut report: impl FnMut(usize, f32),
) -> Result<EdgeLesson> {
    let x = Tensor::from_fn([1, 1, 6, 8], |i| {
        if (2..6).contains(&(i % 8)) {
            0.0
        } else {
            1.0
        }
    })?;
    let k = Tensor::new([1, 1, 1, 2], vec![1.0, -1.0])?;
    let x = engine.upload(&x)?;
    let k = engine.upload(&k)?;
    let params = Conv2dParams::default();
    let y = engine.conv2d_gpu(&x, &k, None, &params)?;
    let mut conv = Conv2d::new(
        engine,
        Conv2dConfig::new(1, 1, (1, 2)).bias(false).seed(seed),
    )?;
    let mut losses = Vec::new();
    for step in 1..=steps {
        let y_hat = conv.forward(engine, &x)?;
        let (loss, grad) = engine.squared_error(&y_hat, &y)?;
        let grads = conv.backward(engine, &x, &grad)?;
        conv.sgd_step(engine, &grads, lr)?;
        let loss = engine.download(&loss)?.data()[0];
        report(step, loss);
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step,
                lr,
                what: format!("the loss is {loss}"),
            });
        }
        losses.push(loss);
    }
    let w = engine.download(conv.weight())?;
    if w.data().iter().any(|v| !v.is_finite()) {
        return Err(Error::Diverged {
            step: steps,
            lr,
            what: format!("the kernel is {:?}", w.data()),
        });
    }
    Ok(EdgeLesson {
        losses,
        kernel: [w.data()[0], w.data()[1]],
    })
}
