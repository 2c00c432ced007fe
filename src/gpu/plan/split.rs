//! Cutting a convolution too large for one dispatch, binding or buffer into pieces that each
//! fit: one mechanism for the device-side split of a call, the host-side pieces of a one-shot
//! call and the batch pieces of the backward passes.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::plan::dispatch::{check_allocation, check_buffer, index_u32, PlanLimits};
use crate::spec::{Conv2dParams, Conv2dShape, Padding};

/// the groups, the output channels within a group, and the output rows. Every piece reads the
/// input rows its output rows need (the halo), so the pieces together compute exactly the whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Images per piece.
    pub batch: usize,
    /// Groups per piece.
    pub groups: usize,
    /// Output channels of one group per piece (all of them when a piece spans several groups).
    pub out_channels: usize,
    /// Output rows per piece.
    pub rows: usize,
}

/// One piece of a split convolution: which part of the problem it covers, in the whole problem's
/// coordinates, and the smaller convolution that computes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Images `[n0, n1)`.
    pub batch: Range<usize>,
    /// Input channels read.
    pub in_channels: Range<usize>,
    /// Output channels written.
    pub out_channels: Range<usize>,
    /// Output rows written.
    pub out_rows: Range<usize>,
    /// Input rows read, or `None` when every row the piece reads is padding: it then reads one
    /// row of zeros instead, which gives the same sums.
    pub in_rows: Option<Range<usize>>,
    /// The piece as a convolution of its own: input `[batch, in_channels, rows, W]`, weight rows
    /// `out_channels`, padding adjusted so that its output is exactly `out_rows`.
    pub shape: Conv2dShape,
}

/// A contiguous copy in f32 elements: `len` values from offset `src` to offset `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyRun {
    /// Offset in the source tensor.
    pub src: usize,
    /// Offset in the destination tensor.
    pub dst: usize,
    /// Number of elements.
    pub len: usize,
}

/// Appends a run, merged with the previous one when both are contiguous.
fn push_run(runs: &mut Vec<CopyRun>, run: CopyRun) {
    match runs.last_mut() {
        Some(last) if last.src + last.len == run.src && last.dst + last.len == run.dst => {
            last.len += run.len;
        }
        _ => runs.push(run),
    }
}

impl Piece {
    /// The parameters that give [`Piece::shape`] (explicit padding).
    pub fn params(&self) -> Conv2dParams {
        self.shape.params()
    }

    /// Copies from the whole input (`whole`'s `[N, C, H, W]`) into the piece's input: per image
    /// and channel, the rows read. Empty when the piece reads a zero row instead.
    pub fn input_runs(&self, whole: &Conv2dShape) -> Vec<CopyRun> {
        let mut runs = Vec::new();
        let Some(rows) = &self.in_rows else {
            return runs;
        };
        let [_, c, h, w] = whole.input_shape();
        let mut dst = 0;
        for n in self.batch.clone() {
            for ch in self.in_channels.clone() {
                let src = ((n * c + ch) * h + rows.start) * w;
                let len = rows.len() * w;
                push_run(&mut runs, CopyRun { src, dst, len });
                dst += len;
            }
        }
        runs
    }

    /// Copies from the piece's output into the whole output (`whole`'s `[N, O, P, Q]`).
    pub fn output_runs(&self, whole: &Conv2dShape) -> Vec<CopyRun> {
        let [_, o, p, q] = whole.output_shape();
        let mut runs = Vec::new();
        let mut src = 0;
        for n in self.batch.clone() {
            for ch in self.out_channels.clone() {
                let dst = ((n * o + ch) * p + self.out_rows.start) * q;
                let len = self.out_rows.len() * q;
                push_run(&mut runs, CopyRun { src, dst, len });
                src += len;
            }
        }
        runs
    }

    /// The piece's weights: a contiguous range of the whole OIHW weight, in elements.
    pub fn weight_range(&self, whole: &Conv2dShape) -> Range<usize> {
        let per_channel = whole.weight_len() / whole.out_channels;
        self.out_channels.start * per_channel..self.out_channels.end * per_channel
    }
}

/// The convolution computing `out_rows` output rows of `images` images and `out_channels` output
/// channels over `groups` groups, from `in_h` input rows of which the first lies `top` padded rows
/// below the first row the piece reads.
fn piece_shape(
    shape: &Conv2dShape,
    images: usize,
    groups: usize,
    out_channels: usize,
    out_rows: usize,
    in_h: usize,
    top: usize,
) -> Result<Conv2dShape> {
    // Padded rows the output rows span: (rows-1)*stride + the dilated kernel height.
    let needed = (out_rows - 1) * shape.stride_h + (shape.kernel_h - 1) * shape.dilation_h + 1;
    let bottom = needed.saturating_sub(in_h + top);
    let cg = shape.in_channels_per_group();
    let params = Conv2dParams {
        padding: Padding::explicit(top, bottom, shape.pad_left, shape.pad_right),
        groups,
        ..shape.params()
    };
    let bias = [out_channels];
    let piece = Conv2dShape::new(
        &[images, groups * cg, in_h, shape.in_w],
        &[out_channels, cg, shape.kernel_h, shape.kernel_w],
        shape.has_bias.then_some(&bias[..]),
        &params,
    )?;
    // The epilogue's residual is cut with the output (its activation came with the params).
    Ok(Conv2dShape {
        has_residual: shape.has_residual,
        ..piece
    })
}

/// Whether the pieces of `shape` must keep every input row: its top or bottom padding reads the
/// input (a mode other than zeros), so a piece cut from the middle would mirror, repeat or wrap
/// the wrong rows. Such a problem is split over images, groups and output channels only.
fn keeps_all_rows(shape: &Conv2dShape) -> bool {
    shape.pads_with_mode() && shape.pad_top + shape.pad_bottom > 0
}

/// Input rows that output rows `rows` read, clipped to the input; `None` when all are padding.
fn input_rows(shape: &Conv2dShape, rows: &Range<usize>) -> Option<Range<usize>> {
    // In padded coordinates the rows read are [start*stride, (end-1)*stride + span).
    let first = rows.start * shape.stride_h;
    let last = (rows.end - 1) * shape.stride_h + (shape.kernel_h - 1) * shape.dilation_h;
    let start = first.saturating_sub(shape.pad_top).min(shape.in_h);
    let end = (last + 1).saturating_sub(shape.pad_top).min(shape.in_h);
    (start < end).then_some(start..end)
}

/// Chooses how to split `shape` so that every piece `fits`, or `None` when even one output row of
/// one channel of one image does not. Halves the batch first (pieces read disjoint input), then
/// the groups, then the output channels when the weights are what does not fit, then the output
/// rows (pieces re-read a halo), then the output channels.
pub fn choose_split(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    fits: impl Fn(&Conv2dShape) -> bool,
) -> Option<Split> {
    let og = shape.out_channels_per_group();
    let mut split = Split {
        batch: shape.batch,
        groups: shape.groups,
        out_channels: og,
        rows: shape.out_h,
    };
    loop {
        // The largest piece: full sizes and as many input rows as an interior piece reads.
        let span = (split.rows - 1) * shape.stride_h + (shape.kernel_h - 1) * shape.dilation_h + 1;
        let channels = if split.groups > 1 {
            split.groups * og
        } else {
            split.out_channels
        };
        let (in_h, top) = if keeps_all_rows(shape) {
            (shape.in_h, shape.pad_top)
        } else {
            (span.min(shape.in_h), 0)
        };
        let piece = piece_shape(
            shape,
            split.batch,
            split.groups,
            channels,
            split.rows,
            in_h,
            top,
        );
        let piece = piece.ok()?;
        if fits(&piece) {
            return Some(split);
        }
        let weight_too_big = check_buffer("weight", piece.weight_len(), limits).is_err();
        let halve = |v: usize| v.div_ceil(2);
        if split.batch > 1 && !weight_too_big {
            split.batch = halve(split.batch);
        } else if split.groups > 1 {
            split.groups = halve(split.groups);
        } else if split.out_channels > 1 && weight_too_big {
            split.out_channels = halve(split.out_channels);
        } else if split.rows > 1 && !keeps_all_rows(shape) {
            split.rows = halve(split.rows);
        } else if split.out_channels > 1 {
            split.out_channels = halve(split.out_channels);
        } else if split.batch > 1 {
            split.batch = halve(split.batch);
        } else {
            return None;
        }
    }
}

/// The most pieces one split convolution may have.
pub const MAX_PIECES: u64 = 1 << 18;

/// The pieces of `shape` cut by `split`, groups outermost and rows innermost.
///
/// # Errors
/// [`Error::TooLarge`] past [`MAX_PIECES`] pieces; otherwise only
/// if a piece's shape fails validation, which a split from [`choose_split`] rules out.
pub fn pieces(shape: &Conv2dShape, split: &Split) -> Result<Vec<Piece>> {
    let (cg, og) = (
        shape.in_channels_per_group(),
        shape.out_channels_per_group(),
    );
    let chunks = |len: usize, size: usize| {
        (0..len.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(len))
    };
    // Every piece is planned and recorded: a count past MAX_PIECES is refused before any list
    // of them is made (a padding of 2^40 rows would otherwise ask for gigabytes of pieces).
    let count = [
        shape.groups.div_ceil(split.groups.max(1)),
        og.div_ceil(split.out_channels.max(1)),
        shape.batch.div_ceil(split.batch.max(1)),
        shape.out_h.div_ceil(split.rows.max(1)),
    ]
    .iter()
    .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))
    .unwrap_or(u64::MAX);
    if count > MAX_PIECES {
        return Err(Error::TooLarge {
            what: "pieces of a split convolution".into(),
            value: count,
            limit: MAX_PIECES,
            why: "every piece is planned and dispatched on its own",
        });
    }
    let mut out = Vec::new();
    for groups in chunks(shape.groups, split.groups) {
        // A piece spanning several groups takes all their output channels.
        let within = if groups.len() > 1 {
            og
        } else {
            split.out_channels
        };
        for channels in chunks(og, within) {
            let out_channels =
                groups.start * og + channels.start..(groups.end - 1) * og + channels.end;
            for batch in chunks(shape.batch, split.batch) {
                for out_rows in chunks(shape.out_h, split.rows) {
                    let in_rows = if keeps_all_rows(shape) {
                        Some(0..shape.in_h)
                    } else {
                        input_rows(shape, &out_rows)
                    };
                    let (in_h, top) = match &in_rows {
                        // Padded rows between the first one the output reads and the first real
                        // row copied.
                        Some(r) => (
                            r.len(),
                            shape.pad_top + r.start - out_rows.start * shape.stride_h,
                        ),
                        None => (1, 0),
                    };
                    let piece_shape = piece_shape(
                        shape,
                        batch.len(),
                        groups.len(),
                        out_channels.len(),
                        out_rows.len(),
                        in_h,
                        top,
                    )?;
                    out.push(Piece {
                        batch: batch.clone(),
                        in_channels: groups.start * cg..groups.end * cg,
                        out_channels: out_channels.clone(),
                        out_rows,
                        in_rows,
                        shape: piece_shape,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The most output bytes the one-shot `Engine::conv2d` computes in one piece. Each piece's
/// output lives three times at once (GPU buffer, readback buffer, downloaded piece), and on a
/// software adapter all three are host memory; pieces this size keep the peak at the whole
/// host output plus a bounded amount (`wgconv run`: output + input + weight + about 1 GB).
pub const HOST_PIECE_OUTPUT_BYTES: u64 = 256 << 20;

/// The host-side pieces of a one-shot call whose tensor exceeds `max_buffer_size` or whose
/// output exceeds [`HOST_PIECE_OUTPUT_BYTES`], or `None` when it runs whole.
///
/// # Errors
/// [`Error::DeviceLimit`] naming the tensor when not even one output row fits.
pub fn host_pieces(shape: &Conv2dShape, limits: &PlanLimits) -> Result<Option<Vec<Piece>>> {
    let fits = |s: &Conv2dShape| {
        [s.input_len(), s.weight_len(), s.output_len()]
            .iter()
            .all(|&len| check_allocation("tensor", len, limits).is_ok())
            && s.output_len() as u64 * 4 <= HOST_PIECE_OUTPUT_BYTES
    };
    if fits(shape) || shape.output_len() == 0 {
        return Ok(None);
    }
    match choose_split(shape, limits, fits) {
        Some(split) => pieces(shape, &split).map(Some),
        None => {
            // Not even one output row fits: name the tensor that does not.
            check_allocation("input", shape.input_len(), limits)?;
            check_allocation("weight", shape.weight_len(), limits)?;
            check_allocation("output", shape.output_len(), limits)?;
            Ok(None)
        }
    }
}

/// Whether `tensors` (name, f32 elements) each fit one binding and u32 indexing.
///
/// # Errors
/// [`Error::DeviceLimit`] or [`Error::TooLarge`] naming the first that does not.
pub fn check_bindings(tensors: &[(&str, usize)], limits: &PlanLimits) -> Result<()> {
    for &(what, len) in tensors {
        check_buffer(what, len, limits)?;
        index_u32(&format!("{what} element count"), len)?;
    }
    Ok(())
}

/// Images per piece when a pass over `batch` images must be cut because a batch-major tensor
/// (`per_image` elements each) exceeds one binding or u32 indexing; `None` when the whole batch
/// fits (or a single image does not, which the pass reports).
pub fn batch_split(
    batch: usize,
    per_image: &[(&str, usize)],
    limits: &PlanLimits,
) -> Option<usize> {
    let fits = |images: usize| {
        per_image.iter().all(|&(what, len)| {
            images
                .checked_mul(len)
                .is_some_and(|total| check_bindings(&[(what, total)], limits).is_ok())
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

/// The ranges of `batch` images, `images` at a time.
pub fn batch_ranges(batch: usize, images: usize) -> impl Iterator<Item = Range<usize>> {
    (0..batch)
        .step_by(images.max(1))
        .map(move |start| start..(start + images).min(batch))
}
