//! Backward passes on the GPU: a convolution's gradients with respect to its input (the
//! transposed convolution), weights and bias; the squared-error loss and the SGD step.
//!
//! For `y = conv2d(x, w) + b` and an upstream gradient `g = dL/dy`:
//!
//! - `dL/dx[n, c, h, w] = sum over o in c's group, i, j of g[n, o, p, q] * w[o, c mod Cg, i, j]`
//!   over the `(p, q)` whose window puts tap `(i, j)` on `(h, w)`: `conv_transpose2d(g, w)`.
//!   Stride 1 runs as a forward convolution of `g` with the weights turned by 180 degrees and
//!   channels swapped per group, so it gets the fast forward kernels and their splitting; larger
//!   strides do the same over `g` spread out with zeros between its values; padding beyond the
//!   kernel's reach runs the gather kernel `conv2d_grad_input`.
//! - `dL/dw[o, ci, i, j] = sum over n, p, q of g[n, o, p, q] * x[n, g*Cg + ci, p*sh + i*dh - top, q*sw + j*dw - left]`
//! - `dL/db[o] = sum over n, p, q of g[n, o, p, q]`
//!
//! The two sums run as split reductions: chunks of output rows in parallel (the weight gradient
//! register-tiled, 8 output channels (4 when groups have fewer) x 8 weight entries per invocation), then the chunks added
//! in order by a second kernel. Every value is written by one invocation: no atomics, and the
//! results do not depend on scheduling.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::codegen::GRAD_WEIGHT_ENTRIES;
use crate::gpu::engine::Engine;
use crate::gpu::kernels::{ConvUniforms, Kernel};
use crate::gpu::plan::{self, Algorithm, Plan};
use crate::gpu::tensor::GpuTensor;
use crate::spec::{
    Conv2dParams, Conv2dShape, ConvTranspose2dParams, ConvTranspose2dShape, Padding,
};
use crate::tensor::Tensor;

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

/// Invocations a split reduction aims for: enough to fill the device, few enough that the
/// partial sums stay small. CPU adapters run a workgroup per task, so fewer suffice there.
fn reduction_target(cpu_adapter: bool) -> usize {
    if cpu_adapter {
        4096
    } else {
        65536
    }
}

/// Chunks for a split reduction of `rows` rows into `outputs` sums: `(chunks, rows per chunk)`.
fn chunking(rows: usize, outputs: usize, cpu_adapter: bool) -> (usize, usize) {
    let chunks = (reduction_target(cpu_adapter) / outputs.max(1)).clamp(1, rows.max(1));
    let chunk_len = rows.div_ceil(chunks).max(1);
    (rows.div_ceil(chunk_len).max(1), chunk_len)
}

fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: v as u64,
        limit: u64::from(u32::MAX),
        why: "the shaders index with u32",
    })
}

/// The uniform block describing the convolution whose input is a transposed convolution's
/// output (the parameters the gather kernel reads).
fn transposed_uniforms(t: &ConvTranspose2dShape) -> Result<ConvUniforms> {
    let u = u32_of;
    Ok(ConvUniforms {
        batch: u("batch", t.batch)?,
        in_channels: u("output channels", t.out_channels)?,
        in_h: u("output height", t.out_h)?,
        in_w: u("output width", t.out_w)?,
        out_channels: u("input channels", t.in_channels)?,
        kernel_h: u("kernel_h", t.kernel_h)?,
        kernel_w: u("kernel_w", t.kernel_w)?,
        groups: u("groups", t.groups)?,
        out_h: u("input height", t.in_h)?,
        out_w: u("input width", t.in_w)?,
        stride_h: u("stride_h", t.stride_h)?,
        stride_w: u("stride_w", t.stride_w)?,
        pad_top: u("pad_top", t.pad_top)?,
        pad_left: u("pad_left", t.pad_left)?,
        dilation_h: u("dilation_h", t.dilation_h)?,
        dilation_w: u("dilation_w", t.dilation_w)?,
        has_bias: u32::from(t.has_bias),
        ..ConvUniforms::default()
    })
}

/// Checks the backward kernels' index arithmetic for `t` (in the forward convolution's terms:
/// padded extents and receptive-field reach as i32, element counts as u32), so that no value
/// wraps in a shader.
fn check_indexing(t: &ConvTranspose2dShape) -> Result<()> {
    let why = "input coordinates are i32 in the shaders";
    let reach = |k: usize, d: usize| (k as u128 - 1) * d as u128;
    let field = |n: usize, s: usize, k: usize, d: usize| (n as u128 - 1) * s as u128 + reach(k, d);
    for (what, value) in [
        ("padded height", t.out_h as u128 + t.pad_top as u128),
        ("padded width", t.out_w as u128 + t.pad_left as u128),
        ("kernel reach in height", reach(t.kernel_h, t.dilation_h)),
        ("kernel reach in width", reach(t.kernel_w, t.dilation_w)),
        (
            "receptive field reach in height",
            field(t.in_h, t.stride_h, t.kernel_h, t.dilation_h),
        ),
        (
            "receptive field reach in width",
            field(t.in_w, t.stride_w, t.kernel_w, t.dilation_w),
        ),
    ] {
        if value > i32::MAX as u128 {
            return Err(Error::TooLarge {
                what: what.to_string(),
                value: u64::try_from(value).unwrap_or(u64::MAX),
                limit: i32::MAX as u64,
                why,
            });
        }
    }
    for (what, len) in [
        ("input element count", t.input_len()),
        ("weight element count", t.weight_len()),
        ("output element count", t.output_len()),
    ] {
        u32_of(what, len)?;
    }
    Ok(())
}

impl Engine {
    /// Records `steps` (plans with their buffers at bindings 0-3) in one submission.
    fn submit_steps(&self, during: &str, steps: &[(Plan, [&wgpu::Buffer; 4])]) -> Result<()> {
        let pipelines = steps
            .iter()
            .map(|(plan, _)| self.pipeline(plan.kernel, plan.workgroup_size))
            .collect::<Result<Vec<_>>>()?;
        self.scoped(during, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(during),
                });
            for ((plan, buffers), pipeline) in steps.iter().zip(&pipelines) {
                self.encode(&mut encoder, pipeline, plan, *buffers);
            }
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Checks that each tensor fits one binding (the backward kernels other than stride-1 input
    /// gradients are not split).
    fn check_bindings(&self, tensors: &[(&str, usize)]) -> Result<()> {
        for &(what, len) in tensors {
            plan::check_buffer(what, len, &self.limits)?;
            u32_of(&format!("{what} element count"), len)?;
        }
        Ok(())
    }

    /// Images per piece when a backward pass over `batch` images must be cut because a
    /// batch-major tensor (`per_image` elements each) exceeds one binding or u32 indexing;
    /// `None` when the whole batch fits (or a single image does not, which the pass reports).
    fn batch_split(&self, batch: usize, per_image: &[(&str, usize)]) -> Option<usize> {
        let fits = |images: usize| {
            per_image.iter().all(|&(what, len)| {
                images
                    .checked_mul(len)
                    .is_some_and(|total| self.check_bindings(&[(what, total)]).is_ok())
            })
        };
        if batch <= 1 || fits(batch) {
            return None;
        }
        let mut images = batch;
        while images > 1 && !fits(images) {
            images = images.div_ceil(2);
        }
        Some(images)
    }

    /// Images `images` of a batch-major tensor, copied into a tensor of their own.
    fn batch_slice(&self, t: &GpuTensor, images: &Range<usize>) -> Result<GpuTensor> {
        let mut shape = t.shape().to_vec();
        let per_image = t.len() / shape[0];
        shape[0] = images.len();
        let piece = self.alloc(&shape)?;
        self.copy_elements(t, images.start * per_image, &piece, 0, piece.len())?;
        Ok(piece)
    }

    /// Copies `len` f32 values from `from` at element `src` to `to` at element `dst`.
    fn copy_elements(
        &self,
        from: &GpuTensor,
        src: usize,
        to: &GpuTensor,
        dst: usize,
        len: usize,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.scoped("copying a batch piece", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
            let b = |e: usize| e as u64 * 4;
            encoder.copy_buffer_to_buffer(from.buffer(), b(src), to.buffer(), b(dst), b(len));
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Runs `pass` on batch pieces of `images` images each and adds the results (`total += part`,
    /// in piece order, so the sum is deterministic).
    fn summed_over_pieces(
        &self,
        batch: usize,
        images: usize,
        mut pass: impl FnMut(&Range<usize>) -> Result<GpuTensor>,
    ) -> Result<GpuTensor> {
        let mut total: Option<GpuTensor> = None;
        for start in (0..batch).step_by(images) {
            let part = pass(&(start..(start + images).min(batch)))?;
            match &mut total {
                None => total = Some(part),
                // param -= (-1) * grad is exactly param + grad.
                Some(t) => self.sgd_step(t, &part, -1.0)?,
            }
        }
        total.ok_or_else(|| Error::SizeOverflow {
            what: "an empty batch split".into(),
        })
    }

    /// Transposed convolution of GPU tensors (PyTorch's `conv_transpose2d`): input
    /// `[N, Ci, P, Q]`, weight `[Ci, Co/groups, kh, kw]`, bias `[Co]`, into a new tensor
    /// `[N, Co, H, W]` with `H = (P-1)*sh - 2*ph + dh*(kh-1) + oph + 1` (likewise `W`).
    ///
    /// # Errors
    /// Every error of [`ConvTranspose2dShape::new`], [`Error::ForeignTensor`], size and GPU errors.
    pub fn conv_transpose2d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<GpuTensor> {
        let t = ConvTranspose2dShape::new(
            input.shape(),
            weight.shape(),
            bias.map(GpuTensor::shape),
            params,
        )?;
        self.transposed(&t, input, weight, bias)
    }

    /// One-shot transposed convolution: host tensors in, host tensor out.
    ///
    /// # Errors
    /// As [`Engine::conv_transpose2d_gpu`] and [`Engine::download`].
    pub fn conv_transpose2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let y = self.conv_transpose2d_submit(input, weight, bias, params)?;
        self.download(&y)
    }

    /// Async twin of [`Engine::conv_transpose2d`].
    ///
    /// # Errors
    /// As [`Engine::conv_transpose2d`].
    pub async fn conv_transpose2d_async(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let y = self.conv_transpose2d_submit(input, weight, bias, params)?;
        self.download_async(&y).await
    }

    fn conv_transpose2d_submit(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvTranspose2dParams,
    ) -> Result<GpuTensor> {
        // Validate before uploading anything.
        ConvTranspose2dShape::new(
            input.shape(),
            weight.shape(),
            bias.map(Tensor::shape),
            params,
        )?;
        let x = self.upload(input)?;
        let w = self.upload(weight)?;
        let b = bias.map(|b| self.upload(b)).transpose()?;
        self.conv_transpose2d_gpu(&x, &w, b.as_ref(), params)
    }

    /// The transposed convolution `t` (shapes already validated against `t`).
    fn transposed(
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
        if t.output_len() == 0 {
            return self.alloc(&t.output_shape());
        }
        // Too large for one binding: by pieces of the batch, each placed into the output.
        let per_image = [
            ("input", t.input_len() / t.batch),
            ("output", t.output_len() / t.batch),
        ];
        if let Some(images) = self.batch_split(t.batch, &per_image) {
            let out = self.alloc(&t.output_shape())?;
            for start in (0..t.batch).step_by(images) {
                let range = start..(start + images).min(t.batch);
                let piece_in = self.batch_slice(input, &range)?;
                let piece = ConvTranspose2dShape {
                    batch: range.len(),
                    ..*t
                };
                let piece_out = self.transposed(&piece, &piece_in, weight, bias)?;
                self.copy_elements(&piece_out, 0, &out, start * per_image[1].1, piece_out.len())?;
            }
            return Ok(out);
        }
        check_indexing(t)?;
        // Stride 1: a forward convolution of the input with flipped weights, padded by the
        // kernel's reach less the transposed padding (when that is not negative).
        let reach_h = t.dilation_h * (t.kernel_h - 1);
        let reach_w = t.dilation_w * (t.kernel_w - 1);
        // Strides above 1: the same over the input spread out with zeros between its values
        // (sh*sw times the multiply-adds, on kernels tens of times faster than the gather).
        let spread = ((t.in_h - 1) * t.stride_h + 1, (t.in_w - 1) * t.stride_w + 1);
        let fits_flipped = t.out_h + t.pad_top >= spread.0
            && t.out_w + t.pad_left >= spread.1
            && t.pad_top <= reach_h
            && t.pad_left <= reach_w;
        // Fewer than 4 output channels per group leave the forward GEMM kernels idle, and the
        // direct kernel pays for every zero; the gather is faster there.
        let gemm_sized = t.out_channels / t.groups >= 4;
        // The spread-out gradient is one tensor for one kernel: it must fit one binding.
        let spread_len = [t.batch, t.in_channels, spread.0, spread.1]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let spread_fits = spread_len.is_some_and(|len| {
            self.check_bindings(&[("spread input", len)]).is_ok()
                && plan::flat(
                    Kernel::ZeroUpsample,
                    len,
                    ConvUniforms::default(),
                    &self.limits,
                )
                .is_ok()
        });
        if (t.stride_h, t.stride_w) != (1, 1) && fits_flipped && gemm_sized && spread_fits {
            let up = self.alloc(&[t.batch, t.in_channels, spread.0, spread.1])?;
            let uniforms = ConvUniforms {
                batch: u32_of("batch", t.batch)?,
                out_channels: u32_of("input channels", t.in_channels)?,
                out_h: u32_of("input height", t.in_h)?,
                out_w: u32_of("input width", t.in_w)?,
                stride_h: u32_of("stride_h", t.stride_h)?,
                stride_w: u32_of("stride_w", t.stride_w)?,
                ..ConvUniforms::default()
            };
            self.check_bindings(&[("input", t.input_len()), ("spread input", up.len())])?;
            let plan = plan::flat(Kernel::ZeroUpsample, up.len(), uniforms, &self.limits)?;
            self.submit_steps(
                "spreading the input gradient",
                &[(
                    plan,
                    [input.buffer(), input.buffer(), &self.no_bias, up.buffer()],
                )],
            )?;
            let unit = ConvTranspose2dShape {
                in_h: spread.0,
                in_w: spread.1,
                stride_h: 1,
                stride_w: 1,
                ..*t
            };
            return self.transposed(&unit, &up, weight, bias);
        }
        let mut out = self.alloc(&t.output_shape())?;
        let bottom = (t.out_h + t.pad_top).checked_sub(t.in_h);
        let right = (t.out_w + t.pad_left).checked_sub(t.in_w);
        if let ((1, 1), Some(bottom), Some(right), true, true) = (
            (t.stride_h, t.stride_w),
            bottom,
            right,
            t.pad_top <= reach_h,
            t.pad_left <= reach_w,
        ) {
            let og = t.in_channels / t.groups;
            let flipped = self.alloc(&[t.out_channels, og, t.kernel_h, t.kernel_w])?;
            let plan = plan::flat(
                Kernel::FlipWeights,
                flipped.len(),
                transposed_uniforms(t)?,
                &self.limits,
            )?;
            self.check_bindings(&[("weight", weight.len())])?;
            self.submit_steps(
                "flipping weights",
                &[(
                    plan,
                    [
                        weight.buffer(),
                        weight.buffer(),
                        &self.no_bias,
                        flipped.buffer(),
                    ],
                )],
            )?;
            let params = Conv2dParams {
                stride: (1, 1),
                padding: Padding::explicit(
                    reach_h - t.pad_top,
                    bottom,
                    reach_w - t.pad_left,
                    right,
                ),
                dilation: (t.dilation_h, t.dilation_w),
                groups: t.groups,
            };
            // The engine's kernels of choice, whatever algorithm its callers force.
            self.conv2d_into_with(Algorithm::Auto, input, &flipped, bias, &params, &mut out)?;
            return Ok(out);
        }
        self.check_bindings(&[
            ("input", t.input_len()),
            ("weight", t.weight_len()),
            ("output", t.output_len()),
        ])?;
        let plan = plan::flat(
            Kernel::GradInput,
            t.output_len(),
            transposed_uniforms(t)?,
            &self.limits,
        )?;
        let bias_buffer = bias.map_or(&self.no_bias, GpuTensor::buffer);
        self.submit_steps(
            "dispatching conv2d_grad_input",
            &[(
                plan,
                [input.buffer(), weight.buffer(), bias_buffer, out.buffer()],
            )],
        )?;
        Ok(out)
    }

    /// The validated forward problem of a backward call, with `grad_output` checked against it.
    fn backward_shape(
        &self,
        input_shape: &[usize],
        weight_shape: &[usize],
        grad_output: &GpuTensor,
        params: &Conv2dParams,
    ) -> Result<Conv2dShape> {
        self.check_owner("grad_output", grad_output)?;
        let shape = Conv2dShape::new(input_shape, weight_shape, None, params)?;
        if grad_output.shape() != shape.output_shape() {
            return Err(Error::GradOutputShape {
                expected: shape.output_shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        Ok(shape)
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
        let shape = self.backward_shape(input_shape, weight.shape(), grad_output, params)?;
        let t = ConvTranspose2dShape::input_gradient_of(&shape);
        self.transposed(&t, grad_output, weight, None)
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
        let shape = self.backward_shape(input.shape(), weight_shape, grad_output, params)?;
        let per_image = [
            ("input", shape.input_len() / shape.batch.max(1)),
            ("grad_output", shape.output_len() / shape.batch.max(1)),
        ];
        if let Some(images) = self.batch_split(shape.batch, &per_image) {
            return self.summed_over_pieces(shape.batch, images, |range| {
                let x = self.batch_slice(input, range)?;
                let gy = self.batch_slice(grad_output, range)?;
                self.conv2d_grad_weight(&x, &gy, weight_shape, params)
            });
        }
        if shape.output_len() > 0 {
            check_indexing(&ConvTranspose2dShape::input_gradient_of(&shape))?;
        }
        // Tiles of 8 (or, for fewer channels per group, 4) output channels x 8 weight entries.
        let og = shape.out_channels_per_group();
        let tile_o = if og >= 8 { 8 } else { 4 };
        let tiles = shape.groups
            * og.div_ceil(tile_o)
            * shape.reduction_len().div_ceil(GRAD_WEIGHT_ENTRIES as usize);
        let rows = shape.batch * shape.out_h;
        let (chunks, chunk_len) = chunking(rows, tiles, self.limits.cpu_adapter);
        self.split_reduction(
            Kernel::GradWeight(tile_o as u32),
            &shape,
            &shape.weight_shape(),
            (chunks, chunk_len, rows, chunks * tiles),
            [input.buffer(), grad_output.buffer()],
            &[
                ("input", shape.input_len()),
                ("grad_output", shape.output_len()),
            ],
        )
    }

    /// `dL/dbias` `[O]`: `grad_output` (`[N, O, P, Q]`) summed over `N`, `P` and `Q`.
    ///
    /// # Errors
    /// [`Error::InputRank`] for a `grad_output` that is not 4-D, size and GPU errors.
    pub fn conv2d_grad_bias(&self, grad_output: &GpuTensor) -> Result<GpuTensor> {
        self.check_owner("grad_output", grad_output)?;
        let &[n, o, p, q] = grad_output.shape() else {
            return Err(Error::InputRank {
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
        };
        if let Some(images) = self.batch_split(n, &[("grad_output", grad_output.len() / n.max(1))])
        {
            return self.summed_over_pieces(n, images, |range| {
                self.conv2d_grad_bias(&self.batch_slice(grad_output, range)?)
            });
        }
        if grad_output.is_empty() {
            // Nothing to sum: zeros (an empty grad_output with a huge other dimension included).
            let out = self.alloc(&[o])?;
            if o > 0 {
                self.scoped("zeroing a bias gradient", || {
                    let mut encoder = self
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                    encoder.clear_buffer(out.buffer(), 0, None);
                    self.queue.submit([encoder.finish()]);
                })?;
            }
            return Ok(out);
        }
        // Not empty, so n * p <= the element count.
        let rows = n * p;
        let (chunks, chunk_len) = chunking(rows, o, self.limits.cpu_adapter);
        self.split_reduction(
            Kernel::GradBias,
            &shape,
            &[o],
            (chunks, chunk_len, rows, chunks * o),
            [grad_output.buffer(), grad_output.buffer()],
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
        [first, second]: [&wgpu::Buffer; 2],
        read: &[(&str, usize)],
    ) -> Result<GpuTensor> {
        let out = self.alloc(out_shape)?;
        let len = out.len();
        if len == 0 {
            return Ok(out);
        }
        let partial_len = chunks.checked_mul(len).ok_or_else(|| Error::SizeOverflow {
            what: "partial sums".into(),
        })?;
        let partial = self.alloc(&[partial_len])?;
        self.check_bindings(read)?;
        self.check_bindings(&[("partial sums", partial_len)])?;
        let mut uniforms = plan::uniforms_of(shape)?;
        uniforms.chunk_len = u32_of("rows per chunk", chunk_len)?;
        uniforms.reduce_len = u32_of("rows", rows)?;
        let partial_plan = plan::flat(kernel, items, uniforms, &self.limits)?;
        let reduce = ConvUniforms {
            chunk_len: u32_of("chunks", chunks)?,
            ..ConvUniforms::default()
        };
        let reduce_plan = plan::flat(Kernel::ReducePartials, len, reduce, &self.limits)?;
        self.submit_steps(
            kernel.file_name(),
            &[
                (
                    partial_plan,
                    [first, second, &self.no_bias, partial.buffer()],
                ),
                (
                    reduce_plan,
                    [
                        partial.buffer(),
                        partial.buffer(),
                        &self.no_bias,
                        out.buffer(),
                    ],
                ),
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
        let (chunks, chunk_len) = chunking(len, 1, self.limits.cpu_adapter);
        let partial = self.alloc(&[chunks])?;
        let mut uniforms = ConvUniforms {
            chunk_len: u32_of("elements per chunk", chunk_len)?,
            reduce_len: u32_of("elements", len)?,
            ..ConvUniforms::default()
        };
        let grad_plan = plan::flat(Kernel::SquaredErrorGrad, len, uniforms, &self.limits)?;
        let sum_plan = plan::flat(Kernel::SquaredErrorSum, chunks, uniforms, &self.limits)?;
        uniforms.chunk_len = u32_of("chunks", chunks)?;
        let reduce_plan = plan::flat(Kernel::ReducePartials, 1, uniforms, &self.limits)?;
        let (p, t) = (prediction.buffer(), target.buffer());
        let mut steps = vec![
            (sum_plan, [p, t, &self.no_bias, partial.buffer()]),
            (
                reduce_plan,
                [
                    partial.buffer(),
                    partial.buffer(),
                    &self.no_bias,
                    loss.buffer(),
                ],
            ),
        ];
        if len > 0 {
            steps.push((grad_plan, [p, t, &self.no_bias, grad.buffer()]));
        }
        self.submit_steps("squared error", &steps)?;
        Ok((loss, grad))
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
        let plan = plan::flat(Kernel::SgdStep, param.len(), uniforms, &self.limits)?;
        self.submit_steps(
            "sgd step",
            &[(
                plan,
                [grad.buffer(), grad.buffer(), &self.no_bias, param.buffer()],
            )],
        )
    }
}
