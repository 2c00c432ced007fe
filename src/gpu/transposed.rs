//! Transposed convolutions (PyTorch's `conv_transpose2d`), which are also a convolution's input
//! gradient: the strategy is planned by [`plan::backward::transposed`] and run here.

use crate::error::Result;
use crate::gpu::engine::{blocking_and_async, Engine};
use crate::gpu::plan::{self, backward::Transposed, Plan};
use crate::gpu::tensor::GpuTensor;
use crate::spec::{ConvParams as _, ConvTranspose2dParams, ConvTranspose2dShape};
use crate::tensor::Tensor;

impl Engine {
    /// Transposed convolution of GPU tensors (PyTorch's `conv_transpose2d`): input
    /// `[N, Ci, P, Q]`, weight `[Ci, Co/groups, kh, kw]`, bias `[Co]`, into a new tensor
    /// `[N, Co, H, W]` with `H = (P-1)*sh - 2*ph + dh*(kh-1) + oph + 1` (likewise `W`).
    ///
    /// # Errors
    /// Every error of [`ConvTranspose2dShape::new`], [`Error::ForeignTensor`](crate::Error::ForeignTensor),
    /// size and GPU errors.
    pub fn conv_transpose2d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<GpuTensor> {
        self.transposed(&params.shape_of(input, weight, bias)?, input, weight, bias)
    }

    blocking_and_async! {
        /// One-shot transposed convolution: host tensors in, host tensor out.
        ///
        /// # Errors
        /// As [`Engine::conv_transpose2d_gpu`] and [`Engine::download`].
        self.conv_transpose2d, conv_transpose2d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &ConvTranspose2dParams
        ) -> Tensor,
        |wait| {
            // Validate before uploading anything.
            params.shape_of(input, weight, bias)?;
            let x = self.upload(input)?;
            let w = self.upload(weight)?;
            let b = bias.map(|b| self.upload(b)).transpose()?;
            let y = self.conv_transpose2d_gpu(&x, &w, b.as_ref(), params)?;
            self.download_with(&y, wait).await
        }
    }

    /// The transposed convolution `t` (shapes already validated against `t`).
    pub(crate) fn transposed(
        &self,
        t: &ConvTranspose2dShape,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        self.check_owner("input", input)?;
        self.check_owner("weight", weight)?;
        if let Some(b) = bias {
            self.check_owner("bias", b)?;
        }
        let bias_buffer = bias.map_or(self.no_bias(), GpuTensor::buffer);
        match plan::backward::transposed(t, &self.limits())? {
            Transposed::Empty => self.alloc(&t.output_shape()),
            Transposed::BatchPieces(images) => {
                // Too large for one binding: by pieces of the batch, each placed into the output.
                let out = self.alloc(&t.output_shape())?;
                let per_image = t.output_len() / t.batch;
                for range in plan::split::batch_ranges(t.batch, images) {
                    let piece_in = self.batch_slice(input, &range)?;
                    let piece = ConvTranspose2dShape {
                        batch: range.len(),
                        ..*t
                    };
                    let piece_out = self.transposed(&piece, &piece_in, weight, bias)?;
                    let dst = range.start * per_image;
                    self.copy_elements(&piece_out, 0, &out, dst, piece_out.len())?;
                }
                Ok(out)
            }
            Transposed::Spread { plan, shape, unit } => {
                let up = self.flat_into("spreading the input gradient", plan, input, &shape)?;
                self.transposed(&unit, &up, weight, bias)
            }
            Transposed::Flipped {
                plan,
                shape,
                params,
            } => {
                let flipped = self.flat_into("flipping weights", plan, weight, &shape)?;
                let mut out = self.alloc(&t.output_shape())?;
                // The engine's kernels of choice, whatever algorithm its callers force.
                self.conv2d_into_with(
                    plan::Algorithm::Auto,
                    input,
                    &flipped,
                    bias,
                    &params,
                    &mut out,
                )?;
                Ok(out)
            }
            Transposed::Gather(plan) => {
                let out = self.alloc(&t.output_shape())?;
                self.submit_steps(
                    "dispatching conv2d_grad_input",
                    &[(
                        plan,
                        &[input.buffer(), weight.buffer(), bias_buffer, out.buffer()],
                    )],
                )?;
                Ok(out)
            }
        }
    }

    /// A new tensor of `shape` written by the flat kernel `plan` reading `source`.
    pub(crate) fn flat_into(
        &self,
        during: &str,
        plan: Plan,
        source: &GpuTensor,
        shape: &[usize],
    ) -> Result<GpuTensor> {
        let out = self.alloc(shape)?;
        let x = source.buffer();
        self.submit_steps(during, &[(plan, &[x, out.buffer()])])?;
        Ok(out)
    }
}
