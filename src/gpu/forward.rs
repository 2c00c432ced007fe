//! Forward convolutions: host tensors in and out ([`Engine::conv2d`]), GPU tensors in a new or a
//! given output ([`Engine::conv2d_gpu`], [`Engine::conv2d_into`]), with plain or packed weights
//! ([`Weights`]).
//!
//! Each call is planned once ([`plan::execution`]) and then recorded: one dispatch, or pieces
//! that each fit the device. One-shot calls whose tensors exceed one buffer are cut on the host
//! ([`plan::host_pieces`]) into problems that are each planned the same way.

use crate::error::{Error, Result};
use crate::gpu::buffer::OwnedBuffer;
use crate::gpu::device::Wait;
use crate::gpu::engine::{blocking_and_async, copy, Engine};
use crate::gpu::pieces::{piece_residual, piece_tensors};
use crate::gpu::pipelines::is_build_failure;
use crate::gpu::plan::{self, Algorithm, ConvDispatch, Execution, Plan, Split};
use crate::gpu::tensor::{GpuTensor, PackedWeights};
use crate::memory::try_vec;
use crate::spec::{Conv2dParams, Conv2dShape, ConvNdParams, ConvNdShape, ConvParams as _};
use crate::tensor::Tensor;

/// A convolution's weights on the GPU: an OIHW [`GpuTensor`], or [`PackedWeights`] packed once
/// by [`Engine::pack_weights`]. Both convert with `.into()`, so every GPU call takes either.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// `[O, C/groups, kh, kw]`.
    Plain(&'a GpuTensor),
    /// Packed for the implicit-GEMM kernels (the OIHW tensor kept beside).
    Packed(&'a PackedWeights),
}

impl<'a> From<&'a GpuTensor> for Weights<'a> {
    fn from(weight: &'a GpuTensor) -> Self {
        Weights::Plain(weight)
    }
}

impl<'a> From<&'a PackedWeights> for Weights<'a> {
    fn from(weights: &'a PackedWeights) -> Self {
        Weights::Packed(weights)
    }
}

impl Weights<'_> {
    /// The OIHW tensor.
    pub fn plain(&self) -> &GpuTensor {
        match self {
            Weights::Plain(w) => w,
            Weights::Packed(p) => &p.weight,
        }
    }

    fn packed(&self) -> Option<&wgpu::Buffer> {
        match self {
            Weights::Packed(p) => p.packed.as_deref(),
            Weights::Plain(_) => None,
        }
    }
}

impl Engine {
    blocking_and_async! {
        /// One-shot convolution: host tensors in, host tensor `[N, O, P, Q]` out. Problems whose
        /// tensors exceed the device's `max_buffer_size` are cut into pieces on the host (see
        /// [`plan::host_pieces`]); problems beyond one binding or dispatch are split on the device.
        ///
        /// # Errors
        /// As [`Engine::conv2d_gpu`] and [`Engine::download`].
        self.conv2d, conv2d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &Conv2dParams
        ) -> Tensor,
        |wait| { self.conv2d_with(input, weight, bias, None, params, wait).await }
    }

    blocking_and_async! {
        /// One-shot convolution with the fused epilogue
        /// `act(conv2d(input, weight) + bias + residual)`: `residual` has the output's shape and
        /// `act` is `params.activation`; each kernel applies it as it stores its outputs.
        ///
        /// # Errors
        /// As [`Engine::conv2d`], and [`Error::ResidualShape`].
        conv2d_fused, conv2d_fused_async => conv2d_with(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            residual: Option<&Tensor>,
            params: &Conv2dParams
        ) -> Tensor
    }

    pub(crate) async fn conv2d_with(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        params: &Conv2dParams,
        wait: Wait,
    ) -> Result<Tensor> {
        let shape = ConvNdParams::<2>::from(params)
            .shape_of(input, weight, bias)?
            .with_residual(residual.map(Tensor::shape))?;
        let y = self
            .conv_lowered(&shape.as_conv2d(), input, weight, bias, residual, wait)
            .await?;
        Tensor::new(shape.output_shape(), y.into_data())
    }

    /// The one-shot convolution of host tensors whose data is laid out as `shape`'s (the
    /// tensors' own shapes are not read): `shape`'s output `[N, O, P, Q]`.
    pub(crate) async fn conv_lowered(
        &self,
        shape: &Conv2dShape,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        wait: Wait,
    ) -> Result<Tensor> {
        // True convolution: the cross-correlation with the kernel turned (src/gpu/true_conv.rs).
        let (turned, unflipped);
        let (shape, weight) = if shape.flip_kernel {
            turned = weight.kernel_turned()?;
            unflipped = Conv2dShape {
                flip_kernel: false,
                ..*shape
            };
            (&unflipped, &turned)
        } else {
            (shape, weight)
        };
        let Some(pieces) = plan::host_pieces(shape, &self.limits())? else {
            let tensors = (input, weight, bias, residual);
            return self.conv2d_whole(shape, tensors, wait).await;
        };
        let mut output = try_vec(shape.output_len(), 0.0, || {
            format!("the output {:?}", shape.output_shape())
        })?;
        for piece in &pieces {
            let (x, w, b) = piece_tensors(shape, piece, input, weight, bias)?;
            let r = residual
                .map(|r| piece_residual(shape, piece, r))
                .transpose()?;
            let tensors = (&x, &w, b.as_ref(), r.as_ref());
            let y = self.conv2d_whole(&piece.shape, tensors, wait).await?;
            for r in piece.output_runs(shape) {
                output[r.dst..r.dst + r.len].copy_from_slice(&y.data()[r.src..r.src + r.len]);
            }
        }
        Tensor::new(shape.output_shape(), output)
    }

    /// Plans (so an impossible problem fails before any upload), uploads, runs and reads back a
    /// problem whose tensors each fit one buffer.
    async fn conv2d_whole(
        &self,
        shape: &Conv2dShape,
        (input, weight, bias, residual): HostTensors<'_>,
        wait: Wait,
    ) -> Result<Tensor> {
        let execution = self.forward_execution(shape, self.algorithm(), false)?;
        if matches!(execution, Execution::Empty) {
            return Tensor::new(shape.output_shape(), Vec::new());
        }
        let input = self.upload(input)?;
        let weight = self.upload(weight)?;
        let bias = bias.map(|b| self.upload(b)).transpose()?;
        let residual = residual.map(|r| self.upload(r)).transpose()?;
        let output = self.alloc(&shape.output_shape())?;
        self.record_execution(
            shape,
            &execution,
            &input,
            Weights::Plain(&weight),
            (bias.as_ref(), residual.as_ref()),
            &output,
        )?;
        self.download_with(&output, wait).await
    }

    /// Convolution of GPU tensors into a new GPU tensor `[N, O, P, Q]` (`[O, P, Q]` for an
    /// unbatched input `[C, H, W]`); returns once the work is submitted (download or
    /// [`Engine::synchronize`] to wait for it). `weights`: a [`GpuTensor`] or [`PackedWeights`].
    ///
    /// # Errors
    /// Every shape or parameter error of [`Conv2dShape::new`], the plan's size errors
    /// ([`Error::TooLarge`], [`Error::DeviceLimit`]), [`Error::ForeignTensor`],
    /// [`Error::PackedGroups`] when packed weights were packed for other groups, GPU errors.
    pub fn conv2d_gpu<'w>(
        &self,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        self.conv2d_fused_gpu(input, weights, bias, None, params)
    }

    /// Convolution of GPU tensors with the fused epilogue
    /// `act(conv2d(input, weights) + bias + residual)` (see [`Engine::conv2d_fused`]) into a new
    /// GPU tensor.
    ///
    /// # Errors
    /// As [`Engine::conv2d_gpu`], and [`Error::ResidualShape`].
    pub fn conv2d_fused_gpu<'w>(
        &self,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        let weights = weights.into();
        let shape = self.fused_shape(input, weights, bias, residual, &params.into())?;
        let output = self.alloc(&shape.output_shape())?;
        let algorithm = self.algorithm();
        let tensors = (input, weights, bias, residual);
        self.plan_and_record(&shape.as_conv2d(), tensors, &output, algorithm)?;
        Ok(output)
    }

    /// Convolution of GPU tensors written into `output`, which must have the output's shape.
    ///
    /// # Errors
    /// As [`Engine::conv2d_gpu`], and [`Error::OutputShape`].
    pub fn conv2d_into<'w>(
        &self,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.conv2d_into_with(self.algorithm(), input, weights, bias, params, output)
    }

    /// As [`Engine::conv2d_into`] with an explicit algorithm instead of the engine's (to compare
    /// kernels).
    ///
    /// # Errors
    /// As [`Engine::conv2d_into`], and [`Error::UnsupportedAlgorithm`].
    pub fn conv2d_into_with<'w>(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.conv2d_fused_into_with(algorithm, input, weights, bias, None, params, output)
    }

    /// As [`Engine::conv2d_fused_gpu`], written into `output`, with an explicit algorithm.
    ///
    /// # Errors
    /// As [`Engine::conv2d_into_with`], and [`Error::ResidualShape`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_fused_into_with<'w>(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weights: impl Into<Weights<'w>>,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        let weights = weights.into();
        let shape = self.fused_shape(input, weights, bias, residual, &params.into())?;
        self.check_output(output, &shape.output_shape())?;
        let tensors = (input, weights, bias, residual);
        self.plan_and_record(&shape.as_conv2d(), tensors, output, algorithm)
    }

    /// `output` belongs to this engine and has the call's output shape.
    pub(crate) fn check_output(&self, output: &GpuTensor, expected: &[usize]) -> Result<()> {
        self.check_owner("output", output)?;
        if output.shape() != expected {
            return Err(Error::OutputShape {
                expected: expected.to_vec(),
                got: output.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Packs `weight` (`[O, C/groups, kh, kw]`, or a conv1d's `[O, C/groups, k]`) for convolutions
    /// with `groups` groups, once.
    ///
    /// # Errors
    /// Shape errors ([`Error::OutChannelsNotDivisible`], ...), size errors, GPU errors.
    pub fn pack_weights(&self, weight: GpuTensor, groups: usize) -> Result<PackedWeights> {
        self.check_owner("weight", &weight)?;
        let shape = packing_shape(weight.shape(), groups)?;
        // Weights too large for one binding are kept unpacked: convolutions over them are split
        // and pack each piece's weights as they go.
        let (plan, len) = match plan::pack_plan(&shape, &self.limits()) {
            Ok(p) => p,
            Err(Error::DeviceLimit { .. } | Error::TooLarge { .. }) => {
                return Ok(PackedWeights {
                    weight,
                    packed: None,
                    groups,
                })
            }
            Err(e) => return Err(e),
        };
        let pipeline = self.pipeline(&plan)?;
        let (packed, _) = self.gpu().submit("packing weights", |encoder| {
            let packed = self.gpu().buffer(
                "wgconv packed weights",
                (len as u64 * 4).max(16),
                wgpu::BufferUsages::STORAGE,
            );
            let w = weight.buffer();
            self.encode(encoder, &pipeline, &plan, &[w, &packed]);
            packed
        })?;
        Ok(PackedWeights {
            weight,
            packed: Some(packed),
            groups,
        })
    }

    /// The plan this engine makes for `shape` (which kernel, which tiles): the tuned or planned
    /// kernel, or the direct one where that did not build.
    ///
    /// # Errors
    /// As [`plan::plan`].
    pub fn plan(&self, shape: &Conv2dShape) -> Result<Plan> {
        let algorithm = self.chosen_algorithm(shape, self.algorithm());
        let chosen = plan::plan(shape, &self.limits(), algorithm)?;
        // A kernel remembered as not building falls back to the direct one (as a call would).
        if self.algorithm() == Algorithm::Auto && self.has_failed(chosen.kernel) {
            return plan::plan(shape, &self.limits(), Algorithm::Direct);
        }
        Ok(chosen)
    }

    /// Whether this engine runs `shape` in one dispatch (`None`) or split into pieces that fit
    /// its device's limits (`Some`, see [`plan::schedule`]).
    ///
    /// # Errors
    /// As [`plan::schedule`]: when not even the smallest piece fits.
    pub fn schedule(&self, shape: &Conv2dShape) -> Result<Option<Split>> {
        plan::schedule(shape, &self.limits(), self.algorithm())
    }

    /// Checks ownership, the packing's groups and the shapes of a call on GPU tensors.
    pub(crate) fn call_shape<const N: usize>(
        &self,
        input: &GpuTensor,
        weights: Weights<'_>,
        bias: Option<&GpuTensor>,
        params: &ConvNdParams<N>,
    ) -> Result<ConvNdShape<N>> {
        let weight = weights.plain();
        self.check_owner("input", input)?;
        self.check_owner("weight", weight)?;
        if let Some(b) = bias {
            self.check_owner("bias", b)?;
        }
        if let Weights::Packed(p) = weights {
            if params.groups != p.groups {
                return Err(Error::PackedGroups {
                    packed: p.groups,
                    requested: params.groups,
                });
            }
        }
        params.shape_of(input, weight, bias)
    }

    /// As [`Engine::call_shape`], with the residual's owner and shape checked too.
    pub(crate) fn fused_shape<const N: usize>(
        &self,
        input: &GpuTensor,
        weights: Weights<'_>,
        bias: Option<&GpuTensor>,
        residual: Option<&GpuTensor>,
        params: &ConvNdParams<N>,
    ) -> Result<ConvNdShape<N>> {
        let shape = self.call_shape(input, weights, bias, params)?;
        if let Some(r) = residual {
            self.check_owner("residual", r)?;
        }
        shape.with_residual(residual.map(GpuTensor::shape))
    }

    /// Plans the validated `shape` once on the host, then records what was planned.
    pub(crate) fn plan_and_record(
        &self,
        shape: &Conv2dShape,
        (input, weights, bias, residual): GpuSources<'_, '_>,
        output: &GpuTensor,
        algorithm: Algorithm,
    ) -> Result<()> {
        if shape.flip_kernel {
            // True convolution: the cross-correlation with the kernel turned, from the plain
            // weight (packed weights hold the unturned one too; src/gpu/true_conv.rs).
            let turned = self.kernel_turned(weights.plain())?;
            let unflipped = Conv2dShape {
                flip_kernel: false,
                ..*shape
            };
            let tensors = (input, Weights::Plain(&turned), bias, residual);
            return self.plan_and_record(&unflipped, tensors, output, algorithm);
        }
        let packed = weights.packed().is_some();
        let execution = self.forward_execution(shape, algorithm, packed)?;
        self.record_execution(shape, &execution, input, weights, (bias, residual), output)
    }

    /// The algorithm a call with `algorithm` runs for `shape`: a forced one as it is; for `Auto`,
    /// the tuned winner of the shape's class when the cache has one that covers the shape.
    fn chosen_algorithm(&self, shape: &Conv2dShape, algorithm: Algorithm) -> Algorithm {
        if algorithm != Algorithm::Auto {
            return algorithm;
        }
        self.tuned_algorithm(shape)
            .filter(|&tuned| plan::plan(shape, &self.limits(), tuned).is_ok())
            .unwrap_or(Algorithm::Auto)
    }

    /// Plans `shape` (see [`Engine::chosen_algorithm`]) and builds the pipelines of the plan, so
    /// that nothing is recorded before every kernel is ready. When a kernel the engine chose does
    /// not build (past the pipeline-build bound, or refused by the driver), the shape falls back
    /// to the direct kernel, and the failure is logged and remembered; a forced algorithm's
    /// failure is the caller's error.
    ///
    /// # Errors
    /// The plan's errors; the build error when the kernel was forced or the direct kernel does
    /// not build either ([`Error::Timeout`] past the bound).
    fn forward_execution(
        &self,
        shape: &Conv2dShape,
        algorithm: Algorithm,
        have_packed: bool,
    ) -> Result<Execution> {
        let chosen = self.chosen_algorithm(shape, algorithm);
        let execution = plan::execution(shape, &self.limits(), chosen, have_packed)?;
        match self.build_pipelines(&execution) {
            Err(e) if algorithm == Algorithm::Auto && is_build_failure(&e) => {
                log::warn!("wgconv: {e}; {shape:?} falls back to the direct kernel");
                let direct = plan::execution(shape, &self.limits(), Algorithm::Direct, false)?;
                self.build_pipelines(&direct)?;
                Ok(direct)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(execution),
        }
    }

    /// Builds (or finds in the cache) every pipeline `execution` dispatches.
    fn build_pipelines(&self, execution: &Execution) -> Result<()> {
        match execution {
            Execution::Empty => Ok(()),
            Execution::Whole(dispatch) => self.pipelines_of(dispatch).map(drop),
            Execution::Split { pieces, .. } => pieces
                .iter()
                .try_for_each(|(_, dispatch)| self.pipelines_of(dispatch).map(drop)),
        }
    }

    /// Records and submits a planned forward convolution of `shape`.
    fn record_execution(
        &self,
        shape: &Conv2dShape,
        execution: &Execution,
        input: &GpuTensor,
        weights: Weights<'_>,
        (bias, residual): (Option<&GpuTensor>, Option<&GpuTensor>),
        output: &GpuTensor,
    ) -> Result<()> {
        match execution {
            Execution::Empty => Ok(()),
            Execution::Whole(dispatch) => {
                let pipelines = self.pipelines_of(dispatch)?;
                let bias = bias.map_or(self.no_bias(), GpuTensor::buffer);
                let buffers = [
                    input.buffer(),
                    weights.plain().buffer(),
                    bias,
                    output.buffer(),
                ];
                let during = format!("dispatching {}", dispatch.conv.kernel.file_name());
                self.gpu().submit(&during, |encoder| {
                    // The epilogue reads the residual where it writes (shaders/epilogue.wgsl).
                    if let Some(r) = residual.filter(|r| r.buffer() != output.buffer()) {
                        let run = plan::CopyRun {
                            src: 0,
                            dst: 0,
                            len: r.len(),
                        };
                        copy(encoder, r.buffer(), output.buffer(), &[run]);
                    }
                    self.record(encoder, dispatch, &pipelines, buffers, weights.packed())
                })?;
                Ok(())
            }
            Execution::Split { split, pieces } => {
                log::debug!("wgconv: splitting {shape:?} into pieces of {split:?}");
                let tensors = (input, weights.plain(), bias, residual);
                self.record_split(shape, pieces, tensors, output)
            }
        }
    }

    /// The pipelines of a dispatch: the convolution's, and the packing's when it packs.
    pub(crate) fn pipelines_of(
        &self,
        dispatch: &ConvDispatch,
    ) -> Result<(wgpu::ComputePipeline, Option<wgpu::ComputePipeline>)> {
        let conv = self.pipeline(&dispatch.conv)?;
        let pack = dispatch
            .pack
            .as_ref()
            .map(|(pack, _)| self.pipeline(pack))
            .transpose()?;
        Ok((conv, pack))
    }

    /// Records a dispatch on `[input, weight (OIHW), bias, output]`, packing the weights first
    /// when it needs packed ones and `packed` has none. Returns the per-call packed buffer, if
    /// any, to keep until submission.
    pub(crate) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dispatch: &ConvDispatch,
        (conv, pack): &(wgpu::ComputePipeline, Option<wgpu::ComputePipeline>),
        [input, weight, bias, output]: [&wgpu::Buffer; 4],
        packed: Option<&wgpu::Buffer>,
    ) -> Option<OwnedBuffer> {
        let temp_packed =
            dispatch
                .pack
                .as_ref()
                .zip(pack.as_ref())
                .map(|((pack_plan, len), pipeline)| {
                    let temp = self.gpu().buffer(
                        "wgconv packed weights (per call)",
                        (*len as u64 * 4).max(16),
                        wgpu::BufferUsages::STORAGE,
                    );
                    self.encode(encoder, pipeline, pack_plan, &[weight, &temp]);
                    temp
                });
        let weight = match (dispatch.conv.kernel.reads_packed_weights(), &temp_packed) {
            (true, Some(temp)) => temp,
            (true, None) => packed.unwrap_or(weight),
            (false, _) => weight,
        };
        self.encode(
            encoder,
            conv,
            &dispatch.conv,
            &[input, weight, bias, output],
        );
        temp_packed
    }
}

/// A forward convolution's GPU tensors: input, weights, bias, residual.
pub(crate) type GpuSources<'a, 'w> = (
    &'a GpuTensor,
    Weights<'w>,
    Option<&'a GpuTensor>,
    Option<&'a GpuTensor>,
);

/// A one-shot convolution's host tensors: input, weight, bias, residual.
type HostTensors<'a> = (
    &'a Tensor,
    &'a Tensor,
    Option<&'a Tensor>,
    Option<&'a Tensor>,
);

/// The shape whose packing plan packs `weight` for `groups` groups: an input exactly the size of
/// the kernel, so every weight shape that can convolve anything is accepted.
fn packing_shape(weight: &[usize], groups: usize) -> Result<Conv2dShape> {
    // A conv1d's weight [O, C/groups, k] packs as the conv2d weight [O, C/groups, 1, k] it runs as.
    let (o, cg, kh, kw) = match *weight {
        [o, cg, k] => (o, cg, 1, k),
        [o, cg, kh, kw] => (o, cg, kh, kw),
        _ => {
            return Err(Error::WeightRank {
                op: "pack_weights",
                expected: "3D weight [O, C/groups, k] or 4D weight [O, C/groups, kh, kw]",
                shape: weight.to_vec(),
            })
        }
    };
    let channels = cg.checked_mul(groups).ok_or_else(|| Error::SizeOverflow {
        what: "C/groups * groups".into(),
    })?;
    let params = Conv2dParams::default().with_groups(groups);
    Conv2dShape::new(&[1, channels, kh, kw], &[o, cg, kh, kw], None, &params)
}
