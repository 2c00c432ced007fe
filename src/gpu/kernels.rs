//! Shader sources, the uniform block they share, and the key the pipeline cache uses.

use std::borrow::Cow;

use bytemuck::{Pod, Zeroable};

use crate::gpu::codegen::{grad_weight_source, regtile_source, RegTileSpec};
pub use crate::gpu::codegen::{with_epilogue, with_params, EPILOGUE_WGSL, PARAMS_WGSL};

/// A compute kernel wgconv can dispatch, with its compile-time specialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// One invocation per output element; every parameter combination. The fallback and the oracle.
    Direct,
    /// 1x1, stride 1, no padding, groups 1: a matrix product over channels, 4x4 register tiles.
    Pointwise,
    /// Implicit GEMM, generated straight-line register tile, no barriers: for CPU adapters.
    RegisterTiled(RegTileSpec),
    /// Implicit GEMM through workgroup memory, 64x64 tiles: for real GPUs.
    SharedTiled,
    /// Implicit GEMM through double-buffered workgroup memory, 128x128 tiles, 8x8 per invocation:
    /// for real GPUs.
    LargeTiled,
    /// Depthwise (one input channel per group): 16x32 output tiles of one channel from an input
    /// window staged in workgroup memory.
    Depthwise,
    /// OIHW weights to the packed layout of the implicit-GEMM kernels.
    PackWeights,
    /// A convolution's input gradient (the transposed convolution) by gathering.
    GradInput,
    /// Partial sums of a convolution's weight gradient over chunks of output rows, with a tile
    /// of `.0` output channels (4 or 8) x `.1` weight entries (4 or 8) per invocation.
    GradWeight(u32, u32),
    /// Partial sums of a convolution's bias gradient over chunks of output rows.
    GradBias,
    /// Adds the chunks of a split reduction, in order.
    ReducePartials,
    /// Weights of the forward convolution that gives a stride-1 input gradient.
    FlipWeights,
    /// `2 * (prediction - target)`, element by element.
    SquaredErrorGrad,
    /// Partial sums of `(prediction - target)^2` over chunks.
    SquaredErrorSum,
    /// `param -= lr * grad`.
    SgdStep,
    /// `grad_output * act'(pre)`, element by element: the backward pass through the fused
    /// epilogue's activation.
    EpilogueGrad,
    /// Zeros between a tensor's values (a strided input gradient as a stride-1 one).
    ZeroUpsample,
    /// A 3D convolution's input with its depth folded into batch and channels.
    FoldInput,
    /// A 3D convolution's weight with its depth folded into the channels.
    FoldWeight,
    /// The folded 2D convolution's output as the 3D one's.
    UnfoldOutput,
    /// A 3D convolution's output gradient as the folded 2D one's.
    FoldOutput,
    /// The folded 2D weight gradient as the 3D one's.
    UnfoldWeight,
    /// The folded 2D input gradient summed back onto the 3D input.
    UnfoldInputGrad,
    /// The gradient with respect to a padded input folded back onto the input, for the padding
    /// modes that read it.
    FoldPadding,
    /// A caller's forward convolution kernel (see [`CustomKernel`]).
    Custom(CustomKernel),
}

/// A forward convolution kernel written by the caller, to try beside wgconv's own through the
/// tuner (which checks its output before timing it): WGSL with the direct kernel's bindings and
/// dispatch (shaders/conv2d_direct.wgsl: `input`, `weight` (OIHW), `bias`, `output` at bindings
/// 0-3, `params: Params` at 4, one invocation per output element over a flattened grid, an
/// `override WORKGROUP_SIZE`, entry point `main`), without the `Params` struct, which is
/// prepended. A kernel that calls `epilogue(v, i)` as it stores, as shaders/conv2d_direct.wgsl
/// does, gets shaders/epilogue.wgsl prepended too (it reads the `output` binding); the fused
/// epilogue itself (an activation or a residual) is refused for custom kernels, so there it
/// returns `v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomKernel {
    /// Its name in reports (`custom:NAME`).
    pub name: &'static str,
    /// Its WGSL text.
    pub source: &'static str,
}

/// The storage buffers a family of kernels binds, in binding order; the uniform block is always
/// binding 4. Callers pass exactly these, no placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bindings {
    /// 0 input, 1 weight, 2 bias (read), 3 output: the convolutions and the gather (a forward
    /// kernel's fused epilogue reads a residual from the output it overwrites: four storage
    /// buffers, the least an adapter has).
    Conv,
    /// 0 and 1 read, 3 written: kernels of two inputs (weight gradient, squared error, the
    /// epilogue of a 3D convolution as its output is unfolded).
    Binary,
    /// 0 read, 3 written: the element-wise and reduction kernels.
    Unary,
}

impl Bindings {
    /// Every family, for building their layouts up front.
    pub const ALL: [Bindings; 3] = [Bindings::Conv, Bindings::Binary, Bindings::Unary];

    /// `(binding, read_only)` of each storage buffer, in the order callers pass them.
    pub fn storage(self) -> &'static [(u32, bool)] {
        match self {
            Bindings::Conv => &[(0, true), (1, true), (2, true), (3, false)],
            Bindings::Binary => &[(0, true), (1, true), (3, false)],
            Bindings::Unary => &[(0, true), (3, false)],
        }
    }
}

/// Output channels x pixels computed by one invocation of [`Kernel::Pointwise`].
/// Twin: `TILE` in shaders/conv2d_pointwise.wgsl.
pub const POINTWISE_TILE: usize = 4;

/// Output channels and pixels per workgroup of [`Kernel::SharedTiled`].
/// Twin: `BLOCK` in shaders/conv2d_igemm_tiled.wgsl.
pub const TILED_BLOCK: usize = 64;

/// Output channels and pixels per workgroup of [`Kernel::LargeTiled`].
/// Twin: `BLOCK` in shaders/conv2d_igemm_tiled128.wgsl.
pub const LARGE_TILED_BLOCK: usize = 128;

/// Workgroup memory of [`Kernel::LargeTiled`]: two buffers of a 128x8 weight and an 8x128 input
/// tile of f32. Twin: `a_tile` and `b_tile` in shaders/conv2d_igemm_tiled128.wgsl.
pub const LARGE_TILED_WORKGROUP_BYTES: u32 = 2 * (128 * 8 + 8 * 128) * 4;

/// Output rows and columns per workgroup of [`Kernel::Depthwise`].
/// Twin: `TILE_H` and `TILE_W` in shaders/conv2d_depthwise.wgsl.
pub const DEPTHWISE_TILE: (usize, usize) = (16, 32);

/// f32 values of the input window (tile and halo) [`Kernel::Depthwise`] stages in workgroup
/// memory: 16384 bytes. Twin: `HALO_CAPACITY` in shaders/conv2d_depthwise.wgsl.
pub const DEPTHWISE_HALO_CAPACITY: usize = 4096;

/// Every kernel's shader file with its text, as compiled into the crate (the register-tiled one
/// is the frame its generator fills); each is completed by [`with_params`].
pub const SHADER_FILES: [(&str, &str); 18] = [
    (
        "conv2d_direct",
        include_str!("../../shaders/conv2d_direct.wgsl"),
    ),
    (
        "conv2d_pointwise",
        include_str!("../../shaders/conv2d_pointwise.wgsl"),
    ),
    (
        "conv2d_igemm_regtile",
        include_str!("../../shaders/conv2d_igemm_regtile.wgsl"),
    ),
    (
        "conv2d_igemm_tiled",
        include_str!("../../shaders/conv2d_igemm_tiled.wgsl"),
    ),
    (
        "conv2d_igemm_tiled128",
        include_str!("../../shaders/conv2d_igemm_tiled128.wgsl"),
    ),
    (
        "conv2d_depthwise",
        include_str!("../../shaders/conv2d_depthwise.wgsl"),
    ),
    (
        "pack_weights",
        include_str!("../../shaders/pack_weights.wgsl"),
    ),
    (
        "conv2d_grad_input",
        include_str!("../../shaders/conv2d_grad_input.wgsl"),
    ),
    (
        "conv2d_grad_weight",
        include_str!("../../shaders/conv2d_grad_weight.wgsl"),
    ),
    (
        "conv2d_grad_bias",
        include_str!("../../shaders/conv2d_grad_bias.wgsl"),
    ),
    (
        "reduce_partials",
        include_str!("../../shaders/reduce_partials.wgsl"),
    ),
    (
        "flip_weights",
        include_str!("../../shaders/flip_weights.wgsl"),
    ),
    (
        "squared_error",
        include_str!("../../shaders/squared_error.wgsl"),
    ),
    ("sgd_step", include_str!("../../shaders/sgd_step.wgsl")),
    (
        "epilogue_grad",
        include_str!("../../shaders/epilogue_grad.wgsl"),
    ),
    (
        "zero_upsample",
        include_str!("../../shaders/zero_upsample.wgsl"),
    ),
    ("fold_depth", include_str!("../../shaders/fold_depth.wgsl")),
    (
        "fold_padding",
        include_str!("../../shaders/fold_padding.wgsl"),
    ),
];

fn file(name: &str) -> &'static str {
    SHADER_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, s)| s)
}

impl Kernel {
    /// The WGSL source text (generated for the register-tiled kernel).
    pub fn source(self) -> Cow<'static, str> {
        match self {
            Kernel::RegisterTiled(spec) => Cow::Owned(regtile_source(&spec)),
            Kernel::GradWeight(tile_o, entries) => Cow::Owned(grad_weight_source(tile_o, entries)),
            Kernel::Custom(custom) if custom.source.contains("epilogue(") => {
                Cow::Owned(with_epilogue(custom.source))
            }
            Kernel::Custom(custom) => Cow::Owned(with_params(custom.source)),
            Kernel::Direct
            | Kernel::Pointwise
            | Kernel::SharedTiled
            | Kernel::LargeTiled
            | Kernel::Depthwise => Cow::Owned(with_epilogue(file(self.file_name()))),
            other => Cow::Owned(with_params(file(other.file_name()))),
        }
    }

    /// The shader file the kernel comes from.
    pub fn file_name(self) -> &'static str {
        match self {
            Kernel::Direct => "conv2d_direct",
            Kernel::Pointwise => "conv2d_pointwise",
            Kernel::RegisterTiled(_) => "conv2d_igemm_regtile",
            Kernel::SharedTiled => "conv2d_igemm_tiled",
            Kernel::LargeTiled => "conv2d_igemm_tiled128",
            Kernel::Depthwise => "conv2d_depthwise",
            Kernel::PackWeights => "pack_weights",
            Kernel::GradInput => "conv2d_grad_input",
            Kernel::GradWeight(..) => "conv2d_grad_weight",
            Kernel::GradBias => "conv2d_grad_bias",
            Kernel::ReducePartials => "reduce_partials",
            Kernel::FlipWeights => "flip_weights",
            Kernel::SquaredErrorGrad | Kernel::SquaredErrorSum => "squared_error",
            Kernel::SgdStep => "sgd_step",
            Kernel::EpilogueGrad => "epilogue_grad",
            Kernel::ZeroUpsample => "zero_upsample",
            Kernel::FoldInput
            | Kernel::FoldWeight
            | Kernel::UnfoldOutput
            | Kernel::FoldOutput
            | Kernel::UnfoldWeight
            | Kernel::UnfoldInputGrad => "fold_depth",
            Kernel::FoldPadding => "fold_padding",
            Kernel::Custom(custom) => custom.name,
        }
    }

    /// A stable name for reports and logs: the shader file, then the specialization, e.g.
    /// `conv2d_igemm_regtile_8x4_padded` (tile `TM`x`TN`, `_reflect` after `_padded` for a padding
    /// mode other than zeros, `_c3` for 3 unrolled channels,
    /// `_sg32` for subgroup broadcasts) or `conv2d_grad_weight_8x8` (channels x weight entries).
    pub fn name(self) -> String {
        match self {
            Kernel::RegisterTiled(s) => {
                let mut name = format!("{}_{}x{}", self.file_name(), s.tm, s.tn);
                if s.padded {
                    name.push_str("_padded");
                    if s.mode != crate::spec::PaddingMode::Zeros {
                        name.push_str(&format!("_{}", s.mode));
                    }
                }
                if let Some(c) = s.unrolled_channels {
                    name.push_str(&format!("_c{c}"));
                }
                if let Some(size) = s.subgroup {
                    name.push_str(&format!("_sg{size}"));
                }
                name
            }
            Kernel::GradWeight(tile_o, entries) => {
                format!("{}_{tile_o}x{entries}", self.file_name())
            }
            Kernel::SquaredErrorGrad => "squared_error_grad".into(),
            Kernel::SquaredErrorSum => "squared_error_sum".into(),
            Kernel::FoldInput
            | Kernel::FoldWeight
            | Kernel::UnfoldOutput
            | Kernel::FoldOutput
            | Kernel::UnfoldWeight
            | Kernel::UnfoldInputGrad => format!("{}_{}", self.file_name(), self.entry_point()),
            Kernel::Custom(custom) => format!("custom:{}", custom.name),
            other => other.file_name().into(),
        }
    }

    /// The shader's entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::SquaredErrorGrad => "grad",
            Kernel::SquaredErrorSum => "partial",
            Kernel::FoldInput => "fold_input",
            Kernel::FoldWeight => "fold_weight",
            Kernel::UnfoldOutput => "unfold_output",
            Kernel::FoldOutput => "fold_output",
            Kernel::UnfoldWeight => "unfold_weight",
            Kernel::UnfoldInputGrad => "unfold_input_grad",
            _ => "main",
        }
    }

    /// The buffers the kernel binds (each shader declares exactly these).
    pub fn bindings(self) -> Bindings {
        match self {
            Kernel::Direct
            | Kernel::Pointwise
            | Kernel::RegisterTiled(_)
            | Kernel::SharedTiled
            | Kernel::LargeTiled
            | Kernel::Depthwise
            | Kernel::GradInput
            | Kernel::Custom(_) => Bindings::Conv,
            Kernel::GradWeight(..)
            | Kernel::SquaredErrorGrad
            | Kernel::SquaredErrorSum
            | Kernel::EpilogueGrad
            | Kernel::UnfoldOutput
            | Kernel::UnfoldInputGrad => Bindings::Binary,
            Kernel::PackWeights
            | Kernel::GradBias
            | Kernel::ReducePartials
            | Kernel::FlipWeights
            | Kernel::SgdStep
            | Kernel::ZeroUpsample
            | Kernel::FoldInput
            | Kernel::FoldWeight
            | Kernel::FoldOutput
            | Kernel::UnfoldWeight
            | Kernel::FoldPadding => Bindings::Unary,
        }
    }

    /// Whether the kernel reads packed weights (see shaders/pack_weights.wgsl).
    pub fn reads_packed_weights(self) -> bool {
        matches!(
            self,
            Kernel::RegisterTiled(_) | Kernel::SharedTiled | Kernel::LargeTiled
        )
    }
}

/// Elements of the packed weight layout `[groups][ceil(og/4)][kh*kw*cg][4]`.
pub fn packed_weight_len(
    out_channels: usize,
    cg: usize,
    kh: usize,
    kw: usize,
    groups: usize,
) -> usize {
    let og = out_channels / groups.max(1);
    groups * og.div_ceil(4) * kh * kw * cg * 4
}

/// The uniform block every convolution shader reads.
/// Twin: `struct Params` in shaders/conv_params.wgsl (same field order, all u32).
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
    /// Work items in a flattened dispatch (outputs for Direct, 4x4 tiles for Pointwise, packed
    /// elements for PackWeights).
    pub work_items: u32,
    /// Invocations per dispatch row of a flattened dispatch: `workgroups.x * workgroup_size`.
    pub row_stride: u32,
    /// Split reductions (gradients, losses): rows or elements per chunk.
    pub chunk_len: u32,
    /// Split reductions: rows or elements in all.
    pub reduce_len: u32,
    /// A kernel's f32 operand as bits (the SGD learning rate).
    pub scalar_bits: u32,
    /// A 3D convolution's input depth (the folding kernels).
    pub in_d: u32,
    /// Its output depth.
    pub out_d: u32,
    /// Its kernel depth.
    pub kernel_d: u32,
    /// Its depth stride.
    pub stride_d: u32,
    /// Its zero planes in front.
    pub pad_front: u32,
    /// Its depth dilation.
    pub dilation_d: u32,
    /// The first folded image (`n*OD + od`) of a piece of a split 3D convolution.
    pub first_image: u32,
    /// What the padding holds ([`PaddingMode`](crate::spec::PaddingMode)'s number: 0 zeros,
    /// 1 reflect, 2 replicate, 3 circular).
    pub pad_mode: u32,
    /// The fused epilogue's activation ([`Activation`](crate::spec::Activation)'s number, 0 none).
    pub activation: u32,
    /// Its first f32 parameter as bits (the leaky slope, the clamp's minimum).
    pub act_a: u32,
    /// Its second f32 parameter as bits (the clamp's maximum).
    pub act_b: u32,
    /// Whether the epilogue adds the residual (copied into the output first) before the
    /// activation.
    pub has_residual: u32,
}

impl ConvUniforms {
    /// These uniforms with the fused epilogue's fields set: `activation`'s number and
    /// parameters, and whether a residual is added before it.
    pub fn with_epilogue(self, activation: crate::spec::Activation, has_residual: bool) -> Self {
        let (code, act_a, act_b) = activation.code();
        ConvUniforms {
            activation: code,
            act_a,
            act_b,
            has_residual: u32::from(has_residual),
            ..self
        }
    }
}
