//! Convolution parameters, output shapes and validation, with PyTorch's `nn.Conv2d` semantics.
//!
//! Nothing here knows about wgpu: [`Conv2dShape::new`] turns an input shape, a weight shape, an
//! optional bias shape and [`Conv2dParams`] into a fully resolved, validated problem that both the
//! CPU reference and the GPU path consume; [`ConvTranspose2dShape::new`] does the same for
//! [`ConvTranspose2dParams`].
//!
//! The forward convolution (with [`Padding`]) lives in `forward.rs`, the transposed one in
//! `transposed.rs`; what both check the same way, in `common.rs`.

#[macro_use]
mod common;
mod forward;
mod transposed;

pub use common::{parse_finite_f32, parse_numbers, parse_pair, parse_positive, IntoPair};
pub(crate) use common::{ConvParams, Shaped};
pub use forward::{conv_output_len, output_shape, Conv2dParams, Conv2dShape, Padding};
pub use transposed::{ConvTranspose2dParams, ConvTranspose2dShape};
