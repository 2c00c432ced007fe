//! The fair CPU baseline: tiled im2col feeding a blocked f32 GEMM, spread over every core.
//!
//! Same result as [`reference::conv2d`](super::reference::conv2d) up to f32 rounding. For image `n`
//! and group `g` the convolution is one matrix product
//!
//! `Y[n, g] (O/g x P*Q) = W[g] (O/g x K) * X_col[n, g] (K x P*Q)`, `K = C/g * kh * kw`,
//!
//! where row `(ci, i, j)` of `X_col` holds `x[n, g*C/g + ci, p*sh + i*dh - top, q*sw + j*dw - left]`
//! for every output pixel `(p, q)` (zero outside the input), and then `Y[o] += bias[o]`.
//!
//! Three ways to compute it, chosen by [`conv2d`]:
//! - **pointwise** (1x1 kernel, stride 1, no padding): the input plane already is `X_col`, so the
//!   GEMM reads it in place;
//! - **depthwise** (one input channel and one output channel per group): a direct loop, because
//!   a GEMM with `K = kh*kw` and a single row is all overhead;
//! - **im2col**: everything else. `X_col` is built for one tile of output pixels at a time, small
//!   enough to stay in the core's L2 cache while the GEMM consumes it.
//!
//! Parallelism is ours, never the GEMM's: rayon runs independent (image, group, pixel tile,
//! output-channel block) tasks, each calling a single-threaded GEMM, so the cores are never
//! oversubscribed by nested pools.

use std::cell::RefCell;

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::error::Result;
use crate::spec::{Activation, Conv2dParams, Conv2dShape, ConvNdParams, ConvParams as _};
use crate::tensor::Tensor;

mod volume;

/// Bytes of one im2col tile (`K x tile` floats); an L2 share that leaves room for the GEMM's
/// own packed blocks.
const IM2COL_TILE_BYTES: usize = 384 * 1024;

/// Largest im2col tile, in floats, a thread keeps between calls: four ordinary tiles' worth, so
/// the [`MIN_TILE`] floor of large-K layers (ResNet's 512-channel 3x3) is kept too.
const SCRATCH_KEEP_FLOATS: usize = 4 * IM2COL_TILE_BYTES / std::mem::size_of::<f32>();

/// Fewest output pixels in a tile: below this the GEMM's per-call packing of the weights dominates.
const MIN_TILE: usize = 64;

/// Tile lengths are multiples of this: the f32 lanes of an AVX-512 register, the GEMM's row panel
/// granule.
const TILE_ALIGN: usize = 16;

/// Most output pixels in a tile when no im2col buffer bounds it (pointwise path).
const MAX_TILE: usize = 4096;

/// Tasks per thread to aim for when the tiles allow it.
const TASKS_PER_THREAD: usize = 4;

/// Fewest output channels in a block when output channels are split across tasks.
const MIN_O_BLOCK: usize = 16;

/// Depthwise-like layers (one input channel per group) use the direct loop up to this many
/// output channels per group: measured, a channel multiplier of 2 already runs faster as a GEMM.
const DIRECT_MAX_OUT_PER_GROUP: usize = 1;

/// Multiply-adds a direct-loop task should at least hold, so rayon's per-task cost stays small.
const DIRECT_MIN_TASK_FMAS: usize = 32 * 1024;

/// `y = act(conv2d(x, w) + b)` in f32 on all cores, with PyTorch's `nn.Conv2d` semantics and
/// `act` the parameters' activation: `[N, O, P, Q]` (`[O, P, Q]` for an unbatched input
/// `[C, H, W]`).
///
/// For output element `(n, o, p, q)` with `g = o / (O/groups)`:
/// `y = bias[o] + sum_{ci, i, j} x[n, g*C/groups + ci, p*sh + i*dh - top, q*sw + j*dw - left] * w[o, ci, i, j]`,
/// input positions outside `[0, H) x [0, W)` reading the padding (zero, or under another
/// [`PaddingMode`](crate::spec::PaddingMode) a padded copy of the input is made first, as PyTorch
/// does). Sums are in f32, in an order the GEMM chooses, so results differ from the f64 reference by rounding only. An empty batch gives an
/// empty `[0, O, P, Q]` output.
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`], exactly as
/// [`reference::conv2d`](super::reference::conv2d) returns them.
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<Tensor> {
    // Validated with the activation, as the reference validates.
    ConvNdParams::<2>::from(params).shape_of(input, weight, bias)?;
    let linear = Conv2dParams {
        activation: Activation::None,
        ..*params
    };
    activate(
        params.activation,
        conv2d_linear(input, weight, bias, &linear)?,
    )
}

/// `y` through `activation` ([`Activation::apply_f32`], the shaders' formulas), on all cores.
fn activate(activation: Activation, y: Tensor) -> Result<Tensor> {
    if activation.is_none() {
        return Ok(y);
    }
    let shape = y.shape().to_vec();
    let mut data = y.into_data();
    data.par_chunks_mut(16 * 1024).for_each(|chunk| {
        chunk.iter_mut().for_each(|v| *v = activation.apply_f32(*v));
    });
    Tensor::new(shape, data)
}

/// [`conv2d`] without its activation.
fn conv2d_linear(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv2dParams,
) -> Result<Tensor> {
    let shape = ConvNdParams::<2>::from(params).shape_of(input, weight, bias)?;
    if params.flip_kernel {
        // True convolution is the cross-correlation with the kernel turned.
        let unflipped = params.with_flip_kernel(false);
        return conv2d_linear(input, &weight.kernel_turned()?, bias, &unflipped);
    }
    let s = shape.as_conv2d();
    if s.pads_with_mode() {
        // As PyTorch does for these modes: pad a copy (`F.pad`), then convolve it unpadded.
        let padded = s.over_padded_input()?;
        let x = padded_copy(&s, &padded, input.data())?;
        let y = conv2d_linear(&x, weight, bias, &padded.params())?;
        return Tensor::new(shape.output_shape(), y.into_data());
    }
    // Every path writes every output element. Debug builds (and so the tests) start from NaN so
    // an element a path skipped fails loudly; release builds take the kernel's free zero pages.
    let fill = if cfg!(debug_assertions) {
        f32::NAN
    } else {
        0.0
    };
    let mut out = vec![fill; s.output_len()];
    if !out.is_empty() {
        let problem = Problem {
            s,
            x: input.data(),
            w: weight.data(),
            bias: bias.map(Tensor::data),
        };
        if s.in_channels_per_group() == 1 && s.out_channels_per_group() <= DIRECT_MAX_OUT_PER_GROUP
        {
            conv2d_depthwise(&problem, &mut out);
        } else {
            conv2d_gemm(&problem, &mut out);
        }
    }
    Tensor::new(shape.output_shape(), out)
}

/// The input `x` of `s` `[N, C, H, W]` with its padding written out as `s.padding_mode` fills
/// it: the input of `padded` ([`Conv2dShape::over_padded_input`]).
fn padded_copy(s: &Conv2dShape, padded: &Conv2dShape, x: &[f32]) -> Result<Tensor> {
    let (ph, pw, shape) = (padded.in_h, padded.in_w, padded.input_shape());
    let len = padded.input_len();
    let mut out = crate::memory::try_vec(len, 0.0f32, || format!("the padded input {shape:?}"))?;
    let source = |i: usize, pad: usize, n: usize| s.padding_mode.source(i as i64 - pad as i64, n);
    let cols: Vec<Option<usize>> = (0..pw).map(|x| source(x, s.pad_left, s.in_w)).collect();
    for (row, out) in out.chunks_mut(pw.max(1)).enumerate() {
        let (plane, y) = (row / ph, row % ph);
        let Some(h) = source(y, s.pad_top, s.in_h) else {
            continue;
        };
        let src = &x[(plane * s.in_h + h) * s.in_w..][..s.in_w];
        for (v, col) in out.iter_mut().zip(&cols) {
            if let Some(w) = col {
                *v = src[*w];
            }
        }
    }
    Tensor::new(shape.to_vec(), out)
}

/// One validated convolution and its data, shared read-only by every task.
struct Problem<'a> {
    s: Conv2dShape,
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
}

/// For kernel column `j`, the output columns `q` whose input column `q*sw + j*dw - left` lies in
/// `[0, W)`: `lo..hi` (empty when `lo >= hi`).
fn valid_output_cols(s: &Conv2dShape, j: usize) -> (usize, usize) {
    valid_range(s.out_w, s.in_w, s.stride_w, j * s.dilation_w, s.pad_left)
}

/// Output rows `p` whose input row `p*sh + i*dh - top` lies in `[0, H)`, for kernel row `i`.
fn valid_output_rows(s: &Conv2dShape, i: usize) -> (usize, usize) {
    valid_range(s.out_h, s.in_h, s.stride_h, i * s.dilation_h, s.pad_top)
}

/// The `t` in `0..out_len` with `0 <= t*stride + tap - pad < in_len`, as `lo..hi`.
fn valid_range(
    out_len: usize,
    in_len: usize,
    stride: usize,
    tap: usize,
    pad: usize,
) -> (usize, usize) {
    let lo = if tap >= pad {
        0
    } else {
        (pad - tap).div_ceil(stride)
    };
    // t*stride + tap - pad <= in_len - 1  <=>  t <= (in_len - 1 + pad - tap) / stride
    let hi = match (in_len - 1 + pad).checked_sub(tap) {
        Some(room) => (room / stride + 1).min(out_len),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// How the im2col/GEMM work is cut into tasks.
#[derive(Debug, Clone, Copy)]
struct Split {
    /// Output pixels per tile (the last tile of an image may be shorter).
    tile: usize,
    /// Tiles per (image, group).
    tiles: usize,
    /// Output channels per block (the last block of a group may be smaller).
    o_block: usize,
    /// Blocks per group.
    o_blocks: usize,
}

/// Cuts the work into tasks: pixel tiles small enough for the cache (im2col) and numerous enough
/// that every thread gets several, so work stealing evens out a core that is busy elsewhere.
fn plan_split(s: &Conv2dShape, pointwise: bool, threads: usize) -> Split {
    let pq = s.out_h * s.out_w;
    let og = s.out_channels_per_group();
    let units = s.batch * s.groups;
    let max_tile = if pointwise {
        MAX_TILE
    } else {
        IM2COL_TILE_BYTES / (4 * s.reduction_len())
    };
    // Tiles are whole SIMD panels of the GEMM (except the last), which spares it a repacking.
    let round = |t: usize| t.div_ceil(TILE_ALIGN) * TILE_ALIGN;
    let largest = (max_tile.max(MIN_TILE) / TILE_ALIGN * TILE_ALIGN).min(round(pq));
    let mut tiles = pq.div_ceil(largest);
    let most_tiles = pq.div_ceil(MIN_TILE).max(tiles);
    if units * tiles < TASKS_PER_THREAD * threads {
        tiles = (TASKS_PER_THREAD * threads).div_ceil(units).min(most_tiles);
    }
    // With few tasks, make their count a multiple of the thread count so no core idles at the end.
    let mut tile = round(pq.div_ceil(tiles));
    if units * tiles < 4 * TASKS_PER_THREAD * threads {
        for wanted in tiles..=most_tiles.min(2 * tiles) {
            let t = round(pq.div_ceil(wanted));
            if (units * pq.div_ceil(t)).is_multiple_of(threads) {
                tile = t;
                break;
            }
        }
    }
    let tiles = pq.div_ceil(tile);
    // Too few pixels to keep every core busy: split the output channels as well.
    let mut o_blocks = 1;
    let most_o_blocks = og.div_ceil(MIN_O_BLOCK);
    while units * tiles * o_blocks < threads && o_blocks < most_o_blocks {
        o_blocks += 1;
    }
    let o_block = og.div_ceil(o_blocks);
    Split {
        tile,
        tiles,
        o_block,
        o_blocks: og.div_ceil(o_block),
    }
}

/// A raw output pointer that tasks may share: each task writes a disjoint block of the output.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

// SAFETY: tasks write pairwise disjoint (image, channel block, pixel tile) regions of one buffer
// that outlives the parallel loop, and nobody reads the buffer during it.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so closures capture the `Send` wrapper rather than its raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Per-thread im2col tile, kept between calls so its pages are faulted in once.
    static IM2COL_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer resized to `len` (contents unspecified).
fn with_scratch(len: usize, f: impl FnOnce(&mut [f32])) {
    IM2COL_SCRATCH.with(|cell| {
        // Taking the buffer out (rather than borrowing it) keeps a re-entrant call panic-free:
        // it would merely allocate its own.
        let mut buf = std::mem::take(&mut *cell.borrow_mut());
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len]);
        // Keep an ordinary tile for the next call; let an outsized one (huge K) go.
        if buf.len() <= SCRATCH_KEEP_FLOATS {
            *cell.borrow_mut() = buf;
        }
    });
}

/// The input as im2col reads it: planes of `H` rows of `row_len` floats, input column `c` of a
/// row at `(c % phases) * phase_len + c / phases`.
///
/// Either the caller's tensor (`phases = 1`) or a copy whose rows are split by column phase
/// `c % sw` ([`split_column_phases`]), where a stride-`sw` run of input columns is contiguous.
struct Source<'a> {
    data: &'a [f32],
    row_len: usize,
    phases: usize,
    phase_len: usize,
}

impl Source<'_> {
    /// Offset of input column `c` within a row.
    fn col(&self, c: usize) -> usize {
        (c % self.phases) * self.phase_len + c / self.phases
    }
}

/// Whether splitting the input's columns by phase before im2col pays: it copies the input once,
/// while im2col then copies runs instead of gathering every `sw`-th element `kh*kw / (sh*sw)`
/// times per input element.
fn worth_splitting_phases(s: &Conv2dShape) -> bool {
    // Saturating: a stride may be as large as the padded input (the kernel area cannot overflow).
    let strides = s.stride_h.saturating_mul(s.stride_w).saturating_mul(2);
    s.stride_w > 1 && s.kernel_h * s.kernel_w >= strides
}

/// Copies every input row into `[sw][ceil(W/sw)]` layout: phase `r` holds columns `r, r+sw, ...`.
fn split_column_phases(s: &Conv2dShape, x: &[f32]) -> Vec<f32> {
    let (sw, w) = (s.stride_w, s.in_w);
    let phase_len = w.div_ceil(sw);
    let mut phased = vec![0.0f32; x.len() / w * sw * phase_len];
    phased
        .par_chunks_mut(sw * phase_len)
        .zip(x.par_chunks(w))
        .with_min_len(64)
        .for_each(|(dst, src)| {
            for (r, phase) in dst.chunks_exact_mut(phase_len).enumerate() {
                // A phase past the row's end (W < sw) has no columns and stays zero.
                for (d, &v) in phase.iter_mut().zip(src.iter().skip(r).step_by(sw)) {
                    *d = v;
                }
            }
        });
    phased
}

/// The im2col + GEMM path (and the in-place pointwise GEMM).
fn conv2d_gemm(pb: &Problem, out: &mut [f32]) {
    let s = &pb.s;
    let pointwise = s.kernel_h == 1
        && s.kernel_w == 1
        && s.stride_h == 1
        && s.stride_w == 1
        && s.pad_top == 0
        && s.pad_bottom == 0
        && s.pad_left == 0
        && s.pad_right == 0;
    let phased;
    let source = if worth_splitting_phases(s) {
        phased = split_column_phases(s, pb.x);
        let phase_len = s.in_w.div_ceil(s.stride_w);
        Source {
            data: &phased,
            row_len: s.stride_w * phase_len,
            phases: s.stride_w,
            phase_len,
        }
    } else {
        Source {
            data: pb.x,
            row_len: s.in_w,
            phases: 1,
            phase_len: s.in_w,
        }
    };
    let split = plan_split(s, pointwise, rayon::current_num_threads());
    let units = s.batch * s.groups;
    let tasks = units * split.tiles * split.o_blocks;
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..tasks).into_par_iter().for_each(|task| {
        let o_blk = task % split.o_blocks;
        let tile = (task / split.o_blocks) % split.tiles;
        let unit = task / (split.o_blocks * split.tiles);
        gemm_task(pb, &source, &split, pointwise, unit, tile, o_blk, out_ptr);
    });
}

/// One task: output channels block `o_blk` of group `unit % groups`, image `unit / groups`, output
/// pixels of tile `tile`.
#[allow(clippy::too_many_arguments)]
fn gemm_task(
    pb: &Problem,
    source: &Source,
    split: &Split,
    pointwise: bool,
    unit: usize,
    tile: usize,
    o_blk: usize,
    out: OutPtr,
) {
    let s = &pb.s;
    let (n, g) = (unit / s.groups, unit % s.groups);
    let plane_len = s.in_h * source.row_len;
    let pq = s.out_h * s.out_w;
    let (cg, og, k) = (
        s.in_channels_per_group(),
        s.out_channels_per_group(),
        s.reduction_len(),
    );
    let t0 = tile * split.tile;
    let len = split.tile.min(pq - t0);
    let o0 = o_blk * split.o_block;
    let rows = split.o_block.min(og - o0);
    let x_group = &source.data[(n * s.in_channels + g * cg) * plane_len..][..cg * plane_len];
    let w_block = &pb.w[(g * og + o0) * k..][..rows * k];
    let first_o = g * og + o0;
    let dst_offset = (n * s.out_channels + first_o) * pq + t0;
    // Output block [rows x len] with row stride P*Q, weights [rows x K], columns [K x len].
    let product = |rhs: &[f32], rhs_rs: usize| {
        // SAFETY: `dst_offset + (rows-1)*pq + len <= output_len`, this task alone writes that
        // block; `w_block` is rows x K with row stride K; `rhs` holds K rows of `len` floats with
        // row stride `rhs_rs` (checked by the slicing that produced it).
        unsafe {
            let dst = out.get().add(dst_offset);
            gemm(
                rows,
                len,
                k,
                dst,
                1,
                pq as isize,
                false,
                w_block.as_ptr(),
                1,
                k as isize,
                rhs.as_ptr(),
                1,
                rhs_rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
            if let Some(bias) = pb.bias {
                for (r, &b) in bias[first_o..first_o + rows].iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(dst.add(r * pq), len);
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
        }
    };
    if pointwise {
        // The input plane is the [C/g x H*W] column matrix already: read the tile in place.
        let rhs = &x_group[t0..(cg - 1) * plane_len + t0 + len];
        product(rhs, plane_len);
    } else {
        with_scratch(k * len, |col| {
            im2col_tile(s, source, x_group, t0, len, col);
            product(col, len);
        });
    }
}

/// Fills `col` (`K x len`, row `(ci, i, j)`) with the input values under kernel tap `(i, j)` of
/// channel `ci` for output pixels `t0..t0 + len` (row-major over `(p, q)`), zero where padded.
fn im2col_tile(
    s: &Conv2dShape,
    source: &Source,
    x_group: &[f32],
    t0: usize,
    len: usize,
    col: &mut [f32],
) {
    let (row_len, q_len) = (source.row_len, s.out_w);
    let (kh, sw) = (s.kernel_h, s.stride_w);
    // A run of output columns reads contiguous input unless the stride is left to gather.
    let contiguous = source.phases == sw;
    let cols: Vec<(usize, usize)> = (0..s.kernel_w).map(|j| valid_output_cols(s, j)).collect();
    let mut rows_of_tile = col.chunks_exact_mut(len);
    for plane in x_group.chunks_exact(s.in_h * row_len) {
        for i in 0..kh {
            let (p_lo, p_hi) = valid_output_rows(s, i);
            for (j, &(q_lo, q_hi)) in cols.iter().enumerate() {
                let Some(dst) = rows_of_tile.next() else {
                    return;
                };
                // Walk the tile one output row at a time.
                let mut t = t0;
                let mut d = 0;
                while d < len {
                    let (p, q0) = (t / q_len, t % q_len);
                    let run = (q_len - q0).min(len - d);
                    let seg = &mut dst[d..d + run];
                    // Valid columns of this run, relative to q0.
                    let a = q_lo.clamp(q0, q0 + run) - q0;
                    let b = q_hi.clamp(q0, q0 + run) - q0;
                    if p < p_lo || p >= p_hi || a >= b {
                        seg.fill(0.0);
                    } else {
                        let in_row = p * s.stride_h + i * s.dilation_h - s.pad_top;
                        let src = &plane[in_row * row_len..][..row_len];
                        // Guarded: most runs have no padding, and a zero-length fill still
                        // costs a call to memset.
                        if a > 0 {
                            seg[..a].fill(0.0);
                        }
                        if b < run {
                            seg[b..].fill(0.0);
                        }
                        // Input column of output column q0 + a (>= 0 by the choice of q_lo).
                        let c0 = (q0 + a) * sw + j * s.dilation_w - s.pad_left;
                        let mid = &mut seg[a..b];
                        if contiguous {
                            let start = source.col(c0);
                            mid.copy_from_slice(&src[start..start + mid.len()]);
                        } else {
                            for (v, &xv) in mid.iter_mut().zip(src[c0..].iter().step_by(sw)) {
                                *v = xv;
                            }
                        }
                    }
                    t += run;
                    d += run;
                }
            }
        }
    }
}

/// Direct loop for groups with one input channel and at most [`DIRECT_MAX_OUT_PER_GROUP`] outputs
/// (depthwise convolution).
fn conv2d_depthwise(pb: &Problem, out: &mut [f32]) {
    let s = &pb.s;
    let (hw, og) = (s.in_h * s.in_w, s.out_channels_per_group());
    let taps_len = s.kernel_h * s.kernel_w;
    let cols: Vec<(usize, usize)> = (0..s.kernel_w).map(|j| valid_output_cols(s, j)).collect();
    let rows_per_task = (DIRECT_MIN_TASK_FMAS / (s.out_w * taps_len)).max(1);
    let kernel = RowKernel::detect();
    out.par_chunks_mut(s.out_w)
        .with_min_len(rows_per_task)
        .enumerate()
        .for_each(|(r, y)| {
            // Output row r is (n, o, p).
            let p = r % s.out_h;
            let o = (r / s.out_h) % s.out_channels;
            let n = r / (s.out_h * s.out_channels);
            let c = o / og;
            let row = DepthwiseRow {
                s,
                cols: &cols,
                plane: &pb.x[(n * s.in_channels + c) * hw..][..hw],
                taps: &pb.w[o * taps_len..][..taps_len],
                bias: pb.bias.map_or(0.0, |b| b[o]),
                p,
            };
            kernel.run(&row, y);
        });
}

/// One output row `p` of one depthwise output channel: its input plane, taps and bias.
struct DepthwiseRow<'a> {
    s: &'a Conv2dShape,
    /// Valid output columns per kernel column, from [`valid_output_cols`].
    cols: &'a [(usize, usize)],
    plane: &'a [f32],
    taps: &'a [f32],
    bias: f32,
    p: usize,
}

/// The depthwise row loop, compiled for the widest vector unit the CPU has (the crate itself is
/// built for baseline x86-64, where it would be 4 lanes wide).
#[derive(Clone, Copy)]
enum RowKernel {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl RowKernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return RowKernel::Avx2Fma;
        }
        RowKernel::Baseline
    }

    fn run(self, row: &DepthwiseRow, y: &mut [f32]) {
        match self {
            RowKernel::Baseline => depthwise_row::<false>(row, y),
            // SAFETY: `detect` saw AVX2 and FMA on this CPU.
            #[cfg(target_arch = "x86_64")]
            RowKernel::Avx2Fma => unsafe { depthwise_row_avx2_fma(row, y) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn depthwise_row_avx2_fma(row: &DepthwiseRow, y: &mut [f32]) {
    depthwise_row::<true>(row, y);
}

/// `y[q] = sum_{i, j} taps[i, j] * plane[p*sh + i*dh - top, q*sw + j*dw - left] + bias`; `FUSED`
/// uses fused multiply-adds (only where the CPU has them: elsewhere `mul_add` is a libm call).
#[inline(always)]
fn depthwise_row<const FUSED: bool>(row: &DepthwiseRow, y: &mut [f32]) {
    let s = row.s;
    let (p, kw, sw) = (row.p, s.kernel_w, s.stride_w);
    y.fill(0.0);
    for i in 0..s.kernel_h {
        let (p_lo, p_hi) = valid_output_rows(s, i);
        if p < p_lo || p >= p_hi {
            continue;
        }
        let in_row = p * s.stride_h + i * s.dilation_h - s.pad_top;
        let src = &row.plane[in_row * s.in_w..][..s.in_w];
        for (j, &(q_lo, q_hi)) in row.cols.iter().enumerate() {
            if q_lo >= q_hi {
                continue;
            }
            let wv = row.taps[i * kw + j];
            let c0 = q_lo * sw + j * s.dilation_w - s.pad_left;
            let dst = &mut y[q_lo..q_hi];
            let madd = |v: &mut f32, xv: f32| {
                *v = if FUSED {
                    xv.mul_add(wv, *v)
                } else {
                    *v + wv * xv
                };
            };
            if sw == 1 {
                dst.iter_mut()
                    .zip(&src[c0..])
                    .for_each(|(v, &xv)| madd(v, xv));
            } else {
                let strided = src[c0..].iter().step_by(sw);
                dst.iter_mut().zip(strided).for_each(|(v, &xv)| madd(v, xv));
            }
        }
    }
    // The bias last, as the GEMM path adds it, so it is rounded into the sum once.
    y.iter_mut().for_each(|v| *v += row.bias);
}

/// `y = act(conv3d(x, w) + b)` in f32 on all cores (PyTorch's `nn.Conv3d`): `[N, O, OD, P, Q]`
/// (`[O, OD, P, Q]` for an unbatched input `[C, D, H, W]`).
///
/// The depth is folded into the batch and the channels, an im2col along the depth axis: plane
/// `(n*OD + od, g*KD*Cg + a*Cg + ci)` of the folded input is input plane `(n, g*Cg + ci)` at depth
/// `od*sd + a*dd - front` (in the padding, what the padding mode puts there), the weight `[O, Cg, KD, kh, kw]` becomes
/// `[O, KD*Cg, kh, kw]`, and [`conv2d`]'s GEMM computes `[N*OD, O, P, Q]`, whose depth is then put
/// back. Sums are in f32, in the GEMM's order.
///
/// # Errors
/// Every shape or parameter error of [`ConvNdShape::new`](crate::ConvNdShape::new), as the
/// reference returns them;
/// [`Error::SizeOverflow`](crate::Error::SizeOverflow) or
/// [`Error::HostMemory`](crate::Error::HostMemory) when the folded input does not fit.
pub fn conv3d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &crate::spec::Conv3dParams,
) -> Result<Tensor> {
    let y = if params.flip_kernel {
        // True convolution is the cross-correlation with the kernel turned.
        let unflipped = params.with_flip_kernel(false);
        let turned = weight.kernel_turned()?;
        volume::conv3d_linear(input, &turned, bias, &unflipped, conv2d_linear)?
    } else {
        volume::conv3d_linear(input, weight, bias, params, conv2d_linear)?
    };
    activate(params.activation, y)
}
