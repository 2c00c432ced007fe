//! Forward convolutions too large for one dispatch, run piece by piece: on the GPU, each
//! piece's input (with its halo), weights, bias and residual copied into buffers of their own
//! ([`Engine::record_split`]); on the host, the same pieces cut from host tensors
//! ([`piece_tensors`], [`piece_residual`]). The pieces come from the planner
//! ([`plan::split`](crate::gpu::plan::split)).

use crate::error::Result;
use crate::gpu::engine::{copy, Engine};
use crate::gpu::plan::{self, ConvDispatch};
use crate::gpu::tensor::GpuTensor;
use crate::memory::try_vec;
use crate::spec::Conv2dShape;
use crate::tensor::Tensor;

/// Bytes of split pieces' temporary buffers submitted before the engine waits for the GPU to
/// catch up (see [`Engine::record_split`]).
const SPLIT_IN_FLIGHT_BYTES: usize = 512 << 20;

impl Engine {
    /// Runs a convolution too large for one dispatch piece by piece: each piece's input (with its
    /// halo), weights and bias are copied into buffers of their own, convolved, and its output
    /// copied into place. One submission per piece, so temporaries are freed as the GPU goes;
    /// after every [`SPLIT_IN_FLIGHT_BYTES`] of them the call waits for the GPU, so a huge
    /// problem's call returns when all but its last pieces are done.
    pub(crate) fn record_split(
        &self,
        shape: &Conv2dShape,
        pieces: &[(plan::Piece, ConvDispatch)],
        (input, weight, bias, residual): PlainSources<'_>,
        output: &GpuTensor,
    ) -> Result<()> {
        let mut in_flight = 0usize;
        for (piece, dispatch) in pieces {
            let pipelines = self.pipelines_of(dispatch)?;
            let gpu = self.gpu();
            let temp = |label, elements: usize| {
                // Created zeroed (wgpu's guarantee), which the all-padding zero row needs.
                gpu.buffer(
                    label,
                    elements as u64 * 4,
                    wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                )
            };
            let during = "dispatching a piece of a split convolution";
            let (_, submission) = gpu.submit(during, |encoder| {
                // 1. The piece's input rows (with halo), weight rows and bias entries.
                let x = temp("wgconv piece input", piece.shape.input_len());
                copy(encoder, input.buffer(), &x, &piece.input_runs(shape));
                let w_range = piece.weight_range(shape);
                let w = temp("wgconv piece weight", w_range.len());
                let w_run = plan::CopyRun {
                    src: w_range.start,
                    dst: 0,
                    len: w_range.len(),
                };
                copy(encoder, weight.buffer(), &w, &[w_run]);
                let b = bias.map(|bias| {
                    let b = temp("wgconv piece bias", piece.out_channels.len());
                    let run = plan::CopyRun {
                        src: piece.out_channels.start,
                        dst: 0,
                        len: piece.out_channels.len(),
                    };
                    copy(encoder, bias.buffer(), &b, &[run]);
                    b
                });
                // 2. The piece's output, holding the residual's elements of it when there is
                // one (the output's runs, reversed), which the epilogue reads where it writes.
                let y = temp("wgconv piece output", piece.shape.output_len());
                if let Some(residual) = residual {
                    let runs: Vec<_> = (piece.output_runs(shape).iter())
                        .map(|run| plan::CopyRun {
                            src: run.dst,
                            dst: run.src,
                            len: run.len,
                        })
                        .collect();
                    copy(encoder, residual.buffer(), &y, &runs);
                }
                // 3. The piece's convolution, then its output into place.
                let b_buffer = b.as_deref().unwrap_or(self.no_bias());
                let buffers = [&*x, &*w, b_buffer, &*y];
                let temp_packed = self.record(encoder, dispatch, &pipelines, buffers, None);
                copy(encoder, &y, output.buffer(), &piece.output_runs(shape));
                (x, w, b, y, temp_packed)
            })?;
            // Temporaries are freed when their piece is done; waiting now and then bounds how
            // many are alive at once.
            in_flight += 4 * (piece.shape.input_len() + piece.shape.weight_len())
                + 4 * piece.shape.output_len();
            if in_flight > SPLIT_IN_FLIGHT_BYTES {
                self.wait_for(&submission, "a piece of a split convolution")?;
                in_flight = 0;
            }
        }
        Ok(())
    }
}

/// A convolution's GPU tensors with plain (OIHW) weights: input, weight, bias, residual (what a
/// split convolution cuts its pieces from, and a conv3d folds).
pub(crate) type PlainSources<'a> = (
    &'a GpuTensor,
    &'a GpuTensor,
    Option<&'a GpuTensor>,
    Option<&'a GpuTensor>,
);

/// A piece's input (rows with halo, or one zero row), weights and bias, cut from host tensors.
pub(crate) fn piece_tensors(
    whole: &Conv2dShape,
    piece: &plan::Piece,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let mut x = try_vec(piece.shape.input_len(), 0.0, || {
        format!("a piece of the input, {:?}", piece.shape.input_shape())
    })?;
    for r in piece.input_runs(whole) {
        x[r.dst..r.dst + r.len].copy_from_slice(&input.data()[r.src..r.src + r.len]);
    }
    let x = Tensor::new(piece.shape.input_shape(), x)?;
    let w = Tensor::new(
        piece.shape.weight_shape(),
        weight.data()[piece.weight_range(whole)].to_vec(),
    )?;
    let b = bias
        .map(|b| {
            Tensor::new(
                [piece.out_channels.len()],
                b.data()[piece.out_channels.clone()].to_vec(),
            )
        })
        .transpose()?;
    Ok((x, w, b))
}

/// A piece's elements of `residual` (the whole problem's output shape): the output's runs,
/// read the other way.
pub(crate) fn piece_residual(
    whole: &Conv2dShape,
    piece: &plan::Piece,
    residual: &Tensor,
) -> Result<Tensor> {
    let mut r = try_vec(piece.shape.output_len(), 0.0, || {
        format!("a piece of the residual, {:?}", piece.shape.output_shape())
    })?;
    for run in piece.output_runs(whole) {
        r[run.src..run.src + run.len].copy_from_slice(&residual.data()[run.dst..run.dst + run.len]);
    }
    Tensor::new(piece.shape.output_shape(), r)
}
