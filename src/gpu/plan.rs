//! Which kernel runs a convolution, and how it is dispatched within the device's limits.
//!
//! Everything is computed on the host with checked arithmetic before any GPU work is recorded,
//! so a problem the shaders cannot index, or the device cannot hold, is refused with a typed error.

use crate::error::{Error, Result};
use crate::gpu::codegen::{RegTileSpec, MAX_UNROLLED_CHANNELS};
use crate::gpu::kernels::{packed_weight_len, ConvUniforms, Kernel, POINTWISE_TILE, TILED_BLOCK};
use crate::spec::Conv2dShape;

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

fn fits_u32(what: &str, value: usize, why: &'static str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: value as u64,
        limit: u64::from(u32::MAX),
        why,
    })
}

const INDEX_WHY: &str =
    "the shaders index with u32; splitting larger problems is not implemented yet";

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
    let packed_fits = check_buffer("packed weight", packed_len, limits).is_ok()
        && u32::try_from(packed_len).is_ok();

    // Candidates in order of preference; the first that applies wins.
    let regtile = || -> Option<Plan> {
        let (tm, tn, workgroup_size) = regtile_tile(og, pixels, limits.subgroup_size);
        let slots = workgroup_size as usize * tn as usize;
        let grid = (pixels.div_ceil(slots), og.div_ceil(tm as usize), images);
        // Pixel indices run up to grid.0 * slots in the shader's u32 arithmetic.
        let in_grid = grid.0 <= max_dim
            && grid.1 <= max_dim
            && grid.2 <= max_dim
            && (grid.0 * slots) as u64 <= u64::from(u32::MAX);
        let cg = shape.in_channels_per_group();
        let spec = RegTileSpec {
            tm,
            tn,
            padded: shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right > 0,
            unrolled_channels: (cg as u32 <= MAX_UNROLLED_CHANNELS).then_some(cg as u32),
            subgroup: limits.subgroup_size,
        };
        (in_grid && packed_fits && workgroup_size <= limits.max_invocations).then_some(Plan {
            kernel: Kernel::RegisterTiled(spec),
            workgroup_size,
            workgroups: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
            uniforms,
        })
    };
    let shared = || -> Option<Plan> {
        let grid = (
            pixels.div_ceil(TILED_BLOCK),
            og.div_ceil(TILED_BLOCK),
            images,
        );
        // Pixel indices run up to grid.0 * 64 and the k loop up to k_len + 16, in u32.
        let k_len = (shape.kernel_h * shape.kernel_w * shape.in_channels_per_group()) as u64;
        let in_grid = grid.0 <= max_dim
            && grid.1 <= max_dim
            && grid.2 <= max_dim
            && (grid.0 * TILED_BLOCK) as u64 <= u64::from(u32::MAX)
            && k_len + 16 <= u64::from(u32::MAX);
        // 4 KiB of vec4 weights + 4 KiB of inputs, and 256 invocations along x.
        let fits = limits.max_invocations >= 256
            && limits.max_workgroup_size_x >= 256
            && limits.max_workgroup_storage >= 8192;
        (in_grid && packed_fits && fits).then_some(Plan {
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
    let unsupported = |name: &'static str| Error::UnsupportedAlgorithm {
        algorithm: name,
        reason: "the shape or the device's limits are outside what it covers".into(),
    };
    match algorithm {
        Algorithm::Direct => direct(),
        Algorithm::Pointwise if is_pointwise(shape) => pointwise(),
        Algorithm::Pointwise => Err(Error::UnsupportedAlgorithm {
            algorithm: "pointwise",
            reason: "it needs a 1x1 kernel, stride 1, no padding and groups 1".into(),
        }),
        Algorithm::RegisterTiled => regtile().ok_or_else(|| unsupported("register-tiled")),
        Algorithm::SharedTiled => shared().ok_or_else(|| unsupported("shared-tiled")),
        Algorithm::Auto => {
            // Depthwise-like groups (fewer than 4 output channels each) leave the GEMM tiles
            // mostly empty; the direct kernel does better there.
            let gemm_worth_it = og >= 4;
            let fast = if !gemm_worth_it {
                None
            } else if limits.cpu_adapter {
                regtile()
            } else if og >= 16 {
                shared()
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
            why: "max_compute_workgroups_per_dimension squared; splitting is not implemented yet",
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
