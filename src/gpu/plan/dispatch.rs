//! A kernel and its dispatch ([`Plan`]), the device limits every plan is checked against, and
//! the flat grids of the element-wise and reduction kernels.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::gpu::kernels::{ConvUniforms, CustomKernel, Kernel};
use crate::gpu::profile::{DriverFamily, Profile};
use crate::spec::Conv2dShape;

/// Which convolution algorithm to run; `Auto` lets the planner choose by shape and adapter.
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
    /// Implicit GEMM with a generated register tile and no barriers, the tile chosen by the
    /// planner within the adapter's profile.
    RegisterTiled,
    /// The register-tiled implicit GEMM with a given tile: `tm` output channels (a multiple of 4,
    /// 4 to 64) x `tn` pixels (4, 8 or 16) per invocation. The autotuner's candidates.
    RegisterTile {
        /// Output channels per invocation.
        tm: u32,
        /// Pixels per invocation.
        tn: u32,
    },
    /// Implicit GEMM tiled through workgroup memory.
    SharedTiled,
    /// Implicit GEMM in 128x128 tiles through double-buffered workgroup memory (real GPUs).
    LargeTiled,
    /// Depthwise convolution (groups == in_channels) from input tiles in workgroup memory.
    Depthwise,
    /// A caller's kernel, dispatched as the direct one (see [`CustomKernel`]).
    Custom(CustomKernel),
}

impl Algorithm {
    /// The algorithms a user can name, in the planner's order of simplicity (the register-tiled
    /// kernel also takes a tile, `register-tiled-TMxTN`).
    pub const NAMED: [Algorithm; 7] = [
        Algorithm::Auto,
        Algorithm::Direct,
        Algorithm::Pointwise,
        Algorithm::RegisterTiled,
        Algorithm::SharedTiled,
        Algorithm::LargeTiled,
        Algorithm::Depthwise,
    ];

    /// The name `--algorithm` takes and reports print, e.g. `direct` or `register-tiled-16x8`.
    pub fn name(self) -> String {
        match self {
            Algorithm::Auto => "auto".into(),
            Algorithm::Direct => "direct".into(),
            Algorithm::Pointwise => "pointwise".into(),
            Algorithm::RegisterTiled => "register-tiled".into(),
            Algorithm::RegisterTile { tm, tn } => format!("register-tiled-{tm}x{tn}"),
            Algorithm::SharedTiled => "shared-tiled".into(),
            Algorithm::LargeTiled => "large-tiled".into(),
            Algorithm::Depthwise => "depthwise".into(),
            Algorithm::Custom(custom) => format!("custom:{}", custom.name),
        }
    }

    /// The algorithm that runs `kernel` (a forward convolution kernel), as reports name it.
    pub fn of_kernel(kernel: Kernel) -> Option<Algorithm> {
        match kernel {
            Kernel::Direct => Some(Algorithm::Direct),
            Kernel::Pointwise => Some(Algorithm::Pointwise),
            Kernel::RegisterTiled(spec) => Some(Algorithm::RegisterTile {
                tm: spec.tm,
                tn: spec.tn,
            }),
            Kernel::SharedTiled => Some(Algorithm::SharedTiled),
            Kernel::LargeTiled => Some(Algorithm::LargeTiled),
            Kernel::Depthwise => Some(Algorithm::Depthwise),
            Kernel::Custom(custom) => Some(Algorithm::Custom(custom)),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    /// An algorithm by its [`Algorithm::name`], or by the name of a kernel it runs as `bench` and
    /// `info` print them (`conv2d_igemm_regtile_16x8_padded_sg4` is `register-tiled-16x8`).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim().to_lowercase();
        let tile = |rest: &str| -> Option<Algorithm> {
            let (tm, tn) = rest.split_once('x')?;
            let tn: String = tn.chars().take_while(char::is_ascii_digit).collect();
            let (tm, tn) = (tm.parse().ok()?, tn.parse().ok()?);
            let valid = tm % 4 == 0 && (4..=64).contains(&tm) && [4, 8, 16].contains(&tn);
            valid.then_some(Algorithm::RegisterTile { tm, tn })
        };
        if let Some(found) = Self::NAMED.into_iter().find(|a| a.name() == s) {
            return Ok(found);
        }
        let by_kernel = match s.as_str() {
            "conv2d_direct" => Some(Algorithm::Direct),
            "conv2d_pointwise" => Some(Algorithm::Pointwise),
            "conv2d_igemm_tiled" => Some(Algorithm::SharedTiled),
            "conv2d_igemm_tiled128" => Some(Algorithm::LargeTiled),
            "conv2d_depthwise" => Some(Algorithm::Depthwise),
            _ => None,
        };
        let tiled = s
            .strip_prefix("register-tiled-")
            .or_else(|| s.strip_prefix("conv2d_igemm_regtile_"))
            .and_then(tile);
        by_kernel.or(tiled).ok_or_else(|| {
            let names: Vec<String> = Self::NAMED.iter().map(|a| a.name()).collect();
            format!(
                "unknown algorithm '{s}'; choose one of {}, register-tiled-TMxTN (TM a multiple \
                 of 4 up to 64, TN 4, 8 or 16), or a kernel name as `wgconv info` prints it",
                names.join(", ")
            )
        })
    }
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
    /// What the planner starts from on this adapter's driver family.
    pub profile: Profile,
}

impl PlanLimits {
    /// From the device's limits, the adapter's type and its driver family.
    pub fn new(l: &wgpu::Limits, device_type: wgpu::DeviceType, family: DriverFamily) -> Self {
        let cpu_adapter = device_type == wgpu::DeviceType::Cpu;
        PlanLimits {
            max_binding: l.max_storage_buffer_binding_size,
            max_buffer: l.max_buffer_size,
            max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
            max_invocations: l.max_compute_invocations_per_workgroup,
            max_workgroup_storage: l.max_compute_workgroup_storage_size,
            max_workgroup_size_x: l.max_compute_workgroup_size_x,
            cpu_adapter,
            subgroup_size: None,
            profile: Profile::for_family(family, cpu_adapter),
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
            profile: Profile::for_family(DriverFamily::Llvmpipe, true),
        }
    }

    /// The subgroup size the register-tiled kernels broadcast weights with, if any: the device's,
    /// when its profile uses subgroups.
    pub fn broadcast_subgroup(&self) -> Option<u32> {
        self.subgroup_size.filter(|_| self.profile.subgroups)
    }
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

/// `value` as the u32 the shaders index with, or [`Error::TooLarge`] naming `what`.
///
/// # Errors
/// [`Error::TooLarge`] when `value` exceeds `u32::MAX`.
pub fn index_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::TooLarge {
        what: what.to_string(),
        value: value as u64,
        limit: u64::from(u32::MAX),
        why: INDEX_WHY,
    })
}

const INDEX_WHY: &str = "the shaders index with u32";

pub(crate) fn base_uniforms(shape: &Conv2dShape) -> Result<ConvUniforms> {
    let u = |what: &str, v: usize| index_u32(what, v);
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
        in_d: 1,
        out_d: 1,
        kernel_d: 1,
        stride_d: 1,
        pad_front: 0,
        dilation_d: 1,
        first_image: 0,
        pad_mode: shape.padding_mode.code(),
        ..ConvUniforms::default()
    }
    .with_epilogue(shape.activation, shape.has_residual))
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
    uniforms.work_items = index_u32("work items", work_items)?;
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
pub(crate) fn grid(items: usize, wg: u32, max_per_dim: u32) -> Result<((u32, u32), u32)> {
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
