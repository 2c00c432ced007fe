//! Shader sources, the uniform block they share, and the key the pipeline cache uses.

use bytemuck::{Pod, Zeroable};

/// A compute kernel wgconv can dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// One invocation per output element; every parameter combination.
    Direct,
    /// 1x1, stride 1, no padding, groups 1: a matrix product over channels, 4x4 register tiles.
    Pointwise,
}

/// Output channels x pixels computed by one invocation of [`Kernel::Pointwise`].
/// Twin: `TILE` in shaders/conv2d_pointwise.wgsl.
pub const POINTWISE_TILE: usize = 4;

impl Kernel {
    /// Every kernel, for building and testing them all.
    pub const ALL: [Kernel; 2] = [Kernel::Direct, Kernel::Pointwise];

    /// The WGSL source text.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Direct => include_str!("../../shaders/conv2d_direct.wgsl"),
            Kernel::Pointwise => include_str!("../../shaders/conv2d_pointwise.wgsl"),
        }
    }

    /// A label for wgpu objects and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Direct => "conv2d_direct",
            Kernel::Pointwise => "conv2d_pointwise",
        }
    }

    /// Invocations per workgroup, passed to the shader's `WORKGROUP_SIZE` override.
    pub fn workgroup_size(self) -> u32 {
        64
    }
}

/// The uniform block every convolution shader reads.
/// Twin: `struct Params` in shaders/conv2d_*.wgsl (same field order, all u32).
/// The unnamed fields are the [`Conv2dShape`](crate::Conv2dShape) fields of the same name.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ConvUniforms {
    pub batch: u32,
    pub in_channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_channels: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub groups: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub dilation_h: u32,
    pub dilation_w: u32,
    pub has_bias: u32,
    /// Work items in the dispatch (outputs for Direct, 4x4 tiles for Pointwise).
    pub work_items: u32,
    /// Invocations per dispatch row: `workgroups.x * workgroup_size`.
    pub row_stride: u32,
    pub _pad: u32,
}
