//! Convolutions whose number of spatial axes comes with the data, as `wgconv run` gets them:
//! the weight's rank picks conv1d, conv2d or conv3d ([`spatial_dims_of`]).

use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::spec::{spatial_dims_of, ConvArgs};
use crate::tensor::Tensor;

impl Engine {
    /// [`Engine::conv1d_fused`], [`Engine::conv2d_fused`] or [`Engine::conv3d_fused`], as the
    /// weight's rank (3, 4 or 5) says, with `args` resolved for its axes (its activation
    /// included) and `residual`, when given, added before the activation.
    ///
    /// # Errors
    /// [`Error::WeightRank`](crate::Error::WeightRank) for another rank,
    /// [`Error::AxisCount`](crate::Error::AxisCount), and the operation's own errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn conv_by_rank(
        &self,
        input: &Tensor,
        weight: &Tensor,
        (bias, residual): (Option<&Tensor>, Option<&Tensor>),
        args: &ConvArgs,
    ) -> Result<Tensor> {
        match spatial_dims_of(weight.shape())? {
            1 => self.conv1d_fused(input, weight, bias, residual, &args.params()?),
            2 => self.conv2d_fused(input, weight, bias, residual, &(&args.params()?).into()),
            _ => self.conv3d_fused(input, weight, bias, residual, &args.params()?),
        }
    }
}

/// The CPU reference's [`Engine::conv_by_rank`]:
/// [`conv_nd_fused`](crate::cpu::reference::conv_nd_fused) over the axes the weight's rank says.
///
/// # Errors
/// As [`Engine::conv_by_rank`].
pub fn reference_by_rank(
    input: &Tensor,
    weight: &Tensor,
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    args: &ConvArgs,
) -> Result<Tensor> {
    use crate::cpu::reference::conv_nd_fused;
    match spatial_dims_of(weight.shape())? {
        1 => conv_nd_fused(input, weight, bias, residual, &args.params::<1>()?),
        2 => conv_nd_fused(input, weight, bias, residual, &args.params::<2>()?),
        _ => conv_nd_fused(input, weight, bias, residual, &args.params::<3>()?),
    }
}
