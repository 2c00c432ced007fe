//! Training on the GPU: the squared-error loss with its gradient, the backward pass through a
//! fused activation, and the SGD step.

use crate::error::{Error, Result};
use crate::gpu::engine::Engine;
use crate::gpu::kernels::{ConvUniforms, Kernel};
use crate::gpu::plan::{self, backward::chunking};
use crate::gpu::tensor::GpuTensor;
use crate::spec::Activation;

impl Engine {
    /// The squared-error loss `L = sum (prediction - target)^2` as a one-element tensor, and its
    /// gradient `2 * (prediction - target)`, both on the GPU.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ; size and GPU errors.
    pub fn squared_error(
        &self,
        prediction: &GpuTensor,
        target: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        self.check_owner("prediction", prediction)?;
        self.check_owner("target", target)?;
        if prediction.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                what: "target",
                expected: prediction.shape().to_vec(),
                got: target.shape().to_vec(),
            });
        }
        let len = prediction.len();
        self.check_bindings(&[("prediction", len)])?;
        let grad = self.alloc(prediction.shape())?;
        let loss = self.alloc(&[1])?;
        let (chunks, chunk_len) = chunking(len, 1, self.limits().cpu_adapter);
        let partial = self.alloc(&[chunks])?;
        let mut uniforms = ConvUniforms {
            chunk_len: plan::index_u32("elements per chunk", chunk_len)?,
            reduce_len: plan::index_u32("elements", len)?,
            ..ConvUniforms::default()
        };
        let grad_plan = plan::flat(Kernel::SquaredErrorGrad, len, uniforms, &self.limits())?;
        let sum_plan = plan::flat(Kernel::SquaredErrorSum, chunks, uniforms, &self.limits())?;
        uniforms.chunk_len = plan::index_u32("chunks", chunks)?;
        let reduce_plan = plan::flat(Kernel::ReducePartials, 1, uniforms, &self.limits())?;
        let (p, t) = (prediction.buffer(), target.buffer());
        let sum: &[&wgpu::Buffer] = &[p, t, partial.buffer()];
        let reduce: &[&wgpu::Buffer] = &[partial.buffer(), loss.buffer()];
        let mut steps = vec![(sum_plan, sum), (reduce_plan, reduce)];
        let gradient: &[&wgpu::Buffer] = &[p, t, grad.buffer()];
        if len > 0 {
            steps.push((grad_plan, gradient));
        }
        self.submit_steps("squared error", &steps)?;
        Ok((loss, grad))
    }

    /// The gradient through a fused epilogue's activation: `grad_output * act'(pre)` element by
    /// element ([`Activation::derivative`]'s choices at the kinks), for `pre = conv + bias
    /// (+ residual)` and `grad_output = dL/d act(pre)`. The residual's gradient is this too.
    ///
    /// # Errors
    /// [`Error::ActivationParameter`], [`Error::GradOutputShape`] when the shapes differ, size and
    /// GPU errors.
    pub fn activation_grad(
        &self,
        pre: &GpuTensor,
        grad_output: &GpuTensor,
        activation: Activation,
    ) -> Result<GpuTensor> {
        self.check_owner("pre", pre)?;
        self.check_owner("grad_output", grad_output)?;
        activation.check()?;
        if pre.shape() != grad_output.shape() {
            return Err(Error::GradOutputShape {
                expected: pre.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        let dz = self.alloc(pre.shape())?;
        if pre.is_empty() {
            return Ok(dz);
        }
        self.check_bindings(&[("pre", pre.len())])?;
        let uniforms = ConvUniforms::default().with_epilogue(activation, false);
        let plan = plan::flat(Kernel::EpilogueGrad, pre.len(), uniforms, &self.limits())?;
        let buffers: &[&wgpu::Buffer] = &[pre.buffer(), grad_output.buffer(), dz.buffer()];
        self.submit_steps("the activation's gradient", &[(plan, buffers)])?;
        Ok(dz)
    }

    /// One plain SGD step: `param -= lr * grad`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinite `lr`, [`Error::ShapeMismatch`] when the shapes
    /// differ, size and GPU errors.
    pub fn sgd_step(&self, param: &mut GpuTensor, grad: &GpuTensor, lr: f32) -> Result<()> {
        self.check_owner("param", param)?;
        self.check_owner("grad", grad)?;
        if !lr.is_finite() {
            return Err(Error::NonFinite {
                name: "learning rate",
                value: lr,
            });
        }
        if param.shape() != grad.shape() {
            return Err(Error::ShapeMismatch {
                what: "grad",
                expected: param.shape().to_vec(),
                got: grad.shape().to_vec(),
            });
        }
        if param.is_empty() {
            return Ok(());
        }
        self.check_bindings(&[("param", param.len())])?;
        let uniforms = ConvUniforms {
            scalar_bits: lr.to_bits(),
            ..ConvUniforms::default()
        };
        let plan = plan::flat(Kernel::SgdStep, param.len(), uniforms, &self.limits())?;
        self.submit_steps("sgd step", &[(plan, &[grad.buffer(), param.buffer()])])?;
        Ok(())
    }
}
