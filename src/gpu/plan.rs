//! Which kernel runs a convolution, and how it is dispatched within the device's limits.
//!
//! Everything is computed on the host with checked arithmetic before any GPU work is recorded,
//! so a problem the shaders cannot index, or the device cannot hold, is refused with a typed error.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::codegen::{RegTileSpec, MAX_UNROLLED_CHANNELS};
use crate::gpu::kernels::{packed_weight_len, ConvUniforms, Kernel, POINTWISE_TILE, TILED_BLOCK};
use crate::spec::{Conv2dParams, Conv2dShape, Padding};

/// Which convolution algorithm to run; `Auto` lets [`plan`] choose by shape and adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// The register-tiled implicit GEMM on CPU adapters, the shared-memory one on GPUs, where they
    /// apply; else the direct kernel.
    #[default]
    Auto,
    /// One invocation per output: every shape.
    Direct,
    /// The 1x1 matrix-product kernel (1x1, stride 1, no padding, groups 1).
    Pointwise,
    /// Implicit GEMM with a generated register tile and no barriers.
    RegisterTiled,
    /// Implicit GEMM tiled through workgroup memory.
    SharedTiled,
}

/// A kernel and its dispatch for one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The kernel chosen.
    pub kernel: Kernel,
    /// Invocations per workgroup.
    pub workgroup_size: u32,
    /// Workgroups along x, y and z.
    pub workgroups: (u32, u32, u32),
    /// The uniform block for the shader.
    pub uniforms: ConvUniforms,
}

/// The device facts a plan depends on (a copy of the relevant `wgpu::Limits` fields and the
/// adapter type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// `max_storage_buffer_binding_size`.
    pub max_binding: u64,
    /// `max_buffer_size`.
    pub max_buffer: u64,
    /// `max_compute_workgroups_per_dimension`.
    pub max_workgroups_per_dim: u32,
    /// `max_compute_invocations_per_workgroup`.
    pub max_invocations: u32,
    /// `max_compute_workgroup_storage_size` in bytes.
    pub max_workgroup_storage: u32,
    /// `max_compute_workgroup_size_x`.
    pub max_workgroup_size_x: u32,
    /// Whether the adapter runs shaders on the CPU (lavapipe, llvmpipe, WARP, ...).
    pub cpu_adapter: bool,
    /// The subgroup size, when the device has subgroup operations and a fixed subgroup size.
    pub subgroup_size: Option<u32>,
}

impl PlanLimits {
    /// From the device's limits and the adapter's type.
    pub fn new(l: &wgpu::Limits, device_type: wgpu::DeviceType) -> Self {
        PlanLimits {
            max_binding: l.max_storage_buffer_binding_size,
            max_buffer: l.max_buffer_size,
            max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
            max_invocations: l.max_compute_invocations_per_workgroup,
            max_workgroup_storage: l.max_compute_workgroup_storage_size,
            max_workgroup_size_x: l.max_compute_workgroup_size_x,
            cpu_adapter: device_type == wgpu::DeviceType::Cpu,
            subgroup_size: None,
        }
    }

    /// Generous limits of a CPU adapter, for planning on the host alone (tests, tools).
    pub fn unlimited_cpu() -> Self {
        PlanLimits {
            max_binding: u64::MAX,
            max_buffer: u64::MAX,
            max_workgroups_per_dim: 65535,
            max_invocations: 256,
            max_workgroup_storage: 16384,
            max_workgroup_size_x: 256,
            cpu_adapter: true,
            subgroup_size: None,
        }
    }
}

fn is_pointwise(shape: &Conv2dShape) -> bool {
    shape.kernel_h == 1
        && shape.kernel_w == 1
        && shape.stride_h == 1
        && shape.stride_w == 1
        && shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right == 0
        && shape.groups == 1
}

/// The kernel [`plan`] picks for `shape` with [`Algorithm::Auto`] on a CPU adapter without
/// subgroups (an engine's own plan, [`Engine::plan`](crate::Engine::plan), knows its device).
pub fn choose_kernel(shape: &Conv2dShape) -> Kernel {
    plan(shape, &PlanLimits::unlimited_cpu(), Algorithm::Auto).map_or(Kernel::Direct, |p| p.kernel)
}

/// Checks that a tensor of `elements` f32 values fits in one storage binding on this device.
///
/// # Errors
/// [`Error::DeviceLimit`] when it does not.
pub fn check_buffer(what: &str, elements: usize, limits: &PlanLimits) -> Result<u64> {
    let bytes = (elements as u64)
        .checked_mul(4)
        .ok_or_else(|| Error::SizeOverflow {
            what: format!("{what} byte size"),
        })?;
    for (limit_name, limit) in [
        ("max_buffer_size", limits.max_buffer),
        ("max_storage_buffer_binding_size", limits.max_binding),
    ] {
        if bytes > limit {
            return Err(Error::DeviceLimit {
                what: what.to_string(),
                bytes,
                limit_name,
                limit,
            });
        }
    }
    Ok(bytes)
}

/// Checks that a tensor of `elements` f32 values fits in one buffer on this device (it may still
/// be larger than one binding: convolutions over it are split).
///
/// # Errors
/// [`Error::DeviceLimit`] naming `max_buffer_size` when it does not.
pub fn check_allocation(what: &str, elements: usize, limits: &PlanLimits) -> Result<u64> {
    check_buffer(
        what,
        elements,
        &PlanLimits {
            max_binding: u64::MAX,
            ..*limits
        },
    )
}

fn fits_u32(what: &str, value: usize, why: &'static str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: value as u64,
        limit: u64::from(u32::MAX),
        why,
    })
}

const INDEX_WHY: &str = "the shaders index with u32";

/// Plans `shape` with `algorithm` on a device with `limits`: the one place that chooses kernels
/// and tile sizes.
///
/// # Errors
/// [`Error::TooLarge`] when an index overflows the shaders' u32/i32 arithmetic or the dispatch
/// exceeds the workgroup grid; [`Error::DeviceLimit`] when a buffer exceeds the device's limits;
/// [`Error::UnsupportedAlgorithm`] when a forced algorithm does not cover the shape.
pub fn plan(shape: &Conv2dShape, limits: &PlanLimits, algorithm: Algorithm) -> Result<Plan> {
    check_buffer("input", shape.input_len(), limits)?;
    check_buffer("weight", shape.weight_len(), limits)?;
    check_buffer("output", shape.output_len(), limits)?;
    let packed_len = packed_weight_len(
        shape.out_channels,
        shape.in_channels_per_group(),
        shape.kernel_h,
        shape.kernel_w,
        shape.groups,
    );
    fits_u32("input element count", shape.input_len(), INDEX_WHY)?;
    fits_u32("weight element count", shape.weight_len(), INDEX_WHY)?;
    fits_u32("output element count", shape.output_len(), INDEX_WHY)?;
    // Input coordinates are formed as i32 in the shaders: p*stride + i*dilation - pad.
    let reach_h = (shape.out_h - 1) * shape.stride_h + (shape.kernel_h - 1) * shape.dilation_h;
    let reach_w = (shape.out_w - 1) * shape.stride_w + (shape.kernel_w - 1) * shape.dilation_w;
    let i32_why = "input coordinates are i32 in the shaders";
    let i32_max = i32::MAX as usize;
    for (what, value) in [
        (
            "padded input height",
            shape.in_h + shape.pad_top + shape.pad_bottom,
        ),
        (
            "padded input width",
            shape.in_w + shape.pad_left + shape.pad_right,
        ),
        ("receptive field reach in height", reach_h),
        ("receptive field reach in width", reach_w),
    ] {
        if value > i32_max {
            return Err(Error::TooLarge {
                what: what.into(),
                value: value as u64,
                limit: i32_max as u64,
                why: i32_why,
            });
        }
    }
    let uniforms = base_uniforms(shape)?;
    let og = shape.out_channels_per_group();
    let pixels = shape.out_h * shape.out_w;
    let images = shape.batch * shape.groups;
    let max_dim = limits.max_workgroups_per_dim as usize;
    // The packed-weight kernels need the packing pass to fit too (see `pack_plan`).
    let packed_fits = check_buffer("packed weight", packed_len, limits).is_ok()
        && u32::try_from(packed_len).is_ok()
        && grid(packed_len, 64, limits.max_workgroups_per_dim).is_ok();

    // Candidates in order of preference; the first that applies wins.
    // Why a GEMM kernel's grid does not fit, naming the values, or `None` when it does.
    let grid_problem = |grid: (usize, usize, usize), pixel_slots: usize| -> Option<String> {
        if grid.0 > max_dim || grid.1 > max_dim || grid.2 > max_dim {
            Some(format!(
                "its grid of {grid:?} workgroups exceeds max_compute_workgroups_per_dimension {max_dim}"
            ))
        } else if (grid.0 * pixel_slots) as u64 > u64::from(u32::MAX) {
            Some(format!(
                "its {} pixel slots overflow u32",
                grid.0 * pixel_slots
            ))
        } else if !packed_fits {
            Some(format!(
                "its {packed_len} packed weights exceed one binding or dispatch on this device"
            ))
        } else {
            None
        }
    };
    let regtile = || -> std::result::Result<Plan, String> {
        let (tm, tn, workgroup_size) = regtile_tile(og, pixels, limits.subgroup_size);
        let slots = workgroup_size as usize * tn as usize;
        let grid = (pixels.div_ceil(slots), og.div_ceil(tm as usize), images);
        // Pixel indices run up to grid.0 * slots in the shader's u32 arithmetic.
        if let Some(problem) = grid_problem(grid, slots) {
            return Err(problem);
        }
        if workgroup_size > limits.max_invocations {
            return Err(format!(
                "its workgroups of {workgroup_size} exceed max_compute_invocations_per_workgroup {}",
                limits.max_invocations
            ));
        }
        let cg = shape.in_channels_per_group();
        let spec = RegTileSpec {
            tm,
            tn,
            padded: shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right > 0,
            unrolled_channels: (cg as u32 <= MAX_UNROLLED_CHANNELS).then_some(cg as u32),
            subgroup: limits.subgroup_size,
        };
        Ok(Plan {
            kernel: Kernel::RegisterTiled(spec),
            workgroup_size,
            workgroups: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
            uniforms,
        })
    };
    let shared = || -> std::result::Result<Plan, String> {
        let grid = (
            pixels.div_ceil(TILED_BLOCK),
            og.div_ceil(TILED_BLOCK),
            images,
        );
        // Pixel indices run up to grid.0 * 64 and the k loop up to k_len + 16, in u32.
        if let Some(problem) = grid_problem(grid, TILED_BLOCK) {
            return Err(problem);
        }
        let k_len = (shape.kernel_h * shape.kernel_w * shape.in_channels_per_group()) as u64;
        if k_len + 16 > u64::from(u32::MAX) {
            return Err(format!("its reduction of {k_len} overflows u32"));
        }
        // 4 KiB of vec4 weights + 4 KiB of inputs, and 256 invocations along x.
        if limits.max_invocations < 256
            || limits.max_workgroup_size_x < 256
            || limits.max_workgroup_storage < 8192
        {
            return Err(format!(
                "it needs workgroups of 256 invocations along x and 8192 bytes of workgroup \
                 memory; the device allows {} invocations ({} along x) and {} bytes",
                limits.max_invocations, limits.max_workgroup_size_x, limits.max_workgroup_storage
            ));
        }
        Ok(Plan {
            kernel: Kernel::SharedTiled,
            workgroup_size: 256,
            workgroups: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
            uniforms,
        })
    };
    let flat = |kernel: Kernel, work_items: usize| -> Result<Plan> {
        let wg = 64;
        let (workgroups, row_stride) = grid(work_items, wg, limits.max_workgroups_per_dim)?;
        let mut uniforms = uniforms;
        uniforms.work_items = fits_u32("work items", work_items, INDEX_WHY)?;
        uniforms.row_stride = row_stride;
        Ok(Plan {
            kernel,
            workgroup_size: wg,
            workgroups: (workgroups.0, workgroups.1, 1),
            uniforms,
        })
    };
    let direct = || flat(Kernel::Direct, shape.output_len());
    let pointwise = || {
        // Tile slots reach pixels + 3 in the shader's u32 arithmetic.
        if pixels as u64 + 4 > u64::from(u32::MAX) {
            return direct();
        }
        let tiles = shape.batch
            * pixels.div_ceil(POINTWISE_TILE)
            * shape.out_channels.div_ceil(POINTWISE_TILE);
        flat(Kernel::Pointwise, tiles)
    };
    let unsupported = |name: &'static str, reason: String| Error::UnsupportedAlgorithm {
        algorithm: name,
        reason,
    };
    match algorithm {
        Algorithm::Direct => direct(),
        Algorithm::Pointwise if is_pointwise(shape) => pointwise(),
        Algorithm::Pointwise => Err(Error::UnsupportedAlgorithm {
            algorithm: "pointwise",
            reason: format!(
                "it needs a 1x1 kernel, stride 1, no padding and groups 1; got kernel {}x{}, \
                 stride ({}, {}), padding [{}, {}, {}, {}], groups {}",
                shape.kernel_h,
                shape.kernel_w,
                shape.stride_h,
                shape.stride_w,
                shape.pad_top,
                shape.pad_bottom,
                shape.pad_left,
                shape.pad_right,
                shape.groups
            ),
        }),
        Algorithm::RegisterTiled => regtile().map_err(|why| unsupported("register-tiled", why)),
        Algorithm::SharedTiled => shared().map_err(|why| unsupported("shared-tiled", why)),
        Algorithm::Auto => {
            // Depthwise-like groups (fewer than 4 output channels each) leave the GEMM tiles
            // mostly empty; the direct kernel does better there.
            let gemm_worth_it = og >= 4;
            let fast = if !gemm_worth_it {
                None
            } else if limits.cpu_adapter {
                regtile().ok()
            } else if og >= 16 {
                shared().ok()
            } else {
                None
            };
            match fast {
                Some(p) => Ok(p),
                None if is_pointwise(shape) => pointwise(),
                None => direct(),
            }
        }
    }
}

/// Register tile `(TM, TN)` and workgroup size for `og` output channels per group and `pixels`
/// output pixels.
///
/// Why big tiles: on CPU adapters (Mesa's lavapipe and llvmpipe) every storage-buffer load is a
/// loop over the SIMD lanes with a bounds check per lane, whether or not the address is uniform,
/// while the multiply-adds are nearly free, even when accumulators spill. A k step loads `TN`
/// inputs and `TM/4` vec4 weights (about 2.8 scalar loads each); with subgroups the weights are
/// loaded once per subgroup, `ceil(TM/4 / size)` vec4 loads, and broadcast. The tile maximises
/// multiply-adds per load times the fraction of pixel and channel slots holding real outputs,
/// within 256 accumulators per invocation.
fn regtile_tile(og: usize, pixels: usize, subgroup: Option<u32>) -> (u32, u32, u32) {
    let mut best = ((8u32, 4u32, 64u32), 0.0f64);
    for tn in [4u32, 8, 16] {
        for tm in [8u32, 16, 32, 64] {
            if tm * tn > 256 {
                continue;
            }
            let wg = regtile_workgroup_size(pixels, tn);
            let slots = (wg * tn) as usize;
            let pixel_use = pixels as f64 / (pixels.div_ceil(slots) * slots) as f64;
            let channel_use = og as f64 / (og.div_ceil(tm as usize) * tm as usize) as f64;
            let weight_loads = match subgroup {
                Some(size) => (tm / 4).div_ceil(size),
                None => tm / 4,
            };
            let intensity = f64::from(tm * tn) / (f64::from(tn) + 2.8 * f64::from(weight_loads));
            let score = pixel_use * channel_use * intensity;
            if score > best.1 * 1.02 {
                best = ((tm, tn, wg), score);
            }
        }
    }
    best.0
}

/// Workgroup size for the register-tiled kernel: the size among 16, 32 and 64 whose blocks of
/// `tn * size` pixels waste the fewest slots on `pixels` (the larger unless a smaller one wastes
/// clearly less).
fn regtile_workgroup_size(pixels: usize, tn: u32) -> u32 {
    let mut best = (64u32, 0.0f64);
    for wg in [64u32, 32, 16] {
        let slots = wg as usize * tn as usize;
        let utilization = pixels as f64 / (pixels.div_ceil(slots) * slots) as f64;
        if utilization > best.1 + 0.05 {
            best = (wg, utilization);
        }
    }
    best.0
}

fn base_uniforms(shape: &Conv2dShape) -> Result<ConvUniforms> {
    let u = |what: &str, v: usize| fits_u32(what, v, INDEX_WHY);
    Ok(ConvUniforms {
        batch: u("batch", shape.batch)?,
        in_channels: u("in_channels", shape.in_channels)?,
        in_h: u("in_h", shape.in_h)?,
        in_w: u("in_w", shape.in_w)?,
        out_channels: u("out_channels", shape.out_channels)?,
        kernel_h: u("kernel_h", shape.kernel_h)?,
        kernel_w: u("kernel_w", shape.kernel_w)?,
        groups: u("groups", shape.groups)?,
        out_h: u("out_h", shape.out_h)?,
        out_w: u("out_w", shape.out_w)?,
        stride_h: u("stride_h", shape.stride_h)?,
        stride_w: u("stride_w", shape.stride_w)?,
        pad_top: u("pad_top", shape.pad_top)?,
        pad_left: u("pad_left", shape.pad_left)?,
        dilation_h: u("dilation_h", shape.dilation_h)?,
        dilation_w: u("dilation_w", shape.dilation_w)?,
        has_bias: u32::from(shape.has_bias),
        work_items: 0,
        row_stride: 0,
        chunk_len: 0,
        reduce_len: 0,
        scalar_bits: 0,
        _pad: 0,
    })
}

/// The flattened plan that packs OIHW weights of `shape` into the implicit-GEMM layout.
///
/// # Errors
/// [`Error::TooLarge`] or [`Error::DeviceLimit`] when the packed weights do not fit.
pub fn pack_plan(shape: &Conv2dShape, limits: &PlanLimits) -> Result<(Plan, usize)> {
    let len = packed_weight_len(
        shape.out_channels,
        shape.in_channels_per_group(),
        shape.kernel_h,
        shape.kernel_w,
        shape.groups,
    );
    check_buffer("packed weight", len, limits)?;
    let mut uniforms = base_uniforms(shape)?;
    uniforms.work_items = fits_u32("packed weight element count", len, INDEX_WHY)?;
    let (workgroups, row_stride) = grid(len, 64, limits.max_workgroups_per_dim)?;
    uniforms.row_stride = row_stride;
    Ok((
        Plan {
            kernel: Kernel::PackWeights,
            workgroup_size: 64,
            workgroups: (workgroups.0, workgroups.1, 1),
            uniforms,
        },
        len,
    ))
}

/// A flat dispatch of `kernel` over `work_items` invocations (one per element), in workgroups of
/// 64 laid out by `grid`: for the element-wise and reduction kernels.
///
/// # Errors
/// [`Error::TooLarge`] when the items overflow u32 or the grid.
pub fn flat(
    kernel: Kernel,
    work_items: usize,
    mut uniforms: ConvUniforms,
    limits: &PlanLimits,
) -> Result<Plan> {
    let wg = 64;
    let (workgroups, row_stride) = grid(work_items, wg, limits.max_workgroups_per_dim)?;
    uniforms.work_items = fits_u32("work items", work_items, INDEX_WHY)?;
    uniforms.row_stride = row_stride;
    Ok(Plan {
        kernel,
        workgroup_size: wg,
        workgroups: (workgroups.0, workgroups.1, 1),
        uniforms,
    })
}

/// The uniform block of `shape` (every size as u32).
///
/// # Errors
/// [`Error::TooLarge`] when a size does not fit u32.
pub fn uniforms_of(shape: &Conv2dShape) -> Result<ConvUniforms> {
    base_uniforms(shape)
}

/// Lays `items` invocations out on a 2D grid of workgroups of `wg` invocations: as wide as the
/// device allows, then as many rows as needed. Returns the workgroup counts and the invocations per row.
fn grid(items: usize, wg: u32, max_per_dim: u32) -> Result<((u32, u32), u32)> {
    let groups = items.div_ceil(wg as usize);
    let x = groups.clamp(1, max_per_dim.max(1) as usize);
    let y = groups.div_ceil(x).max(1);
    if y > max_per_dim as usize {
        return Err(Error::TooLarge {
            what: "dispatch (workgroups needed)".into(),
            value: groups as u64,
            limit: u64::from(max_per_dim) * u64::from(max_per_dim),
            why: "max_compute_workgroups_per_dimension squared",
        });
    }
    let row_stride = x as u64 * u64::from(wg);
    // The shader's flat index gid.x + gid.y * row_stride must not wrap.
    if row_stride * y as u64 > u64::from(u32::MAX) + 1 {
        return Err(Error::TooLarge {
            what: "dispatch invocations".into(),
            value: row_stride * y as u64,
            limit: u64::from(u32::MAX) + 1,
            why: INDEX_WHY,
        });
    }
    Ok(((x as u32, y as u32), row_stride as u32))
}

/// How a convolution too large for one dispatch is cut: the size of each piece along the batch,
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
        params_of(&self.shape)
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

fn params_of(s: &Conv2dShape) -> Conv2dParams {
    Conv2dParams {
        stride: (s.stride_h, s.stride_w),
        padding: Padding::explicit(s.pad_top, s.pad_bottom, s.pad_left, s.pad_right),
        dilation: (s.dilation_h, s.dilation_w),
        groups: s.groups,
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
        ..params_of(shape)
    };
    let bias = [out_channels];
    Conv2dShape::new(
        &[images, groups * cg, in_h, shape.in_w],
        &[out_channels, cg, shape.kernel_h, shape.kernel_w],
        shape.has_bias.then_some(&bias[..]),
        &params,
    )
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
        let in_h = span.min(shape.in_h);
        let piece = piece_shape(
            shape,
            split.batch,
            split.groups,
            channels,
            split.rows,
            in_h,
            0,
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
        } else if split.rows > 1 {
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

/// How `shape` runs on a device with `limits`: in one dispatch (`None`), or split (`Some`).
///
/// # Errors
/// The unsplit plan's error when it fails for another reason than size, or when not even the
/// smallest piece (one output row of one channel of one image) can be planned.
pub fn schedule(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    algorithm: Algorithm,
) -> Result<Option<Split>> {
    let unsplit = match plan(shape, limits, algorithm) {
        Ok(_) => return Ok(None),
        Err(e) => e,
    };
    // A forced algorithm may be unsupported only because of the grid; pieces may fit it.
    let size_problem = matches!(
        unsplit,
        Error::TooLarge { .. } | Error::DeviceLimit { .. } | Error::UnsupportedAlgorithm { .. }
    );
    if !size_problem {
        return Err(unsplit);
    }
    let Some(split) = choose_split(shape, limits, |piece| {
        plan(piece, limits, algorithm).is_ok()
    }) else {
        return Err(unsplit);
    };
    // The split was sized on its largest piece; pieces at the edges differ in padding, which a
    // forced algorithm may refuse. Check them all before anything runs.
    if pieces(shape, &split)?
        .iter()
        .all(|piece| plan(&piece.shape, limits, algorithm).is_ok())
    {
        Ok(Some(split))
    } else {
        Err(unsplit)
    }
}

/// The pieces of `shape` cut by `split`, groups outermost and rows innermost.
///
/// # Errors
/// Only if a piece's shape fails validation, which a split from [`choose_split`] rules out.
pub fn pieces(shape: &Conv2dShape, split: &Split) -> Result<Vec<Piece>> {
    let (cg, og) = (
        shape.in_channels_per_group(),
        shape.out_channels_per_group(),
    );
    let chunks = |len: usize, size: usize| {
        (0..len.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(len))
    };
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
                    let in_rows = input_rows(shape, &out_rows);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_wraps_rows_past_the_per_dimension_limit() {
        assert_eq!(grid(0, 64, 65535).unwrap(), ((1, 1), 64));
        assert_eq!(grid(64, 64, 65535).unwrap(), ((1, 1), 64));
        assert_eq!(grid(65, 64, 65535).unwrap(), ((2, 1), 128));
        assert_eq!(
            grid(65535 * 64 + 1, 64, 65535).unwrap(),
            ((65535, 2), 65535 * 64)
        );
        assert!(grid(65535usize * 65535 * 64 + 1, 64, 65535).is_err());
    }
}
