//! 1D convolutions (PyTorch's `conv1d`): input `[N, C, L]` (or unbatched `[C, L]`), weight
//! `[O, C/groups, k]`, output `[N, O, L_out]`.
//!
//! Each runs as the 2D convolution of height 1 it equals (`[N, C, 1, L]` by `[O, C/groups, 1, k]`,
//! see [`ConvNdShape::as_conv2d`]), so every 2D kernel, split and gradient serves it: the shapes
//! are checked and worded as conv1d's, the work is planned and recorded as conv2d's.

use crate::error::Result;
use crate::gpu::backward::Conv2dGrads;
use crate::gpu::device::Wait;
use crate::gpu::engine::{blocking_and_async, Engine};
use crate::gpu::forward::Weights;
use crate::gpu::plan::Algorithm;
use crate::gpu::tensor::GpuTensor;
use crate::spec::{Conv1dParams, ConvNdShape, ConvParams as _};
use crate::tensor::Tensor;

impl Engine {
    blocking_and_async! {
        /// One-shot 1D convolution: host tensors in (`[N, C, L]` or `[C, L]`, `[O, C/groups, k]`,
        /// bias `[O]`), host tensor `[N, O, L_out]` (or `[O, L_out]`) out, split like
        /// [`Engine::conv2d`] where the device needs it.
        ///
        /// # Errors
        /// Every shape or parameter error of [`ConvNdShape::new`], and as [`Engine::conv2d`].
        self.conv1d, conv1d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &Conv1dParams
        ) -> Tensor,
        |wait| { self.conv1d_with(input, weight, bias, None, params, wait).await }
    }

    blocking_and_async! {
        /// One-shot 1D convolution with the fused epilogue
        /// `act(conv1d(input, weight) + bias + residual)` (see [`Engine::conv2d_fused`]).
        ///
        /// # Errors
        /// As [`Engine::conv1d`], and [`Error::ResidualShape`](crate::Error::ResidualShape).
        conv1d_fused, conv1d_fused_async => conv1d_with(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            residual: Option<&Tensor>,
            params: &Conv1dParams
        ) -> Tensor
    }

    async fn conv1d_with(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        params: &Conv1dParams,
        wait: Wait,
    ) -> Result<Tensor> {
        let shape = params
            .shape_of(input, weight, bias)?
            .with_residual(residual.map(Tensor::shape))?;
        let y = self
            .conv_lowered(&shape.as_conv2d(), input, weight, bias, residual, wait)
            .await?;
        Tensor::new(shape.output_shape(), y.into_data())
    }

    /// 1D convolution of GPU tensors into a new GPU tensor `[N, O, L_out]` (`[O, L_out]`
    /// unbatched); returns once the work is submitted. `weights`: a [`GpuTensor`] or
    /// [`PackedWeights`](crate::PackedWeights) packed from `[O, C/groups, k]`.
    ///
    /// # Errors
    /// Every shape or parameter error of [`ConvNdShape::new`], and as [`Engine::conv2d_gpu`].
    pub fn conv1d_gpu<'w>(
        &self,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        params: &Conv1dParams,
    ) -> Result<GpuTensor> {
        self.conv1d_fused_gpu(input, weights, bias, None, params)
    }

    /// 1D convolution of GPU tensors with the fused epilogue
    /// `act(conv1d(input, weights) + bias + residual)` into a new GPU tensor.
    ///
    /// # Errors
    /// As [`Engine::conv1d_gpu`], and [`Error::ResidualShape`](crate::Error::ResidualShape).
    pub fn conv1d_fused_gpu<'w>(
        &self,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv1dParams,
    ) -> Result<GpuTensor> {
        let weights = weights.into();
        let shape = self.fused_shape(input, weights, bias, residual, params)?;
        let output = self.alloc(&shape.output_shape())?;
        let tensors = (input, weights, bias, residual);
        self.plan_and_record(&shape.as_conv2d(), tensors, &output, self.algorithm())?;
        Ok(output)
    }

    /// 1D convolution of GPU tensors written into `output`, which must have the output's shape,
    /// with `algorithm` (the engine's own with [`Engine::algorithm`]).
    ///
    /// # Errors
    /// As [`Engine::conv1d_gpu`], [`Error::OutputShape`](crate::Error::OutputShape) and [`Error::UnsupportedAlgorithm`](crate::Error::UnsupportedAlgorithm).
    pub fn conv1d_into_with<'w>(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        params: &Conv1dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.conv1d_fused_into_with(algorithm, input, weights, bias, None, params, output)
    }

    /// As [`Engine::conv1d_fused_gpu`], written into `output`, with an explicit algorithm.
    ///
    /// # Errors
    /// As [`Engine::conv1d_into_with`], and [`Error::ResidualShape`](crate::Error::ResidualShape).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d_fused_into_with<'w>(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv1dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        let weights = weights.into();
        let shape = self.fused_shape(input, weights, bias, residual, params)?;
        self.check_output(output, &shape.output_shape())?;
        let tensors = (input, weights, bias, residual);
        self.plan_and_record(&shape.as_conv2d(), tensors, output, algorithm)
    }

    /// All gradients of `y = conv1d(input, weight, bias)` given `grad_output = dL/dy`, in the
    /// shapes of what they differentiate: input (`[N, C, L]` or `[C, L]`), weight
    /// `[O, C/groups, k]`, and bias `[O]` when `with_bias`.
    ///
    /// # Errors
    /// Every shape or parameter error of [`ConvNdShape::new`], [`Error::GradOutputShape`](crate::Error::GradOutputShape), and
    /// as [`Engine::conv2d_backward`].
    pub fn conv1d_backward(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        params: &Conv1dParams,
        with_bias: bool,
    ) -> Result<Conv2dGrads> {
        let shape = ConvNdShape::new(input.shape(), weight.shape(), None, params)?;
        shape.check_backward("conv1d_backward", grad_output.shape())?;
        let s = shape.as_conv2d();
        let grads = self.conv2d_backward(
            &input.view(&s.input_shape()),
            &weight.view(&s.weight_shape()),
            &grad_output.view(&s.output_shape()),
            &s.params(),
            with_bias,
        )?;
        Ok(Conv2dGrads {
            input: grads.input.view(&shape.input_shape()),
            weight: grads.weight.view(&shape.weight_shape()),
            bias: grads.bias,
        })
    }
}
