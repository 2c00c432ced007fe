//! The calls a layer's measurements make: conv2d's for conv2d and conv1d layers (a conv1d runs
//! as the conv2d of height 1 it is, which is what [`Engine::conv1d`] calls), conv3d's for conv3d
//! layers (whose kernel time includes the folding passes).

use super::suites::Layer;
use crate::error::Result;
use crate::gpu::backward::Conv2dGrads;
use crate::gpu::engine::Engine;
use crate::gpu::plan::Algorithm;
use crate::gpu::tensor::{GpuTensor, PackedWeights};
use crate::spec::{Activation, Conv2dParams, Conv2dShape, Conv3dParams, ConvNdShape};
use crate::tensor::Tensor;

/// A layer's problem for one batch size, and which family of calls runs it.
pub(super) enum Ops {
    /// conv2d calls (conv2d layers, and conv1d layers as conv2d of height 1).
    Planar(Conv2dShape, Conv2dParams),
    /// conv3d calls.
    Volume(ConvNdShape<3>, Conv3dParams),
}

/// A layer's weights on the device: packed once for the conv2d calls, plain for conv3d's.
pub(super) enum DeviceWeights {
    Packed(PackedWeights),
    Plain(GpuTensor),
}

impl Ops {
    /// The calls of `layer` at batch `n`.
    pub(super) fn of(layer: &Layer, n: usize) -> Result<Self> {
        Ok(match layer.dims {
            3 => Ops::Volume(layer.shape3d(n)?, layer.params3d()),
            _ => Ops::Planar(layer.shape(n)?, layer.params()),
        })
    }

    /// The 2D problem the planner sees (a conv3d's folded one).
    pub(super) fn planned(layer: &Layer, n: usize) -> Result<Conv2dShape> {
        layer.shape(n)
    }

    pub(super) fn input_shape(&self) -> Vec<usize> {
        match self {
            Ops::Planar(s, _) => s.input_shape().to_vec(),
            Ops::Volume(s, _) => s.input_shape(),
        }
    }

    pub(super) fn weight_shape(&self) -> Vec<usize> {
        match self {
            Ops::Planar(s, _) => s.weight_shape().to_vec(),
            Ops::Volume(s, _) => s.weight_shape(),
        }
    }

    pub(super) fn output_shape(&self) -> Vec<usize> {
        match self {
            Ops::Planar(s, _) => s.output_shape().to_vec(),
            Ops::Volume(s, _) => s.output_shape(),
        }
    }

    /// FLOPs of one convolution (a multiply-add counts two).
    pub(super) fn flops(&self) -> u64 {
        match self {
            Ops::Planar(s, _) => s.flops(),
            Ops::Volume(s, _) => s.flops(),
        }
    }

    /// The weights as the kernel-time measurement keeps them on the device.
    pub(super) fn device_weights(&self, e: &Engine, w: &Tensor) -> Result<DeviceWeights> {
        Ok(match self {
            Ops::Planar(_, p) => DeviceWeights::Packed(e.pack_weights(e.upload(w)?, p.groups)?),
            Ops::Volume(..) => DeviceWeights::Plain(e.upload(w)?),
        })
    }

    /// The convolution of resident tensors into `out`, on the engine's kernel of choice.
    pub(super) fn run_into(
        &self,
        e: &Engine,
        x: &GpuTensor,
        w: &DeviceWeights,
        b: &GpuTensor,
        out: &mut GpuTensor,
    ) -> Result<()> {
        match (self, w) {
            (Ops::Planar(_, p), DeviceWeights::Packed(w)) => e.conv2d_into(x, w, Some(b), p, out),
            (Ops::Planar(_, p), DeviceWeights::Plain(w)) => e.conv2d_into(x, w, Some(b), p, out),
            (Ops::Volume(_, p), DeviceWeights::Plain(w)) => {
                e.conv3d_into_with(Algorithm::Auto, x, w, Some(b), p, out)
            }
            (Ops::Volume(_, p), DeviceWeights::Packed(w)) => {
                e.conv3d_into_with(Algorithm::Auto, x, w.weight(), Some(b), p, out)
            }
        }
    }

    /// The one-shot call: host tensors in, host tensor out.
    pub(super) fn run_host(
        &self,
        e: &Engine,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
    ) -> Result<Tensor> {
        match self {
            Ops::Planar(_, p) => e.conv2d(x, w, Some(b), p),
            Ops::Volume(_, p) => e.conv3d(x, w, Some(b), p),
        }
    }

    /// The CPU baseline ([`cpu::fast`](crate::cpu::fast)).
    pub(super) fn cpu_baseline(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Ops::Planar(_, p) => crate::cpu::fast::conv2d(x, w, Some(b), p),
            Ops::Volume(_, p) => crate::cpu::fast::conv3d(x, w, Some(b), p),
        }
    }

    /// The calls of the convolution alone, without the fused activation: what the backward
    /// rows time (the convolution's gradients; an activation's own element-wise derivative is
    /// not in them).
    fn conv_alone(&self) -> Ops {
        match self {
            Ops::Planar(s, p) => Ops::Planar(
                *s,
                Conv2dParams {
                    activation: Activation::None,
                    ..*p
                },
            ),
            Ops::Volume(s, p) => Ops::Volume(
                *s,
                Conv3dParams {
                    activation: Activation::None,
                    ..*p
                },
            ),
        }
    }

    pub(super) fn grad_input(&self, e: &Engine, g: &GpuTensor, w: &GpuTensor) -> Result<GpuTensor> {
        let input_shape = self.input_shape();
        match &self.conv_alone() {
            Ops::Planar(_, p) => e.conv2d_grad_input(g, w, &input_shape, p),
            Ops::Volume(_, p) => e.conv3d_grad_input(g, w, &input_shape, p),
        }
    }

    pub(super) fn grad_weight(
        &self,
        e: &Engine,
        x: &GpuTensor,
        g: &GpuTensor,
    ) -> Result<GpuTensor> {
        let weight_shape = self.weight_shape();
        match &self.conv_alone() {
            Ops::Planar(_, p) => e.conv2d_grad_weight(x, g, &weight_shape, p),
            Ops::Volume(_, p) => e.conv3d_grad_weight(x, g, &weight_shape, p),
        }
    }

    pub(super) fn grad_bias(&self, e: &Engine, g: &GpuTensor) -> Result<GpuTensor> {
        match self {
            Ops::Planar(..) => e.conv2d_grad_bias(g),
            Ops::Volume(..) => e.conv3d_grad_bias(g),
        }
    }

    pub(super) fn backward(
        &self,
        e: &Engine,
        x: &GpuTensor,
        w: &GpuTensor,
        g: &GpuTensor,
    ) -> Result<Conv2dGrads> {
        match &self.conv_alone() {
            Ops::Planar(_, p) => e.conv2d_backward(x, w, g, p, true),
            Ops::Volume(_, p) => e.conv3d_backward(x, w, g, p, true),
        }
    }

    /// The CPU reference's gradients `[input, weight, bias]` in f64.
    pub(super) fn reference_grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
    ) -> Result<[Vec<f64>; 3]> {
        let grads = match &self.conv_alone() {
            Ops::Planar(_, p) => {
                let g = crate::cpu::reference::conv2d_backward_f64(x, w, g, p)?;
                [g.input, g.weight, g.bias]
            }
            Ops::Volume(_, p) => {
                let g = crate::cpu::reference::conv_nd_backward_f64(x, w, g, p)?;
                [g.input, g.weight, g.bias]
            }
        };
        Ok(grads)
    }
}
