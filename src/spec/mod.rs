//! Convolution parameters, output shapes and validation, with PyTorch's `nn.Conv2d` semantics.
//!
//! Nothing here knows about wgpu: [`Conv2dShape::new`] turns an input shape, a weight shape, an
//! optional bias shape and [`Conv2dParams`] into a fully resolved, validated problem that both the
//! CPU reference and the GPU path consume; [`ConvTranspose2dShape::new`] does the same for
//! [`ConvTranspose2dParams`].
//!
//! The forward convolution (with [`Padding`]) lives in `forward.rs`, its checks over 1 to 3
//! spatial axes in `nd.rs` ([`ConvNdShape`], which conv1d and conv2d share), the transposed one in
//! `transposed.rs` (over 1 or 3 axes in `transposed_nd.rs`); what both check the same way, in `common.rs`.

mod activation;
mod args;
#[macro_use]
mod common;
mod forward;
mod mode;
mod nd;
mod transposed;
mod transposed_nd;

pub use activation::Activation;
pub use args::{spatial_dims_of, AxisValues, ConvArgs, PaddingArg};
pub use common::{parse_finite_f32, parse_numbers, parse_pair, parse_positive, IntoPair};
pub(crate) use common::{ConvParams, Shaped};
pub use forward::{output_shape, Conv2dParams, Conv2dShape, Padding};
pub use mode::PaddingMode;
pub use nd::{
    conv_output_len, Conv1dParams, Conv3dParams, ConvNdParams, ConvNdShape, IntoAxes, PaddingNd,
};
pub use transposed::{ConvTranspose2dParams, ConvTranspose2dShape};
pub use transposed_nd::{
    ConvTranspose1dParams, ConvTranspose3dParams, ConvTransposeNdParams, ConvTransposeNdShape,
};
