//! Kernel choice for one forward convolution, the weight packing, and the [`Execution`] of a
//! forward call: planned once, then recorded by the engine as it stands.

use crate::error::{Error, Result};
use crate::gpu::codegen::{RegTileSpec, MAX_UNROLLED_CHANNELS};
use crate::gpu::kernels::{packed_weight_len, Kernel, POINTWISE_TILE, TILED_BLOCK};
use crate::gpu::plan::dispatch::{
    base_uniforms, check_buffer, flat, grid, index_u32, Algorithm, Plan, PlanLimits,
};
use crate::gpu::plan::gpu_kernels;
use crate::gpu::plan::split::{self, Piece, Split};
use crate::spec::Conv2dShape;

fn is_pointwise(shape: &Conv2dShape) -> bool {
    shape.kernel_h == 1
        && shape.kernel_w == 1
        && shape.stride_h == 1
        && shape.stride_w == 1
        && shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right == 0
        && shape.groups == 1
}

/// The kernel [`plan`] picks for `shape` with [`Algorithm::Auto`] on a CPU adapter without
/// subgroups (an engine's own plan knows its device).
pub fn choose_kernel(shape: &Conv2dShape) -> Kernel {
    plan(shape, &PlanLimits::unlimited_cpu(), Algorithm::Auto).map_or(Kernel::Direct, |p| p.kernel)
}

/// Plans `shape` with `algorithm` on a device with `limits`: the one place that chooses kernels
/// and tile sizes.
///
/// # Errors
/// [`Error::TooLarge`] when an index overflows the shaders' u32/i32 arithmetic or the dispatch
/// exceeds the workgroup grid; [`Error::DeviceLimit`] when a buffer exceeds the device's limits;
/// [`Error::UnsupportedAlgorithm`] when a forced algorithm does not cover the shape.
pub fn plan(shape: &Conv2dShape, limits: &PlanLimits, algorithm: Algorithm) -> Result<Plan> {
    // A forced kernel that covers no size of this shape says so before any size check, so that
    // a shape both too large for one dispatch and not covered is refused as not covered (no
    // split can mend it).
    if algorithm == Algorithm::Depthwise {
        gpu_kernels::depthwise_window(shape).map_err(|reason| Error::UnsupportedAlgorithm {
            algorithm: "depthwise",
            reason,
        })?;
    }
    check_buffer("input", shape.input_len(), limits)?;
    check_buffer("weight", shape.weight_len(), limits)?;
    check_buffer("output", shape.output_len(), limits)?;
    let packed_len = packed_len(shape);
    index_u32("input element count", shape.input_len())?;
    index_u32("weight element count", shape.weight_len())?;
    index_u32("output element count", shape.output_len())?;
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
    let subgroup = limits.broadcast_subgroup();
    let profile = limits.profile;
    let padded = shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right > 0;
    let regtile = |tile: Option<(u32, u32)>| -> std::result::Result<Plan, String> {
        let (tm, tn, workgroup_size) = match tile {
            Some((tm, tn)) => {
                if tm * tn > profile.max_register_tile {
                    return Err(format!(
                        "its {tm}x{tn} tile exceeds the {} accumulators this adapter's profile \
                         ({}) compiles well",
                        profile.max_register_tile,
                        profile.family.name()
                    ));
                }
                if padded && tn > profile.max_masked_loads {
                    return Err(format!(
                        "its {tn} padded pixels per invocation exceed the {} masked loads per \
                         loop this adapter's profile ({}) compiles well",
                        profile.max_masked_loads,
                        profile.family.name()
                    ));
                }
                (tm, tn, regtile_workgroup_size(pixels, tn))
            }
            None => {
                // Padded pixels are masked loads.
                let max_tn = if padded { profile.max_masked_loads } else { 16 };
                regtile_tile(og, pixels, subgroup, profile.max_register_tile, max_tn)
            }
        };
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
        let cg = shape.in_channels_per_group() as u32;
        // Unrolled channels multiply the straight-line multiply-adds of the loop body.
        let unroll = cg <= MAX_UNROLLED_CHANNELS && tm * tn * cg <= profile.max_straight_line_macs;
        let spec = RegTileSpec {
            tm,
            tn,
            padded,
            mode: if padded {
                shape.padding_mode
            } else {
                crate::spec::PaddingMode::Zeros
            },
            unrolled_channels: unroll.then_some(cg),
            subgroup,
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
    let flat = |kernel, work_items| flat(kernel, work_items, uniforms, limits);
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
        Algorithm::Custom(_) if shape.pads_with_mode() => Err(unsupported(
            "custom",
            format!(
                "a custom kernel reads zeros in the padding; padding_mode '{}' needs one of \
                 wgconv's kernels",
                shape.padding_mode
            ),
        )),
        Algorithm::Custom(_) if !shape.activation.is_none() || shape.has_residual => {
            Err(unsupported(
                "custom",
                format!(
                    "a custom kernel writes conv + bias; the fused epilogue (activation {}, {}) \
                     needs one of wgconv's kernels",
                    shape.activation,
                    if shape.has_residual {
                        "a residual"
                    } else {
                        "no residual"
                    }
                ),
            ))
        }
        Algorithm::Custom(custom) => flat(Kernel::Custom(custom), shape.output_len()),
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
        Algorithm::RegisterTiled => regtile(None).map_err(|why| unsupported("register-tiled", why)),
        Algorithm::RegisterTile { tm, tn } => {
            let valid = tm % 4 == 0 && (4..=64).contains(&tm) && [4, 8, 16].contains(&tn);
            if !valid {
                return Err(unsupported(
                    "register-tiled",
                    format!("a {tm}x{tn} tile: TM must be a multiple of 4 up to 64, TN 4, 8 or 16"),
                ));
            }
            regtile(Some((tm, tn))).map_err(|why| unsupported("register-tiled", why))
        }
        Algorithm::SharedTiled => shared().map_err(|why| unsupported("shared-tiled", why)),
        Algorithm::LargeTiled => gpu_kernels::large_tiled(shape, limits, uniforms, &grid_problem)
            .map_err(|why| unsupported("large-tiled", why)),
        Algorithm::Depthwise => gpu_kernels::depthwise(shape, limits, uniforms)
            .map_err(|why| unsupported("depthwise", why)),
        Algorithm::Auto => {
            // Depthwise-like groups (fewer than 4 output channels each) leave the GEMM tiles
            // mostly empty; the direct kernel does better there.
            let gemm_worth_it = og >= 4;
            let fast = if !gemm_worth_it {
                None
            } else if profile.register_tiles_first {
                regtile(None).ok()
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
/// within the profile's accumulators per invocation (`max_tile`, at least the 8x4 fallback's 32)
/// and pixels per invocation (`max_tn`, at least 4).
fn regtile_tile(
    og: usize,
    pixels: usize,
    subgroup: Option<u32>,
    max_tile: u32,
    max_tn: u32,
) -> (u32, u32, u32) {
    let mut best = ((8u32, 4u32, 64u32), 0.0f64);
    for tn in [4u32, 8, 16] {
        for tm in [8u32, 16, 32, 64] {
            if tm * tn > max_tile.max(32) || tn > max_tn.max(4) {
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

/// Elements of `shape`'s weights in the packed layout (see [`packed_weight_len`]).
fn packed_len(shape: &Conv2dShape) -> usize {
    let cg = shape.in_channels_per_group();
    packed_weight_len(
        shape.out_channels,
        cg,
        shape.kernel_h,
        shape.kernel_w,
        shape.groups,
    )
}

/// The flattened plan that packs OIHW weights of `shape` into the implicit-GEMM layout.
///
/// # Errors
/// [`Error::TooLarge`] or [`Error::DeviceLimit`] when the packed weights do not fit.
pub fn pack_plan(shape: &Conv2dShape, limits: &PlanLimits) -> Result<(Plan, usize)> {
    let len = packed_len(shape);
    check_buffer("packed weight", len, limits)?;
    let uniforms = base_uniforms(shape)?;
    index_u32("packed weight element count", len)?;
    Ok((flat(Kernel::PackWeights, len, uniforms, limits)?, len))
}

/// One convolution's dispatch: its plan, after the weight packing's (plan and packed length)
/// when the kernel reads packed weights that the caller does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvDispatch {
    /// The convolution.
    pub conv: Plan,
    /// The packing that runs first, with the packed weight's length in elements.
    pub pack: Option<(Plan, usize)>,
}

/// Everything one forward call records, planned once before any GPU work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Execution {
    /// The output is empty: nothing runs.
    Empty,
    /// One dispatch over the whole problem.
    Whole(Box<ConvDispatch>),
    /// Pieces that each fit the device: each reads copies of its input rows (with halo), weights
    /// and bias, runs its dispatch, and its output is copied into place.
    Split {
        /// How the problem was cut.
        split: Split,
        /// The pieces, each with its dispatch.
        pieces: Vec<(Piece, ConvDispatch)>,
    },
}

fn conv_dispatch(
    conv: Plan,
    shape: &Conv2dShape,
    limits: &PlanLimits,
    have_packed: bool,
) -> Result<ConvDispatch> {
    let pack = if conv.kernel.reads_packed_weights() && !have_packed {
        Some(pack_plan(shape, limits)?)
    } else {
        None
    };
    Ok(ConvDispatch { conv, pack })
}

/// The execution of a forward convolution of `shape` with `algorithm`: one dispatch when it
/// fits the device, else pieces (see [`split::choose_split`]), each planned here, once.
/// `have_packed`: the caller holds the weights packed already.
///
/// # Errors
/// The unsplit plan's error when it fails for another reason than size, or when not even the
/// smallest piece (one output row of one channel of one image) can be planned.
pub fn execution(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    algorithm: Algorithm,
    have_packed: bool,
) -> Result<Execution> {
    if shape.output_len() == 0 {
        return Ok(Execution::Empty);
    }
    let unsplit = match plan(shape, limits, algorithm) {
        Ok(conv) => {
            return conv_dispatch(conv, shape, limits, have_packed)
                .map(|d| Execution::Whole(Box::new(d)))
        }
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
    let Some(split) = split::choose_split(shape, limits, |piece| {
        plan(piece, limits, algorithm).is_ok()
    }) else {
        return Err(unsplit);
    };
    // The split was sized on its largest piece; pieces at the edges differ in padding, which a
    // forced algorithm may refuse. Plan them all before anything runs.
    let mut planned = Vec::new();
    for piece in split::pieces(shape, &split)? {
        let Ok(conv) = plan(&piece.shape, limits, algorithm) else {
            return Err(unsplit);
        };
        let dispatch = conv_dispatch(conv, &piece.shape, limits, false)?;
        planned.push((piece, dispatch));
    }
    Ok(Execution::Split {
        split,
        pieces: planned,
    })
}

/// How `shape` runs on a device with `limits`: in one dispatch (`None`), or split (`Some`).
///
/// # Errors
/// As [`execution`].
pub fn schedule(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    algorithm: Algorithm,
) -> Result<Option<Split>> {
    match execution(shape, limits, algorithm, true)? {
        Execution::Split { split, .. } => Ok(Some(split)),
        Execution::Empty | Execution::Whole(_) => Ok(None),
    }
}
