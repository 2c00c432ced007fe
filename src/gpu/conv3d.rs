//! 3D convolutions (PyTorch's `conv3d`): input `[N, C, D, H, W]` (or unbatched `[C, D, H, W]`),
//! weight `[O, C/groups, kd, kh, kw]`, output `[N, O, OD, P, Q]`.
//!
//! Each runs as a 2D convolution with the depth folded into the batch and the channels
//! ([`ConvNdShape::folded`], shaders/fold_depth.wgsl): one pass gathers the input's depth taps
//! into channels (zeros where a tap falls in the depth padding), one reorders the weight, the 2D
//! convolution runs on the planner's kernel of choice (every 2D kernel and split serves it), and
//! one pass puts the output's depth back in place. The backward pass folds the output gradient
//! too, runs the 2D backward pass, and unfolds the input and weight gradients.

use crate::error::{Error, Result};
use crate::gpu::backward::Conv2dGrads;
use crate::gpu::engine::{blocking_and_async, copy, Engine};
use crate::gpu::forward::Weights;
use crate::gpu::kernels::{ConvUniforms, Kernel};
use crate::gpu::pieces::PlainSources;
use crate::gpu::plan::{self, index_u32, Algorithm};
use crate::gpu::tensor::GpuTensor;
use crate::spec::{Conv3dParams, ConvNdShape, ConvParams as _};
use crate::tensor::Tensor;

impl Engine {
    blocking_and_async! {
        /// One-shot 3D convolution: host tensors in (`[N, C, D, H, W]` or `[C, D, H, W]`,
        /// `[O, C/groups, kd, kh, kw]`, bias `[O]`), host tensor `[N, O, OD, P, Q]` (or
        /// `[O, OD, P, Q]`) out.
        ///
        /// # Errors
        /// As [`Engine::conv3d_gpu`] and [`Engine::download`].
        self.conv3d, conv3d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &Conv3dParams
        ) -> Tensor,
        |wait| { self.conv3d_with(input, weight, bias, None, params, wait).await }
    }

    blocking_and_async! {
        /// One-shot 3D convolution with the fused epilogue
        /// `act(conv3d(input, weight) + bias + residual)` (see [`Engine::conv2d_fused`]).
        ///
        /// # Errors
        /// As [`Engine::conv3d`], and [`Error::ResidualShape`].
        conv3d_fused, conv3d_fused_async => conv3d_with(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            residual: Option<&Tensor>,
            params: &Conv3dParams
        ) -> Tensor
    }

    async fn conv3d_with(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        params: &Conv3dParams,
        wait: crate::gpu::device::Wait,
    ) -> Result<Tensor> {
        // Validated and planned before anything is uploaded.
        let shape = params
            .shape_of(input, weight, bias)?
            .with_residual(residual.map(Tensor::shape))?;
        self.conv3d_plan(&shape, self.algorithm(), false)?;
        let x = self.upload(input)?;
        let w = self.upload(weight)?;
        let b = bias.map(|b| self.upload(b)).transpose()?;
        let r = residual.map(|r| self.upload(r)).transpose()?;
        let y = self.alloc(&shape.output_shape())?;
        let tensors = (&x, &w, b.as_ref(), r.as_ref());
        self.record_conv3d(&shape, tensors, &y, self.algorithm())?;
        self.download_with(&y, wait).await
    }

    /// 3D convolution of GPU tensors into a new GPU tensor `[N, O, OD, P, Q]` (`[O, OD, P, Q]`
    /// unbatched); returns once the work is submitted.
    ///
    /// # Errors
    /// Every shape or parameter error of [`ConvNdShape::new`]; [`Error::DeviceLimit`] when the
    /// input, the output, the folded weight or one folded image does not fit one storage binding
    /// (a folded input or output that does not is split over its images); the folded 2D
    /// convolution's errors, as [`Engine::conv2d_gpu`]'s.
    pub fn conv3d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv3dParams,
    ) -> Result<GpuTensor> {
        self.conv3d_fused_gpu(input, weight, bias, None, params)
    }

    /// 3D convolution of GPU tensors with the fused epilogue
    /// `act(conv3d(input, weight) + bias + residual)` into a new GPU tensor; the epilogue runs
    /// as the output's depth is put back in place.
    ///
    /// # Errors
    /// As [`Engine::conv3d_gpu`], and [`Error::ResidualShape`].
    pub fn conv3d_fused_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv3dParams,
    ) -> Result<GpuTensor> {
        let shape = self.fused_shape(input, Weights::Plain(weight), bias, residual, params)?;
        let output = self.alloc(&shape.output_shape())?;
        let tensors = (input, weight, bias, residual);
        self.record_conv3d(&shape, tensors, &output, self.algorithm())?;
        Ok(output)
    }

    /// 3D convolution of GPU tensors written into `output`, which must have the output's shape,
    /// with `algorithm` for the folded 2D convolution.
    ///
    /// # Errors
    /// As [`Engine::conv3d_gpu`], [`Error::OutputShape`] and [`Error::UnsupportedAlgorithm`].
    pub fn conv3d_into_with(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv3dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.conv3d_fused_into_with(algorithm, input, weight, bias, None, params, output)
    }

    /// As [`Engine::conv3d_fused_gpu`], written into `output`, with an explicit algorithm.
    ///
    /// # Errors
    /// As [`Engine::conv3d_into_with`], and [`Error::ResidualShape`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv3d_fused_into_with(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv3dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        let shape = self.fused_shape(input, Weights::Plain(weight), bias, residual, params)?;
        self.check_output(output, &shape.output_shape())?;
        self.record_conv3d(&shape, (input, weight, bias, residual), output, algorithm)
    }

    /// The folded 2D problem of `shape` and how many of its images (`n*OD + od`) one piece
    /// folds: all of them when the folded input and output fit one binding, else as many as do
    /// (the forward pass runs piece by piece; `whole` asks that no piece be needed, as the
    /// backward passes do). The input, the output and the folded weight must each fit one
    /// binding; a forced `algorithm` must cover the folded problem.
    pub(crate) fn conv3d_plan(
        &self,
        shape: &ConvNdShape<3>,
        algorithm: Algorithm,
        whole: bool,
    ) -> Result<(crate::spec::Conv2dShape, usize)> {
        let folded = shape.folded().ok_or_else(|| Error::SizeOverflow {
            what: format!("the folded 2D problem of {:?}", shape.input_shape()),
        })?;
        let limits = self.limits();
        let input_len = shape.input_shape().iter().product();
        // The folded tensors can be KD times the input: their sizes are checked, not assumed.
        let len = |what: &str, dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Error::SizeOverflow {
                    what: format!("the {what} {dims:?}"),
                })
        };
        let [_, ci, h, w] = folded.input_shape();
        let [_, o, p, q] = folded.output_shape();
        let per_image = [
            (
                "folded input image",
                len("folded input image", &[ci, h, w])?,
            ),
            (
                "folded output image",
                len("folded output image", &[o, p, q])?,
            ),
        ];
        // Depth coordinates are formed as i32 in the shaders: od*sd + a*dd - front, and
        // d + front; every one of them is below the padded depth.
        let [[front, back], _, _] = shape.padding;
        let padded = shape.input[0]
            .checked_add(front)
            .and_then(|v| v.checked_add(back))
            .filter(|&v| v <= i32::MAX as usize);
        if padded.is_none() {
            return Err(Error::TooLarge {
                what: "padded input depth".into(),
                value: (shape.input[0] as u64)
                    .saturating_add(front as u64)
                    .saturating_add(back as u64),
                limit: i32::MAX as u64,
                why: "input coordinates are i32 in the shaders",
            });
        }
        self.check_bindings(&[
            ("input", input_len),
            ("output", shape.output_len()),
            (
                "folded weight",
                len("folded weight", &folded.weight_shape())?,
            ),
        ])?;
        self.check_bindings(&per_image)?;
        let images = match plan::split::batch_split(folded.batch, &per_image, &limits) {
            None => folded.batch.max(1),
            Some(images) if !whole => images,
            Some(_) => {
                let all = [
                    ("folded input", len("folded input", &folded.input_shape())?),
                    (
                        "folded output",
                        len("folded output", &folded.output_shape())?,
                    ),
                ];
                // The error of the first tensor that does not fit.
                self.check_bindings(&all)?;
                folded.batch
            }
        };
        if algorithm != Algorithm::Auto {
            // A forced kernel that does not cover a piece's problem is refused before any work.
            let piece = crate::spec::Conv2dShape {
                batch: images.min(folded.batch),
                ..folded
            };
            plan::plan(&piece, &limits, algorithm)?;
        }
        Ok((folded, images))
    }

    /// The problem of a backward call, with `grad_output` checked against the output's shape
    /// and every tensor's owner, and how it runs: whole, as its folded 2D problem, when the
    /// folded tensors fit one binding each; else over pieces of whole 3D images of the batch, as
    /// many as fit (when not even one does, the whole problem's error names the tensor).
    fn backward_problem(
        &self,
        input_shape: &[usize],
        weight_shape: &[usize],
        grad_output: &GpuTensor,
        params: &Conv3dParams,
        tensors: &[(&'static str, &GpuTensor)],
    ) -> Result<(ConvNdShape<3>, Backward3d)> {
        for &(what, t) in tensors.iter().chain(&[("grad_output", grad_output)]) {
            self.check_owner(what, t)?;
        }
        let shape = ConvNdShape::new(input_shape, weight_shape, None, params)?;
        shape.check_backward("conv3d_backward", grad_output.shape())?;
        let (folded, images) = self.conv3d_plan(&shape, Algorithm::Auto, false)?;
        let per_piece = images / shape.output[0].max(1);
        if images < folded.batch && per_piece >= 1 {
            return Ok((shape, Backward3d::Pieces(per_piece)));
        }
        let (folded, _) = self.conv3d_plan(&shape, Algorithm::Auto, true)?;
        Ok((shape, Backward3d::Whole(folded)))
    }

    /// The images `range` of a batched 3D tensor `t` whose batched shape is `batched`.
    fn images_of(
        &self,
        t: &GpuTensor,
        batched: &[usize],
        range: &std::ops::Range<usize>,
    ) -> Result<GpuTensor> {
        self.batch_slice(&t.view(batched), range)
    }

    /// Runs the folding kernel `kernel` over `items` elements of `shape`'s problem, reading
    /// `source`, into a new tensor of `out_shape`.
    pub(crate) fn fold_pass(
        &self,
        kernel: Kernel,
        shape: &ConvNdShape<3>,
        source: &GpuTensor,
        out_shape: &[usize],
    ) -> Result<GpuTensor> {
        let images = shape.batch * shape.output[0];
        let plan = plan::flat(
            kernel,
            rows(kernel, shape, images),
            fold_uniforms(shape)?,
            &self.limits(),
        )?;
        self.flat_into(kernel.entry_point(), plan, source, out_shape)
    }

    /// The folded input gradient `gx` of `shape`'s problem summed back over the depth taps into
    /// a new tensor of `out_shape`, each element starting from `bias` of its channel (a
    /// transposed convolution's) or zero.
    pub(crate) fn unfold_input_grad(
        &self,
        shape: &ConvNdShape<3>,
        gx: &GpuTensor,
        bias: Option<&GpuTensor>,
        out_shape: &[usize],
    ) -> Result<GpuTensor> {
        let kernel = Kernel::UnfoldInputGrad;
        let mut uniforms = fold_uniforms(shape)?;
        uniforms.has_bias = u32::from(bias.is_some());
        let rows = rows(kernel, shape, shape.batch * shape.output[0]);
        let plan = plan::flat(kernel, rows, uniforms, &self.limits())?;
        let out = self.alloc(out_shape)?;
        let bias = bias.map_or(self.no_bias(), GpuTensor::buffer);
        let buffers = [gx.buffer(), bias, out.buffer()];
        self.submit_steps("unfolding a 3D input gradient", &[(plan, &buffers)])?;
        Ok(out)
    }

    /// `dL/dinput` (`[N, C, D, H, W]` or unbatched) of the 3D convolution of an input of
    /// `input_shape` with `weight`, given `grad_output`: the folded 2D input gradient, summed back
    /// over the depth taps that read each plane, in tap order.
    ///
    /// # Errors
    /// Every shape or parameter error of [`ConvNdShape::new`], [`Error::GradOutputShape`],
    /// [`Error::ForeignTensor`], and as [`Engine::conv3d_gpu`] and [`Engine::conv2d_grad_input`].
    pub fn conv3d_grad_input(
        &self,
        grad_output: &GpuTensor,
        weight: &GpuTensor,
        input_shape: &[usize],
        params: &Conv3dParams,
    ) -> Result<GpuTensor> {
        let (shape, pass) = self.backward_problem(
            input_shape,
            weight.shape(),
            grad_output,
            params,
            &[("weight", weight)],
        )?;
        let folded = match pass {
            Backward3d::Whole(folded) => folded,
            Backward3d::Pieces(images) => {
                // Each piece's input gradient in its place in the whole one.
                let [x_shape, y_shape] = [shape.input_shape(), shape.output_shape()];
                let out = self.alloc(&x_shape)?;
                let per_image = out.len() / shape.batch;
                for range in plan::split::batch_ranges(shape.batch, images) {
                    let gy = self.images_of(grad_output, &y_shape, &range)?;
                    let mut piece = x_shape.clone();
                    piece[0] = range.len();
                    let gx = self.conv3d_grad_input(&gy, weight, &piece, params)?;
                    self.copy_elements(&gx, 0, &out, range.start * per_image, gx.len())?;
                }
                return Ok(out);
            }
        };
        // True convolution: the cross-correlation's gradient with the kernel turned (before it
        // is folded, so its depth turns too; the folded problem turns nothing).
        let turned = shape
            .flip_kernel
            .then(|| self.kernel_turned(weight))
            .transpose()?;
        let weight = turned.as_ref().unwrap_or(weight);
        let w = self.fold_pass(Kernel::FoldWeight, &shape, weight, &folded.weight_shape())?;
        let g = self.fold_pass(
            Kernel::FoldOutput,
            &shape,
            grad_output,
            &folded.output_shape(),
        )?;
        let params = folded.params();
        let gx = self.conv2d_grad_input(&g, &w, &folded.input_shape(), &params)?;
        self.unfold_input_grad(&shape, &gx, None, &shape.input_shape())
    }

    /// `dL/dweight` `[O, C/groups, kd, kh, kw]` of the 3D convolution of `input` with weights of
    /// `weight_shape`, given `grad_output`: the folded 2D weight gradient, unfolded.
    ///
    /// # Errors
    /// As [`Engine::conv3d_grad_input`].
    pub fn conv3d_grad_weight(
        &self,
        input: &GpuTensor,
        grad_output: &GpuTensor,
        weight_shape: &[usize],
        params: &Conv3dParams,
    ) -> Result<GpuTensor> {
        let (shape, pass) = self.backward_problem(
            input.shape(),
            weight_shape,
            grad_output,
            params,
            &[("input", input)],
        )?;
        let folded = match pass {
            Backward3d::Whole(folded) => folded,
            Backward3d::Pieces(images) => {
                // The pieces' weight gradients added in piece order.
                let [x_shape, y_shape] = [shape.input_shape(), shape.output_shape()];
                return self.summed_over_pieces(shape.batch, images, |range| {
                    let x = self.images_of(input, &x_shape, range)?;
                    let gy = self.images_of(grad_output, &y_shape, range)?;
                    self.conv3d_grad_weight(&x, &gy, weight_shape, params)
                });
            }
        };
        let x = self.fold_pass(Kernel::FoldInput, &shape, input, &folded.input_shape())?;
        let g = self.fold_pass(
            Kernel::FoldOutput,
            &shape,
            grad_output,
            &folded.output_shape(),
        )?;
        let params = folded.params();
        let gw = self.conv2d_grad_weight(&x, &g, &folded.weight_shape(), &params)?;
        let gw = self.fold_pass(Kernel::UnfoldWeight, &shape, &gw, &shape.weight_shape())?;
        if shape.flip_kernel {
            // True convolution: the turned kernel's gradient, turned back to the weight as
            // stored (the folded problem turns nothing).
            return self.kernel_turned(&gw);
        }
        Ok(gw)
    }

    /// `dL/dbias` `[O]`: `grad_output` (`[N, O, OD, P, Q]`, or unbatched) summed over everything
    /// but its channels.
    ///
    /// # Errors
    /// [`Error::InputRank`] for a `grad_output` that is not 4-D or 5-D, and as
    /// [`Engine::conv2d_grad_bias`].
    pub fn conv3d_grad_bias(&self, grad_output: &GpuTensor) -> Result<GpuTensor> {
        let (n, rest) = match *grad_output.shape() {
            [n, o, d, h, w] => (n, [o, d * h, w]),
            [o, d, h, w] => (1, [o, d * h, w]),
            _ => {
                return Err(Error::InputRank {
                    op: "conv3d_grad_bias",
                    expected: "4D (unbatched) or 5D (batched) [N, O, D, H, W]".into(),
                    shape: grad_output.shape().to_vec(),
                })
            }
        };
        // The same elements as [N, O, D*H, W], which the 2D bias gradient sums alike.
        self.conv2d_grad_bias(&grad_output.view(&[n, rest[0], rest[1], rest[2]]))
    }

    /// All gradients of `y = conv3d(input, weight, bias)` given `grad_output = dL/dy`, in the
    /// shapes of what they differentiate: input, weight `[O, C/groups, kd, kh, kw]`, and bias
    /// `[O]` when `with_bias`.
    ///
    /// # Errors
    /// As [`Engine::conv3d_grad_input`].
    pub fn conv3d_backward(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        grad_output: &GpuTensor,
        params: &Conv3dParams,
        with_bias: bool,
    ) -> Result<Conv2dGrads> {
        self.check_owner("input", input)?;
        Ok(Conv2dGrads {
            input: self.conv3d_grad_input(grad_output, weight, input.shape(), params)?,
            weight: self.conv3d_grad_weight(input, grad_output, weight.shape(), params)?,
            bias: if with_bias {
                Some(self.conv3d_grad_bias(grad_output)?)
            } else {
                None
            },
        })
    }

    /// Folds `input` and `weight`, runs the folded 2D convolution with `algorithm`, and unfolds
    /// its result into `output` through the fused epilogue (the residual, then the activation).
    fn record_conv3d(
        &self,
        shape: &ConvNdShape<3>,
        (input, weight, bias, residual): PlainSources<'_>,
        output: &GpuTensor,
        algorithm: Algorithm,
    ) -> Result<()> {
        let (folded, images) = self.conv3d_plan(shape, algorithm, false)?;
        // True convolution: the kernel turned before it is folded, so its depth turns too (the
        // folded problem turns nothing).
        let turned = shape
            .flip_kernel
            .then(|| self.kernel_turned(weight))
            .transpose()?;
        let weight = turned.as_ref().unwrap_or(weight);
        let w = self.fold_pass(Kernel::FoldWeight, shape, weight, &folded.weight_shape())?;
        if folded.batch > images {
            log::debug!("wgconv: splitting {shape:?} into pieces of {images} folded images");
        }
        for range in plan::split::batch_ranges(folded.batch, images) {
            // The piece's images, folded, convolved, and put in their place in the output.
            let piece = crate::spec::Conv2dShape {
                batch: range.len(),
                ..folded
            };
            let mut uniforms = fold_uniforms(shape)?;
            uniforms.first_image = index_u32("first folded image", range.start)?;
            let limits = self.limits();
            let fold = plan::flat(
                Kernel::FoldInput,
                rows(Kernel::FoldInput, shape, range.len()),
                uniforms,
                &limits,
            )?;
            let unfold = plan::flat(
                Kernel::UnfoldOutput,
                rows(Kernel::UnfoldOutput, shape, range.len()),
                uniforms,
                &limits,
            )?;
            // Few large planes move as buffer copies (src/gpu/plan/fold.rs), others through
            // the folding kernels.
            let x = match plan::fold::fold_input_runs(shape, range.clone()) {
                Some((copies, zeros)) => {
                    let x = self.alloc(&piece.input_shape())?;
                    self.gpu().submit("folding a 3D input", |encoder| {
                        copy(encoder, input.buffer(), x.buffer(), &copies);
                        for z in &zeros {
                            let (at, len) = (z.dst as u64 * 4, z.len as u64 * 4);
                            encoder.clear_buffer(x.buffer(), at, Some(len));
                        }
                    })?;
                    x
                }
                None => self.flat_into("folding a 3D input", fold, input, &piece.input_shape())?,
            };
            let y = self.alloc(&piece.output_shape())?;
            self.plan_and_record(&piece, (&x, Weights::Plain(&w), bias, None), &y, algorithm)?;
            let plain = shape.activation.is_none() && residual.is_none();
            match plan::fold::unfold_output_runs(shape, range.clone()).filter(|_| plain) {
                Some(runs) => {
                    self.gpu().submit("unfolding a 3D output", |encoder| {
                        copy(encoder, y.buffer(), output.buffer(), &runs);
                    })?;
                }
                None => {
                    let second = residual.map_or(self.no_bias(), GpuTensor::buffer);
                    let buffers = [y.buffer(), second, output.buffer()];
                    self.submit_steps("unfolding a 3D output", &[(unfold, &buffers)])?;
                }
            }
        }
        Ok(())
    }
}

/// The invocations of a folding kernel over `images` folded images (`n*OD + od`; for the
/// kernels of the whole problem, all of them): one per row of the tensor it writes (a width's
/// worth of elements; for the weight kernels, one kernel plane). Twin: the `e =` comments in
/// shaders/fold_depth.wgsl.
fn rows(kernel: Kernel, s: &ConvNdShape<3>, images: usize) -> usize {
    let kd = s.kernel[0];
    let (n, c, o, cg) = (
        s.batch,
        s.in_channels,
        s.out_channels,
        s.in_channels / s.groups,
    );
    let ([d, h, _], p) = (s.input, s.output[1]);
    match kernel {
        Kernel::FoldInput => images * kd * c * h,
        Kernel::UnfoldInputGrad => n * c * d * h,
        Kernel::FoldWeight | Kernel::UnfoldWeight => o * cg * kd,
        // The folded output's rows (unfold_output, fold_output).
        _ => images * o * p,
    }
}

/// The uniform block of the folding kernels: the 3D problem's sizes.
/// Twin: the sizes named in shaders/fold_depth.wgsl.
fn fold_uniforms(s: &ConvNdShape<3>) -> Result<ConvUniforms> {
    let u = |what: &str, v: usize| index_u32(what, v);
    let [[front, _], [top, _], [left, _]] = s.padding;
    Ok(ConvUniforms {
        batch: u("batch", s.batch)?,
        in_channels: u("in_channels", s.in_channels)?,
        groups: u("groups", s.groups)?,
        in_d: u("in_d", s.input[0])?,
        in_h: u("in_h", s.input[1])?,
        in_w: u("in_w", s.input[2])?,
        out_channels: u("out_channels", s.out_channels)?,
        out_d: u("out_d", s.output[0])?,
        out_h: u("out_h", s.output[1])?,
        out_w: u("out_w", s.output[2])?,
        kernel_d: u("kernel_d", s.kernel[0])?,
        kernel_h: u("kernel_h", s.kernel[1])?,
        kernel_w: u("kernel_w", s.kernel[2])?,
        stride_d: u("stride_d", s.stride[0])?,
        stride_h: u("stride_h", s.stride[1])?,
        stride_w: u("stride_w", s.stride[2])?,
        pad_front: u("pad_front", front)?,
        pad_top: u("pad_top", top)?,
        pad_left: u("pad_left", left)?,
        dilation_d: u("dilation_d", s.dilation[0])?,
        dilation_h: u("dilation_h", s.dilation[1])?,
        dilation_w: u("dilation_w", s.dilation[2])?,
        has_bias: u32::from(s.has_bias),
        pad_mode: s.padding_mode.code(),
        ..ConvUniforms::default()
    }
    .with_epilogue(s.activation, s.has_residual))
}

/// How a 3D backward pass runs ([`Engine::backward_problem`]).
enum Backward3d {
    /// As one folded 2D problem.
    Whole(crate::spec::Conv2dShape),
    /// Over pieces of this many whole 3D images of the batch.
    Pieces(usize),
}
