//! Backward passes on the GPU: a convolution's gradients with respect to its input (the
//! transposed convolution, [`transposed`](super::transposed)), weights and bias.
//!
//! For `y = conv2d(x, w) + b` and an upstream gradient `g = dL/dy`:
//!
//! - `dL/dx[n, c, h, w] = sum over o in c's group, i, j of g[n, o, p, q] * w[o, c mod Cg, i, j]`
//!   over the `(p, q)` whose window puts tap `(i, j)` on `(h, w)`: `conv_transpose2d(g, w)`.
//!   When the padding reads the input (a [`PaddingMode`](crate::spec::PaddingMode) other than zeros), taps in the padding
//!   put their share on the element they read: the gradient of the padded input, folded back.
//! - `dL/dw[o, ci, i, j] = sum over n, p, q of g[n, o, p, q] * x[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]`
//! - `dL/db[o] = sum over n, p, q of g[n, o, p, q]`
//!
//! The two sums run as split reductions (see [`plan::backward`]): chunks of output rows in
//! parallel (the weight gradient register-tiled: 8 output channels, 4 when groups have fewer, x
//! 8 weight entries per invocation, or what the profile or the tuner says), then the chunks
//! added in order by a second kernel. Every value is written by one invocation: no atomics, and
//! the results do not depend on scheduling.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::engine::Engine;
use crate::gpu::kernels::{ConvUniforms, Kernel};
use crate::gpu::pipelines::is_build_failure;
use crate::gpu::plan::{self, backward::check_indexing, backward::chunking};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::tuning::Op;
use crate::spec::{Conv2dParams, Conv2dShape, ConvNdShape, ConvTranspose2dShape};

/// The gradients of a convolution's loss ([`Engine::conv2d_backward`]).
#[derive(Debug)]
pub struct Conv2dGrads {
    /// `dL/dinput`, `[N, C, H, W]`.
    pub input: GpuTensor,
    /// `dL/dweight`, `[O, C/groups, kh, kw]`.
    pub weight: GpuTensor,
    /// `dL/dbias`, `[O]`, when the convolution has a bias.
    pub bias: Option<GpuTensor>,
}

impl Engine {
    /// Checks that each tensor fits one binding (the backward kernels other than stride-1 input
    /// gradients are not split).
    pub(crate) fn check_bindings(&self, tensors: &[(&str, usize)]) -> Result<()> {
        plan::split::check_bindings(tensors, &self.limits())
    }

    /// Images `images` of a batch-major tensor, copied into a tensor of their own.
    pub(crate) fn batch_slice(&self, t: &GpuTensor, images: &Range<usize>) -> Result<GpuTensor> {
        let mut shape = t.shape().to_vec();
        let per_image = t.len() / shape[0];
        shape[0] = images.len();
        let piece = self.alloc(&shape)?;
        self.copy_elements(t, images.start * per_image, &piece, 0, piece.len())?;
        Ok(piece)
    }

    /// `a + b` element by element, added as the split reductions add their chunks (the two side
    /// by side, summed in order by `reduce_partials`).
    fn sum_of(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let len = a.len();
        let both_len = len.checked_mul(2).ok_or_else(|| Error::SizeOverflow {
            what: "two partial sums".into(),
        })?;
        self.check_bindings(&[("partial sums", both_len)])?;
        let both = self.alloc(&[both_len])?;
        self.copy_elements(a, 0, &both, 0, len)?;
        self.copy_elements(b, 0, &both, len, len)?;
        let out = self.alloc(a.shape())?;
        let reduce = ConvUniforms {
            chunk_len: 2,
            ..ConvUniforms::default()
        };
        let plan = plan::flat(Kernel::ReducePartials, len, reduce, &self.limits())?;
        let partial = both.buffer();
        self.submit_steps("adding batch pieces", &[(plan, &[partial, out.buffer()])])?;
        Ok(out)
    }

    /// Runs `pass` on batch pieces of `images` images each and adds the results (`total + part`,
    /// in piece order, so the sum is deterministic).
    pub(crate) fn summed_over_pieces(
        &self,
        batch: usize,
        images: usize,
        mut pass: impl FnMut(&Range<usize>) -> Result<GpuTensor>,
    ) -> Result<GpuTensor> {
        let mut total: Option<GpuTensor> = None;
        for range in plan::split::batch_ranges(batch, images) {
            let part = pass(&range)?;
            total = Some(match total {
                None => part,
                Some(t) => self.sum_of(&t, &part)?,
            });
        }
        total.ok_or_else(|| Error::SizeOverflow {
            what: "an empty batch split".into(),
        })
    }

    /// The validated forward problem of a backward call (as given, and as the batched problem
    /// it runs as), with `grad_output` checked against its output's shape.
    fn backward_shape(
        &self,
        input_shape: &[usize],
        weight_shape: &[usize],
        grad_output: &GpuTensor,
        params: &Conv2dParams,
    ) -> Result<(ConvNdShape<2>, Conv2dShape)> {
        self.check_owner("grad_output", grad_output)?;
        let shape = ConvNdShape::<2>::new(input_shape, weight_shape, None, &params.into())?;
        shape.check_backward("conv2d_backward", grad_output.shape())?;
        Ok((shape, shape.as_conv2d()))
    }

    /// `dL/dinput` `[N, C, H, W]` of the convolution of an input of `input_shape` with `weight`,
    /// given `grad_output = dL/doutput`: the transposed convolution of `grad_output` by `weight`.
    ///
    /// # Errors
    /// The forward shape's errors ([`Conv2dShape::new`]), [`Error::GradOutputShape`] for a
    /// `grad_output` of another shape than the output's, size and GPU errors.
    pub fn conv2d_grad_input(
        &self,
        grad_output: &GpuTensor,
        weight: &GpuTensor,
        input_shape: &[usize],
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        let (given, shape) =
            self.backward_shape(input_shape, weight.shape(), grad_output, params)?;
        if params.flip_kernel {
            // True convolution: the cross-correlation's gradient with the kernel turned.
            let turned = self.kernel_turned(weight)?;
            let unflipped = params.with_flip_kernel(false);
            return self.conv2d_grad_input(grad_output, &turned, input_shape, &unflipped);
        }
        // An unbatched problem runs as its batch of one, and its gradient comes back unbatched.
        let gy = grad_output.view(&shape.output_shape());
        let grad = if shape.pads_with_mode() {
            self.grad_input_through_padding(&shape, &gy, weight)?
        } else {
            let t = ConvTranspose2dShape::input_gradient_of(&shape);
            self.transposed(&t, &gy, weight, None)?
        };
        Ok(grad.view(&given.input_shape()))
    }

    /// The input gradient of a convolution whose padding reads the input (reflect, replicate,
    /// circular): the gradient with respect to the padded input, as the input gradient of the
    /// unpadded convolution over it, then each padded position's gradient added onto the element
    /// it read (shaders/fold_padding.wgsl). The padded gradient is the one tensor this makes
    /// that the forward pass does not; it must fit one binding.
    fn grad_input_through_padding(
        &self,
        shape: &Conv2dShape,
        grad_output: &GpuTensor,
        weight: &GpuTensor,
    ) -> Result<GpuTensor> {
        let padded = shape.over_padded_input()?;
        self.check_bindings(&[("padded input gradient", padded.input_len())])?;
        let t = ConvTranspose2dShape::input_gradient_of(&padded);
        let grad_padded = self.transposed(&t, grad_output, weight, None)?;
        let grad = self.alloc(&shape.input_shape())?;
        let mut uniforms = plan::uniforms_of(shape)?;
        uniforms.out_h = plan::index_u32("padded input height", padded.in_h)?;
        uniforms.out_w = plan::index_u32("padded input width", padded.in_w)?;
        let fold = plan::flat(
            Kernel::FoldPadding,
            shape.input_len(),
            uniforms,
            &self.limits(),
        )?;
        let buffers = [grad_padded.buffer(), grad.buffer()];
        self.submit_steps("folding the padding's gradient", &[(fold, &buffers)])?;
        Ok(grad)
    }

    /// `dL/dweight` `[O, C/groups, kh, kw]` of the convolution of `input` with weights of
    /// `weight_shape`, given `grad_output`.
    ///
    /// # Errors
    /// As [`Engine::conv2d_grad_input`].
    pub fn conv2d_grad_weight(
        &self,
        input: &GpuTensor,
        grad_output: &GpuTensor,
        weight_shape: &[usize],
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        self.check_owner("input", input)?;
        let (_, shape) = self.backward_shape(input.shape(), weight_shape, grad_output, params)?;
        if params.flip_kernel {
            // True convolution: the gradient with respect to the turned kernel, turned back to
            // the weight as stored.
            let unflipped = params.with_flip_kernel(false);
            let turned = self.conv2d_grad_weight(input, grad_output, weight_shape, &unflipped)?;
            return self.kernel_turned(&turned);
        }
        // An unbatched problem runs as its batch of one.
        let (input, grad_output) = (
            &input.view(&shape.input_shape()),
            &grad_output.view(&shape.output_shape()),
        );
        let per_image = [
            ("input", shape.input_len() / shape.batch.max(1)),
            ("grad_output", shape.output_len() / shape.batch.max(1)),
        ];
        if let Some(images) = plan::split::batch_split(shape.batch, &per_image, &self.limits()) {
            return self.summed_over_pieces(shape.batch, images, |range| {
                let x = self.batch_slice(input, range)?;
                let gy = self.batch_slice(grad_output, range)?;
                self.conv2d_grad_weight(&x, &gy, weight_shape, params)
            });
        }
        if shape.output_len() > 0 {
            check_indexing(&ConvTranspose2dShape::input_gradient_of(&shape))?;
        }
        let kernel = self.grad_weight_kernel(&shape);
        match self.grad_weight_with(kernel, &shape, input, grad_output) {
            Err(e) if is_build_failure(&e) && kernel != Kernel::GradWeight(4, 4) => {
                log::warn!("wgconv: {e}; the weight gradient falls back to 4x4 tiles");
                self.grad_weight_with(Kernel::GradWeight(4, 4), &shape, input, grad_output)
            }
            result => result,
        }
    }

    /// The weight-gradient kernel for `shape`: the tuned one for its class, else the profile's.
    pub(crate) fn grad_weight_kernel(&self, shape: &Conv2dShape) -> Kernel {
        self.tuned(Op::GradWeight, shape)
            .and_then(|choice| parse_grad_weight(&choice))
            .unwrap_or_else(|| self.default_grad_weight_kernel(shape))
    }

    /// The weight-gradient kernel the profile gives `shape`, untuned: tiles of 8 (or, for fewer
    /// channels per group, 4) output channels x 8 weight entries, within the profile.
    pub(crate) fn default_grad_weight_kernel(&self, shape: &Conv2dShape) -> Kernel {
        let profile = self.profile();
        let tile_o = if shape.out_channels_per_group() >= 8 {
            8
        } else {
            4
        };
        // Each weight entry is a masked load of the input.
        Kernel::GradWeight(
            tile_o.min(profile.max_grad_weight_tile),
            if profile.max_masked_loads >= 8 { 8 } else { 4 },
        )
    }

    /// The weight gradient of `shape` with the weight-gradient `kernel`.
    pub(crate) fn grad_weight_with(
        &self,
        kernel: Kernel,
        shape: &Conv2dShape,
        input: &GpuTensor,
        grad_output: &GpuTensor,
    ) -> Result<GpuTensor> {
        let Kernel::GradWeight(tile_o, entries) = kernel else {
            return Err(Error::UnsupportedAlgorithm {
                algorithm: "weight gradient",
                reason: format!("{} is not a weight-gradient kernel", kernel.name()),
            });
        };
        let og = shape.out_channels_per_group();
        let tiles = shape.groups
            * og.div_ceil(tile_o as usize)
            * shape.reduction_len().div_ceil(entries as usize);
        let rows = shape.batch * shape.out_h;
        let (chunks, chunk_len) = chunking(rows, tiles, self.limits().cpu_adapter);
        self.split_reduction(
            kernel,
            shape,
            &shape.weight_shape(),
            (chunks, chunk_len, rows, chunks * tiles),
            &[input.buffer(), grad_output.buffer()],
            &[
                ("input", shape.input_len()),
                ("grad_output", shape.output_len()),
            ],
        )
    }

    /// `dL/dbias` `[O]`: `grad_output` (`[N, O, P, Q]`) summed over `N`, `P` and `Q`.
    ///
    /// # Errors
    /// [`Error::InputRank`] for a `grad_output` that is not 3-D (unbatched) or 4-D, size and GPU
    /// errors.
    pub fn conv2d_grad_bias(&self, grad_output: &GpuTensor) -> Result<GpuTensor> {
        self.check_owner("grad_output", grad_output)?;
        if let &[o, p, q] = grad_output.shape() {
            // An unbatched gradient sums as the batch of one it is.
            return self.conv2d_grad_bias(&grad_output.view(&[1, o, p, q]));
        }
        let &[n, o, p, q] = grad_output.shape() else {
            return Err(Error::InputRank {
                op: "conv2d_grad_bias",
                expected: "3D (unbatched) or 4D (batched) [N, O, P, Q]".into(),
                shape: grad_output.shape().to_vec(),
            });
        };
        // The kernel reads only the output sizes of this stand-in problem.
        let shape = Conv2dShape {
            batch: n,
            in_channels: 1,
            in_h: 1,
            in_w: 1,
            out_channels: o,
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            dilation_h: 1,
            dilation_w: 1,
            groups: 1,
            has_bias: true,
            out_h: p,
            out_w: q,
            padding_mode: crate::spec::PaddingMode::Zeros,
            activation: crate::spec::Activation::None,
            has_residual: false,
            flip_kernel: false,
        };
        if let Some(images) = plan::split::batch_split(
            n,
            &[("grad_output", grad_output.len() / n.max(1))],
            &self.limits(),
        ) {
            return self.summed_over_pieces(n, images, |range| {
                self.conv2d_grad_bias(&self.batch_slice(grad_output, range)?)
            });
        }
        if grad_output.is_empty() {
            // Nothing to sum: zeros (an empty grad_output with a huge other dimension included).
            let out = self.alloc(&[o])?;
            if o > 0 {
                self.gpu().submit("zeroing a bias gradient", |encoder| {
                    encoder.clear_buffer(out.buffer(), 0, None);
                })?;
            }
            return Ok(out);
        }
        // Not empty, so n * p <= the element count.
        let rows = n * p;
        let (chunks, chunk_len) = chunking(rows, o, self.limits().cpu_adapter);
        self.split_reduction(
            Kernel::GradBias,
            &shape,
            &[o],
            (chunks, chunk_len, rows, chunks * o),
            &[grad_output.buffer()],
            &[("grad_output", grad_output.len())],
        )
    }

    /// Runs `kernel`'s partial sums over `(chunks, chunk_len, rows)` with `items` invocations
    /// into a temporary buffer of `chunks` copies of `out_shape`, and adds the chunks into a new
    /// tensor of `out_shape`.
    fn split_reduction(
        &self,
        kernel: Kernel,
        shape: &Conv2dShape,
        out_shape: &[usize],
        (chunks, chunk_len, rows, items): (usize, usize, usize, usize),
        inputs: &[&wgpu::Buffer],
        read: &[(&str, usize)],
    ) -> Result<GpuTensor> {
        let out = self.alloc(out_shape)?;
        let len = out.len();
        if len == 0 {
            return Ok(out);
        }
        // Fewer, longer chunks when their partial sums would not fit one binding (a small
        // device): the same rows, summed in the same kind of order.
        let room = usize::try_from(self.limits().max_binding / 4).unwrap_or(usize::MAX);
        let (chunks, chunk_len, items) = match room / len {
            fit if fit >= 1 && fit < chunks => {
                let tiles = items / chunks;
                let chunk_len = rows.div_ceil(fit).max(1);
                let chunks = rows.div_ceil(chunk_len).max(1);
                (chunks, chunk_len, chunks * tiles)
            }
            _ => (chunks, chunk_len, items),
        };
        let partial_len = chunks.checked_mul(len).ok_or_else(|| Error::SizeOverflow {
            what: "partial sums".into(),
        })?;
        let partial = self.alloc(&[partial_len])?;
        self.check_bindings(read)?;
        self.check_bindings(&[("partial sums", partial_len)])?;
        let mut uniforms = plan::uniforms_of(shape)?;
        uniforms.chunk_len = plan::index_u32("rows per chunk", chunk_len)?;
        uniforms.reduce_len = plan::index_u32("rows", rows)?;
        let partial_plan = plan::flat(kernel, items, uniforms, &self.limits())?;
        let reduce = ConvUniforms {
            chunk_len: plan::index_u32("chunks", chunks)?,
            ..ConvUniforms::default()
        };
        let reduce_plan = plan::flat(Kernel::ReducePartials, len, reduce, &self.limits())?;
        self.submit_steps(
            kernel.file_name(),
            &[
                (partial_plan, &[inputs, &[partial.buffer()]].concat()),
                (reduce_plan, &[partial.buffer(), out.buffer()]),
            ],
        )?;
        Ok(out)
    }

    /// All gradients of `y = conv2d(input, weight, bias)` given `grad_output = dL/dy`: input,
    /// weight, and bias when `with_bias`.
    ///
    /// # Errors
    /// As [`Engine::conv2d_grad_input`].
    pub fn conv2d_backward(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        params: &Conv2dParams,
        with_bias: bool,
    ) -> Result<Conv2dGrads> {
        self.check_owner("input", input)?;
        self.backward_shape(input.shape(), weight.shape(), grad_output, params)?;
        Ok(Conv2dGrads {
            input: self.conv2d_grad_input(grad_output, weight, input.shape(), params)?,
            weight: self.conv2d_grad_weight(input, grad_output, weight.shape(), params)?,
            bias: if with_bias {
                Some(self.conv2d_grad_bias(grad_output)?)
            } else {
                None
            },
        })
    }
}

/// The weight-gradient kernel a tuning-cache choice names (`conv2d_grad_weight_8x4`).
pub(crate) fn parse_grad_weight(choice: &str) -> Option<Kernel> {
    let (tile_o, entries) = choice
        .strip_prefix("conv2d_grad_weight_")?
        .split_once('x')?;
    let (tile_o, entries) = (tile_o.parse().ok()?, entries.parse().ok()?);
    ([4, 8].contains(&tile_o) && [4, 8].contains(&entries))
        .then_some(Kernel::GradWeight(tile_o, entries))
}
