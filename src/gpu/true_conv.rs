//! True convolution ([`ConvNdParams::flip_kernel`](crate::ConvNdParams::flip_kernel)): the
//! kernel turned by 180 degrees. Every call turns its weight once, on the host for host tensors
//! ([`Tensor::kernel_turned`](crate::Tensor::kernel_turned)) or on the device for GPU tensors
//! ([`Engine::kernel_turned`]), then runs the cross-correlation with it, so every kernel, split
//! and fused epilogue serves it unchanged; the weight gradient is turned back, being with respect
//! to the weight as stored.

use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::gpu::plan;
use crate::gpu::tensor::GpuTensor;

impl Engine {
    /// `weight` (`[O, C/groups, *kernel]`) with its kernel turned 180 degrees, into a new GPU
    /// tensor: each `[*kernel]` block reversed, which reverses every spatial axis (the device
    /// twin of [`Tensor::kernel_turned`](crate::Tensor::kernel_turned)). Turning twice gives the
    /// weight back.
    ///
    /// # Errors
    /// [`Error::ForeignTensor`](crate::Error::ForeignTensor), [`Error::DeviceLimit`](crate::Error::DeviceLimit)
    /// when the weight does not fit one binding, GPU errors.
    pub fn kernel_turned(&self, weight: &GpuTensor) -> Result<GpuTensor> {
        self.check_owner("weight", weight)?;
        let plan = plan::backward::turned_kernel(weight.shape(), &self.limits())?;
        self.flat_into("turning the kernel", plan, weight, weight.shape())
    }
}
