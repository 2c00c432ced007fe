//! Which kernel runs a convolution, and how it is dispatched within the device's limits.
//!
//! Everything is computed on the host with checked arithmetic before any GPU work is recorded,
//! so a problem the shaders cannot index, or the device cannot hold, is refused with a typed error.

use crate::error::{Error, Result};
use crate::gpu::kernels::{ConvUniforms, Kernel, POINTWISE_TILE};
use crate::spec::Conv2dShape;

/// A kernel and its dispatch for one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The kernel chosen.
    pub kernel: Kernel,
    /// Workgroups along x and y (z is 1).
    pub workgroups: (u32, u32),
    /// The uniform block for the shader.
    pub uniforms: ConvUniforms,
}

/// The device limits a plan must respect (a copy of the relevant `wgpu::Limits` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// `max_storage_buffer_binding_size`.
    pub max_binding: u64,
    /// `max_buffer_size`.
    pub max_buffer: u64,
    /// `max_compute_workgroups_per_dimension`.
    pub max_workgroups_per_dim: u32,
}

impl From<&wgpu::Limits> for PlanLimits {
    fn from(l: &wgpu::Limits) -> Self {
        PlanLimits {
            max_binding: l.max_storage_buffer_binding_size,
            max_buffer: l.max_buffer_size,
            max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
        }
    }
}

/// Picks the kernel for `shape`: the 1x1 matrix-product kernel where it applies, else direct.
pub fn choose_kernel(shape: &Conv2dShape) -> Kernel {
    let pointwise = shape.kernel_h == 1
        && shape.kernel_w == 1
        && shape.stride_h == 1
        && shape.stride_w == 1
        && shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right == 0
        && shape.groups == 1;
    if pointwise {
        Kernel::Pointwise
    } else {
        Kernel::Direct
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

/// Plans `shape` on a device with `limits`.
///
/// # Errors
/// [`Error::TooLarge`] when an index overflows the shaders' u32/i32 arithmetic or the dispatch
/// exceeds the workgroup grid; [`Error::DeviceLimit`] when a buffer exceeds the device's limits.
pub fn plan(shape: &Conv2dShape, limits: &PlanLimits) -> Result<Plan> {
    check_buffer("input", shape.input_len(), limits)?;
    check_buffer("weight", shape.weight_len(), limits)?;
    check_buffer("output", shape.output_len(), limits)?;
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

    let kernel = choose_kernel(shape);
    let work_items = match kernel {
        Kernel::Direct => shape.output_len(),
        Kernel::Pointwise => {
            let pixels = shape.out_h * shape.out_w;
            shape.batch
                * pixels.div_ceil(POINTWISE_TILE)
                * shape.out_channels.div_ceil(POINTWISE_TILE)
        }
    };
    let wg = kernel.workgroup_size();
    let (workgroups, row_stride) = grid(work_items, wg, limits.max_workgroups_per_dim)?;

    let u = |what: &str, v: usize| fits_u32(what, v, INDEX_WHY);
    let uniforms = ConvUniforms {
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
        work_items: u("work items", work_items)?,
        row_stride,
        _pad: 0,
    };
    Ok(Plan {
        kernel,
        workgroups,
        uniforms,
    })
}

/// Lays `items` invocations out on a 2D grid of workgroups of `wg` invocations: as wide as the
/// device allows, then as many rows as needed. Returns the workgroup counts and the invocations per row.
fn grid(items: usize, wg: u32, max_per_dim: u32) -> Result<((u32, u32), u32)> {
    let groups = items.div_ceil(wg as usize);
    let x = groups.clamp(1, max_per_dim as usize);
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
