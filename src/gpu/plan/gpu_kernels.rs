//! Plans of the forward kernels written for real GPUs and run only when forced (a tuner tries
//! them as candidates; [`Algorithm::Auto`](super::Algorithm::Auto) never picks them): the 128x128
//! double-buffered implicit GEMM and the depthwise kernel that stages its input window.
//!
//! Each returns why it does not cover a shape, naming the values; [`plan`](super::plan) wraps
//! the reason in [`Error::UnsupportedAlgorithm`](crate::Error::UnsupportedAlgorithm).

use crate::gpu::kernels::{
    ConvUniforms, Kernel, DEPTHWISE_HALO_CAPACITY, DEPTHWISE_TILE, LARGE_TILED_BLOCK,
    LARGE_TILED_WORKGROUP_BYTES,
};
use crate::gpu::plan::dispatch::{Plan, PlanLimits};
use crate::spec::Conv2dShape;

/// Invocations per workgroup of both kernels. Twin: `@workgroup_size(256)` in
/// shaders/conv2d_igemm_tiled128.wgsl and shaders/conv2d_depthwise.wgsl.
const INVOCATIONS: u32 = 256;

/// Why a GEMM kernel's grid of workgroups, with this many pixel slots per workgroup along x, does
/// not fit the device or the packed weights, or `None` when it does (the check `plan` shares
/// between its implicit-GEMM kernels).
pub(crate) type GridProblem<'a> = &'a dyn Fn((usize, usize, usize), usize) -> Option<String>;

/// Why workgroups of [`INVOCATIONS`] along x with `bytes` of workgroup memory do not fit the
/// device, or `None` when they do.
fn workgroup_problem(bytes: u32, limits: &PlanLimits) -> Option<String> {
    (limits.max_invocations < INVOCATIONS
        || limits.max_workgroup_size_x < INVOCATIONS
        || limits.max_workgroup_storage < bytes)
        .then(|| {
            format!(
                "it needs workgroups of {INVOCATIONS} invocations along x and {bytes} bytes of \
                 workgroup memory; the device allows {} invocations ({} along x) and {} bytes",
                limits.max_invocations, limits.max_workgroup_size_x, limits.max_workgroup_storage
            )
        })
}

/// [`Kernel::LargeTiled`] over `shape`: 128 output pixels x 128 output channels of one image and
/// group per workgroup, as the 64x64 [`Kernel::SharedTiled`] is planned.
///
/// # Errors
/// The reason, naming the values, when the grid, the packed weights, the reduction's u32 index
/// or the workgroup does not fit.
pub(crate) fn large_tiled(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    uniforms: ConvUniforms,
    grid_problem: GridProblem,
) -> Result<Plan, String> {
    let pixels = shape.out_h * shape.out_w;
    let grid = (
        pixels.div_ceil(LARGE_TILED_BLOCK),
        shape.out_channels_per_group().div_ceil(LARGE_TILED_BLOCK),
        shape.batch * shape.groups,
    );
    // Pixel indices run up to grid.0 * 128 and the k loop up to k_len + 15, in u32.
    if let Some(problem) = grid_problem(grid, LARGE_TILED_BLOCK) {
        return Err(problem);
    }
    let k_len = shape.reduction_len() as u64;
    if k_len + 16 > u64::from(u32::MAX) {
        return Err(format!("its reduction of {k_len} overflows u32"));
    }
    if let Some(problem) = workgroup_problem(LARGE_TILED_WORKGROUP_BYTES, limits) {
        return Err(problem);
    }
    Ok(Plan {
        kernel: Kernel::LargeTiled,
        workgroup_size: INVOCATIONS,
        workgroups: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
        uniforms,
    })
}

/// The input window (rows, columns) one [`Kernel::Depthwise`] tile reads, or why the kernel does
/// not cover `shape` whatever its size: more than one input channel per group, or a window past
/// [`DEPTHWISE_HALO_CAPACITY`]. No split mends these, so `plan` asks first.
///
/// # Errors
/// The reason, naming the values.
pub(crate) fn depthwise_window(shape: &Conv2dShape) -> Result<(usize, usize), String> {
    if shape.in_channels_per_group() != 1 {
        return Err(format!(
            "it needs one input channel per group (groups == in_channels); got in_channels {}, \
             groups {}",
            shape.in_channels, shape.groups
        ));
    }
    let (tile_h, tile_w) = DEPTHWISE_TILE;
    // The input rows (columns) a tile reads: (tile - 1) * stride + (k - 1) * dilation + 1.
    let span = |tile: usize, stride: usize, k: usize, dilation: usize| {
        ((tile - 1).saturating_mul(stride))
            .saturating_add((k - 1).saturating_mul(dilation))
            .saturating_add(1)
    };
    let halo_h = span(tile_h, shape.stride_h, shape.kernel_h, shape.dilation_h);
    let halo_w = span(tile_w, shape.stride_w, shape.kernel_w, shape.dilation_w);
    let halo = halo_h.saturating_mul(halo_w);
    if halo > DEPTHWISE_HALO_CAPACITY {
        return Err(format!(
            "the input window of its {tile_h}x{tile_w} output tile, {halo_h}x{halo_w} = {halo} \
             values (kernel {}x{}, stride ({}, {}), dilation ({}, {})), exceeds the \
             {DEPTHWISE_HALO_CAPACITY} values the shader stages in workgroup memory",
            shape.kernel_h,
            shape.kernel_w,
            shape.stride_h,
            shape.stride_w,
            shape.dilation_h,
            shape.dilation_w
        ));
    }
    Ok((halo_h, halo_w))
}

/// [`Kernel::Depthwise`] over `shape`: one 16x32 tile of output pixels of one output channel of
/// one image per workgroup. Covers one input channel per group (`groups == in_channels`), with
/// any channel multiplier `O / groups`, when the tile's input window fits the shader's workgroup
/// array (see [`depthwise_window`]).
///
/// # Errors
/// The reason, naming the values, when [`depthwise_window`] refuses, a coordinate overflows the
/// shader's i32 or the grid or the workgroup does not fit.
pub(crate) fn depthwise(
    shape: &Conv2dShape,
    limits: &PlanLimits,
    uniforms: ConvUniforms,
) -> Result<Plan, String> {
    let (halo_h, halo_w) = depthwise_window(shape)?;
    let (tile_h, tile_w) = DEPTHWISE_TILE;
    let tiles_h = shape.out_h.div_ceil(tile_h);
    let tiles_w = shape.out_w.div_ceil(tile_w);
    // The last tile's window reaches input coordinate tiles * tile * stride + halo - stride - 1,
    // past the output's own reach (checked by `plan`); the shader forms it as an i32.
    for (axis, tiles, tile, stride, halo) in [
        ("height", tiles_h, tile_h, shape.stride_h, halo_h),
        ("width", tiles_w, tile_w, shape.stride_w, halo_w),
    ] {
        let reach = (tiles.saturating_mul(tile) - tile)
            .saturating_mul(stride)
            .saturating_add(halo);
        if reach > i32::MAX as usize {
            return Err(format!(
                "its tiles' input windows reach {reach} in {axis}, past the shader's i32 \
                 coordinates"
            ));
        }
    }
    let grid = (
        tiles_h.saturating_mul(tiles_w),
        shape.out_channels,
        shape.batch,
    );
    let max_dim = limits.max_workgroups_per_dim as usize;
    if grid.0 > max_dim || grid.1 > max_dim || grid.2 > max_dim {
        return Err(format!(
            "its grid of {grid:?} workgroups (tiles, output channels, images) exceeds \
             max_compute_workgroups_per_dimension {max_dim}"
        ));
    }
    if let Some(problem) = workgroup_problem((DEPTHWISE_HALO_CAPACITY * 4) as u32, limits) {
        return Err(problem);
    }
    Ok(Plan {
        kernel: Kernel::Depthwise,
        workgroup_size: INVOCATIONS,
        workgroups: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
        uniforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::plan::dispatch::base_uniforms;
    use crate::spec::Conv2dParams;

    fn shape(input: [usize; 4], weight: [usize; 4], params: Conv2dParams) -> Conv2dShape {
        Conv2dShape::new(&input, &weight, None, &params).unwrap()
    }

    #[test]
    fn depthwise_grid_is_tiles_by_channels_by_images() {
        let s = shape(
            [2, 8, 33, 65],
            [8, 1, 3, 3],
            Conv2dParams::default().with_padding(1).with_groups(8),
        );
        let p = depthwise(&s, &PlanLimits::unlimited_cpu(), base_uniforms(&s).unwrap()).unwrap();
        // 33 rows in tiles of 16, 65 columns in tiles of 32: 3 x 3 tiles.
        assert_eq!(p.workgroups, (9, 8, 2));
    }

    #[test]
    fn depthwise_window_of_exactly_the_capacity_is_planned_and_one_more_row_is_not() {
        // A 2x1 kernel: the window is 15 + dh + 1 rows of 32 columns, one more row per unit of
        // vertical dilation; 4096 / 32 = 128 rows at dh = 112.
        let limits = PlanLimits::unlimited_cpu();
        let make = |dh| {
            shape(
                [1, 1, 200, 64],
                [1, 1, 2, 1],
                Conv2dParams::default().with_dilation((dh, 1)),
            )
        };
        let fits = make(112);
        assert!(depthwise(&fits, &limits, base_uniforms(&fits).unwrap()).is_ok());
        let too_big = make(113);
        let why = depthwise(&too_big, &limits, base_uniforms(&too_big).unwrap()).unwrap_err();
        assert!(why.contains("129x32 = 4128"), "{why}");
    }
}
