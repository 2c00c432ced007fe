//! Transposed convolutions over 1 or 3 spatial axes, as PyTorch's `conv_transpose1d` and
//! `conv_transpose3d`: [`ConvTransposeNdParams`] and the validated [`ConvTransposeNdShape`]
//! (the 2D one is [`ConvTranspose2dShape`], which a 1D one lowers to, as PyTorch runs it).
//!
//! Input `[N, Ci, *in]` or unbatched `[Ci, *in]`, weight `[Ci, Co/groups, *kernel]`, output
//! `[N, Co, *out]`, per axis `out = (in - 1) * stride - 2 * padding + dilation * (k - 1) +
//! output_padding + 1`: the gradient of the convolution of an input `[N, Co, *out]` with respect
//! to that input.

use super::activation::Activation;
use super::common::{
    check_bias, check_groups_divide_weight, check_positive_axes, check_ranks, overflow, ConvParams,
    Shaped,
};
use super::mode::PaddingMode;
use super::nd::{ConvNdShape, IntoAxes};
use super::transposed::ConvTranspose2dShape;
use crate::error::{Error, Result};

/// Stride, padding, output padding, dilation and groups of a transposed convolution over `N`
/// spatial axes (`torch.nn.ConvTranspose1d`, `N = 1`, or `ConvTranspose3d`, `N = 3`), axes in
/// order (D, H, W).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTransposeNdParams<const N: usize> {
    /// Stride per axis.
    pub stride: [usize; N],
    /// Per axis: elements removed on each side of the full output.
    pub padding: [usize; N],
    /// Per axis: extra elements at the end, each smaller than the stride or the dilation of its
    /// axis.
    pub output_padding: [usize; N],
    /// Dilation per axis.
    pub dilation: [usize; N],
    /// Channel groups.
    pub groups: usize,
}

/// A 1D transposed convolution's parameters (`torch.nn.ConvTranspose1d`).
pub type ConvTranspose1dParams = ConvTransposeNdParams<1>;

/// A 3D transposed convolution's parameters (`torch.nn.ConvTranspose3d`).
pub type ConvTranspose3dParams = ConvTransposeNdParams<3>;

impl<const N: usize> Default for ConvTransposeNdParams<N> {
    /// PyTorch's defaults: stride 1, padding 0, output padding 0, dilation 1, groups 1.
    fn default() -> Self {
        ConvTransposeNdParams {
            stride: [1; N],
            padding: [0; N],
            output_padding: [0; N],
            dilation: [1; N],
            groups: 1,
        }
    }
}

impl<const N: usize> ConvTransposeNdParams<N> {
    /// Sets the stride from one number or one per axis.
    pub fn with_stride(mut self, stride: impl IntoAxes<N>) -> Self {
        self.stride = stride.into_axes();
        self
    }

    /// Sets the padding from one number or one per axis.
    pub fn with_padding(mut self, padding: impl IntoAxes<N>) -> Self {
        self.padding = padding.into_axes();
        self
    }

    /// Sets the output padding from one number or one per axis.
    pub fn with_output_padding(mut self, output_padding: impl IntoAxes<N>) -> Self {
        self.output_padding = output_padding.into_axes();
        self
    }

    /// Sets the dilation from one number or one per axis.
    pub fn with_dilation(mut self, dilation: impl IntoAxes<N>) -> Self {
        self.dilation = dilation.into_axes();
        self
    }

    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// A validated transposed convolution over `N` spatial axes with every size resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTransposeNdShape<const N: usize> {
    /// Batch size (1 for an unbatched input; may be 0).
    pub batch: usize,
    /// Whether the input (and so the output) has no batch dimension.
    pub unbatched: bool,
    /// Ci (`weight[0]`).
    pub in_channels: usize,
    /// Co (`weight[1] * groups`).
    pub out_channels: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether a bias `[Co]` is added.
    pub has_bias: bool,
    /// Input length per axis.
    pub input: [usize; N],
    /// Kernel length per axis.
    pub kernel: [usize; N],
    /// Output length per axis.
    pub output: [usize; N],
    /// Stride per axis.
    pub stride: [usize; N],
    /// Padding per axis.
    pub padding: [usize; N],
    /// Output padding per axis.
    pub output_padding: [usize; N],
    /// Dilation per axis.
    pub dilation: [usize; N],
}

/// The operation's name in messages.
const fn op_name(spatial: usize) -> &'static str {
    match spatial {
        1 => "conv_transpose1d",
        2 => "conv_transpose2d",
        _ => "conv_transpose3d",
    }
}

/// The weight's layout in messages.
const fn weight_layout(spatial: usize) -> &'static str {
    match spatial {
        1 => "3D weight [Ci, Co/groups, k]",
        2 => "4D weight [Ci, Co/groups, kh, kw]",
        _ => "5D weight [Ci, Co/groups, kd, kh, kw]",
    }
}

/// Per-axis values as PyTorch reports a conv_transpose1d's, as the 2D problem it runs (`pad`
/// for the height), otherwise as they are.
fn reported<const N: usize>(values: [usize; N], pad: usize) -> Vec<usize> {
    if N == 1 {
        vec![pad, values[0]]
    } else {
        values.to_vec()
    }
}

impl<const N: usize> ConvTransposeNdShape<N> {
    /// Validates shapes and parameters in PyTorch's order and computes the output size.
    ///
    /// # Errors
    /// [`Error::SpatialDims`] unless `N` is 1, 2 or 3; [`Error::NonPositive`],
    /// [`Error::OutputPaddingTooLarge`], [`Error::InputRank`], [`Error::WeightRank`],
    /// [`Error::EmptyDimension`], [`Error::OutChannelsNotDivisible`] (for `weight[0]`),
    /// [`Error::TransposedChannelMismatch`], [`Error::TransposedBiasShape`],
    /// [`Error::TransposedOutputTooSmall`], [`Error::SizeOverflow`].
    pub fn new(
        input: &[usize],
        weight: &[usize],
        bias: Option<&[usize]>,
        params: &ConvTransposeNdParams<N>,
    ) -> Result<Self> {
        if !(1..=3).contains(&N) {
            return Err(Error::SpatialDims { dims: N });
        }
        check_positive_axes(&params.stride, &params.dilation, params.groups)?;
        let (s, d, op) = (params.stride, params.dilation, params.output_padding);
        if (0..N).any(|a| op[a] >= s[a] && op[a] >= d[a]) {
            return Err(Error::OutputPaddingTooLarge {
                output_padding: reported(op, 0),
                stride: reported(s, 1),
                dilation: reported(d, 1),
            });
        }
        let (unbatched, batch, image) =
            check_ranks(op_name(N), N, weight_layout(N), input, weight)?;
        check_groups_divide_weight(weight, params.groups)?;
        let (ci, wi, cog) = (image[0], weight[0], weight[1]);
        if ci != wi {
            // PyTorch names an unbatched input by the batch of one it runs as.
            let named = if unbatched {
                [&[1][..], input].concat()
            } else {
                input.to_vec()
            };
            return Err(Error::TransposedChannelMismatch {
                weight: weight.to_vec(),
                input: named,
                expected: wi,
                got: ci,
            });
        }
        let co = cog
            .checked_mul(params.groups)
            .ok_or_else(|| overflow("weight[1] * groups"))?;
        check_bias(bias, co, |got| Error::TransposedBiasShape {
            weight: weight.to_vec(),
            expected: co,
            got,
        })?;
        let spatial: [usize; N] = std::array::from_fn(|a| image[1 + a]);
        let kernel: [usize; N] = std::array::from_fn(|a| weight[2 + a]);
        // (n-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1, in checked i128.
        let len = |a: usize| {
            let grown = (spatial[a] as i128 - 1).checked_mul(s[a] as i128)?;
            let reach = (d[a] as i128).checked_mul(kernel[a] as i128 - 1)?;
            grown
                .checked_add(reach)?
                .checked_sub((params.padding[a] as i128).checked_mul(2)?)?
                .checked_add(op[a] as i128 + 1)
        };
        let mut lens = [0i128; N];
        for (a, l) in lens.iter_mut().enumerate() {
            *l = len(a).ok_or_else(|| overflow("transposed convolution output size"))?;
        }
        if lens.iter().any(|&l| l <= 0) {
            let output = if N == 1 {
                vec![1, lens[0]]
            } else {
                lens.to_vec()
            };
            return Err(Error::TransposedOutputTooSmall {
                input: reported(spatial, 1),
                output,
            });
        }
        let mut output = [0usize; N];
        for a in 0..N {
            output[a] = usize::try_from(lens[a])
                .map_err(|_| overflow("transposed convolution output size"))?;
        }
        let shape = ConvTransposeNdShape {
            batch,
            unbatched,
            in_channels: ci,
            out_channels: co,
            groups: params.groups,
            has_bias: bias.is_some(),
            input: spatial,
            kernel,
            output,
            stride: s,
            padding: params.padding,
            output_padding: op,
            dilation: d,
        };
        super::common::check_byte_sizes(&[
            ("input", &shape.input_shape()),
            ("weight", &shape.weight_shape()),
            ("output", &shape.output_shape()),
        ])?;
        Ok(shape)
    }

    /// The input's shape as given: `[N, Ci, *in]`, or `[Ci, *in]` unbatched.
    pub fn input_shape(&self) -> Vec<usize> {
        self.with_batch(self.in_channels, &self.input)
    }

    /// `[Ci, Co/groups, *kernel]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        let mut shape = vec![self.in_channels, self.out_channels / self.groups];
        shape.extend(self.kernel);
        shape
    }

    /// The output's shape: `[N, Co, *out]`, or `[Co, *out]` unbatched.
    pub fn output_shape(&self) -> Vec<usize> {
        self.with_batch(self.out_channels, &self.output)
    }

    fn with_batch(&self, channels: usize, spatial: &[usize; N]) -> Vec<usize> {
        let mut shape = if self.unbatched {
            vec![channels]
        } else {
            vec![self.batch, channels]
        };
        shape.extend(spatial);
        shape
    }

    /// Output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Floating-point operations of the dense product, counting a multiply-add as two:
    /// `2 * N * Ci * prod(in) * Co/groups * prod(kernel)` (saturating), the same as the
    /// convolution it is the gradient of.
    pub fn flops(&self) -> u64 {
        let taps: usize = self.kernel.iter().product();
        (self.batch as u64)
            .saturating_mul(self.in_channels as u64)
            .saturating_mul(self.input.iter().product::<usize>() as u64)
            .saturating_mul((self.out_channels / self.groups) as u64)
            .saturating_mul(taps as u64)
            .saturating_mul(2)
    }

    /// The sizes of the convolution whose input gradient this is, batched: input `[N, Co, *out]`,
    /// weight `[Ci, Co/groups, *kernel]`, output `[N, Ci, *in]`, `padding` before. The padding
    /// after, which only sets that convolution's output length and which its input gradient never
    /// reads, is what makes `in` outputs (`padding - output_padding`), or 0 where an output
    /// padding past `padding` would need less than none: the gradient's kernels read the sizes,
    /// not that formula.
    pub fn forward(&self) -> ConvNdShape<N> {
        let after: [usize; N] =
            std::array::from_fn(|a| self.padding[a].saturating_sub(self.output_padding[a]));
        ConvNdShape {
            batch: self.batch,
            unbatched: false,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            groups: self.groups,
            has_bias: false,
            input: self.output,
            kernel: self.kernel,
            output: self.input,
            stride: self.stride,
            dilation: self.dilation,
            padding: std::array::from_fn(|a| [self.padding[a], after[a]]),
            padding_mode: PaddingMode::Zeros,
            activation: Activation::None,
            has_residual: false,
            flip_kernel: false,
        }
    }
}

impl ConvTransposeNdShape<1> {
    /// The same problem as a 2D transposed convolution of height 1 (`[N, Ci, 1, L]` by
    /// `[Ci, Co/groups, 1, k]`), which is how PyTorch and the GPU run it.
    pub fn as_transposed2d(&self) -> ConvTranspose2dShape {
        ConvTranspose2dShape {
            batch: self.batch,
            in_channels: self.in_channels,
            in_h: 1,
            in_w: self.input[0],
            out_channels: self.out_channels,
            out_h: 1,
            out_w: self.output[0],
            kernel_h: 1,
            kernel_w: self.kernel[0],
            stride_h: 1,
            stride_w: self.stride[0],
            pad_top: 0,
            pad_left: self.padding[0],
            dilation_h: 1,
            dilation_w: self.dilation[0],
            groups: self.groups,
            has_bias: self.has_bias,
        }
    }
}

impl<const N: usize> ConvParams for ConvTransposeNdParams<N> {
    type Shape = ConvTransposeNdShape<N>;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<ConvTransposeNdShape<N>> {
        ConvTransposeNdShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}
