//! The transposed convolution: [`ConvTranspose2dParams`] and the validated [`ConvTranspose2dShape`].

use super::common::{
    check_bias, check_groups_divide_weight, check_operands, check_positive, overflow, ConvParams,
    IntoPair, Shaped,
};
use super::forward::Conv2dShape;
use crate::error::{Error, Result};

/// Stride, padding, output padding, dilation and groups of a transposed convolution, as in
/// `torch.nn.ConvTranspose2d` (whose forward pass is the gradient of a convolution with respect to
/// its input).
///
/// Output length per axis: `(n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dParams {
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    /// `(ph, pw)`: rows and columns removed on each side of the full output.
    pub padding: (usize, usize),
    /// `(oph, opw)`: extra rows and columns added at the bottom and right, each smaller than the
    /// stride or the dilation of its axis; picks one of the input sizes a strided convolution
    /// maps to the same output size.
    pub output_padding: (usize, usize),
    /// `(dh, dw)`.
    pub dilation: (usize, usize),
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    /// PyTorch's defaults: stride 1, padding 0, output padding 0, dilation 1, groups 1.
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    setters! {
        /// Sets the stride from `s` or `(sh, sw)`.
        with_stride(stride: impl IntoPair) => into_pair;
        /// Sets the padding from `p` or `(ph, pw)`.
        with_padding(padding: impl IntoPair) => into_pair;
        /// Sets the output padding from `p` or `(oph, opw)`.
        with_output_padding(output_padding: impl IntoPair) => into_pair;
        /// Sets the dilation from `d` or `(dh, dw)`.
        with_dilation(dilation: impl IntoPair) => into_pair;
        /// Sets the number of groups.
        with_groups(groups: usize);
    }
}

/// A validated transposed convolution: input `[N, Ci, P, Q]`, weight `[Ci, Co/groups, kh, kw]`,
/// output `[N, Co, H, W]`, where
/// `out[n, c, h, w] = bias[c] + sum over o in c's group, i, j of in[n, o, p, q] * weight[o, c mod Co/groups, i, j]`
/// for every `p = (h + pad_top - i*dh) / sh` and `q = (w + pad_left - j*dw) / sw` that divide
/// exactly and lie inside the input. This is the gradient of the convolution whose input is
/// `[N, Co, H, W]` with respect to that input ([`ConvTranspose2dShape::input_gradient_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dShape {
    /// N.
    pub batch: usize,
    /// Ci (`weight[0]`).
    pub in_channels: usize,
    /// P.
    pub in_h: usize,
    /// Q.
    pub in_w: usize,
    /// Co (`weight[1] * groups`).
    pub out_channels: usize,
    /// H.
    pub out_h: usize,
    /// W.
    pub out_w: usize,
    /// kh.
    pub kernel_h: usize,
    /// kw.
    pub kernel_w: usize,
    /// sh.
    pub stride_h: usize,
    /// sw.
    pub stride_w: usize,
    /// Rows removed at the top of the full output.
    pub pad_top: usize,
    /// Columns removed at the left of the full output.
    pub pad_left: usize,
    /// dh.
    pub dilation_h: usize,
    /// dw.
    pub dilation_w: usize,
    /// Channel groups.
    pub groups: usize,
    /// Whether a bias `[Co]` is added.
    pub has_bias: bool,
}

impl ConvTranspose2dShape {
    /// Validates shapes and parameters as PyTorch's `conv_transpose2d` does and computes the
    /// output size.
    ///
    /// # Errors
    /// [`Error::NonPositive`], [`Error::InputRank`], [`Error::WeightRank`],
    /// [`Error::EmptyDimension`], [`Error::OutputPaddingTooLarge`],
    /// [`Error::OutChannelsNotDivisible`] (for `weight[0]`), [`Error::TransposedChannelMismatch`],
    /// [`Error::TransposedBiasShape`], [`Error::TransposedOutputTooSmall`], [`Error::SizeOverflow`].
    pub fn new(
        input: &[usize],
        weight: &[usize],
        bias: Option<&[usize]>,
        params: &ConvTranspose2dParams,
    ) -> Result<Self> {
        let (sh, sw) = params.stride;
        let (dh, dw) = params.dilation;
        let (oph, opw) = params.output_padding;
        let groups = params.groups;
        check_positive(params.stride, params.dilation, groups)?;
        if (oph >= sh && oph >= dh) || (opw >= sw && opw >= dw) {
            let pair = |(a, b): (usize, usize)| vec![a, b];
            return Err(Error::OutputPaddingTooLarge {
                output_padding: pair(params.output_padding),
                stride: pair(params.stride),
                dilation: pair(params.dilation),
            });
        }
        let ([n, ci, p, q], [wi, cog, kh, kw]) = check_operands(input, weight)?;
        check_groups_divide_weight(weight, groups)?;
        if ci != wi {
            return Err(Error::TransposedChannelMismatch {
                weight: weight.to_vec(),
                input: input.to_vec(),
                expected: wi,
                got: ci,
            });
        }
        let co = cog
            .checked_mul(groups)
            .ok_or_else(|| overflow("weight[1] * groups"))?;
        check_bias(bias, co, |got| Error::TransposedBiasShape {
            weight: weight.to_vec(),
            expected: co,
            got,
        })?;
        // (n-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1, in checked i128 (every
        // term fits; a product of two usizes may not).
        let len = |n: usize, s: usize, pad: usize, d: usize, k: usize, op: usize| {
            let grown = (n as i128 - 1).checked_mul(s as i128)?;
            let reach = (d as i128).checked_mul(k as i128 - 1)?;
            grown
                .checked_add(reach)?
                .checked_sub(2 * pad as i128)?
                .checked_add(op as i128 + 1)
        };
        let (Some(out_h), Some(out_w)) = (
            len(p, sh, params.padding.0, dh, kh, oph),
            len(q, sw, params.padding.1, dw, kw, opw),
        ) else {
            return Err(overflow("transposed convolution output size"));
        };
        if out_h <= 0 || out_w <= 0 {
            return Err(Error::TransposedOutputTooSmall {
                input: vec![p, q],
                output: vec![out_h, out_w],
            });
        }
        let (Ok(out_h), Ok(out_w)) = (usize::try_from(out_h), usize::try_from(out_w)) else {
            return Err(overflow("transposed convolution output size"));
        };
        ConvTranspose2dShape {
            batch: n,
            in_channels: ci,
            in_h: p,
            in_w: q,
            out_channels: co,
            out_h,
            out_w,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: params.padding.0,
            pad_left: params.padding.1,
            dilation_h: dh,
            dilation_w: dw,
            groups,
            has_bias: bias.is_some(),
        }
        .with_checked_sizes()
    }

    /// The transposed convolution that computes the gradient of `conv`'s loss with respect to its
    /// input from the gradient with respect to its output (its input is `conv`'s output shape,
    /// its output `conv`'s input shape, the weights are `conv`'s, unchanged).
    pub fn input_gradient_of(conv: &Conv2dShape) -> Self {
        ConvTranspose2dShape {
            batch: conv.batch,
            in_channels: conv.out_channels,
            in_h: conv.out_h,
            in_w: conv.out_w,
            out_channels: conv.in_channels,
            out_h: conv.in_h,
            out_w: conv.in_w,
            kernel_h: conv.kernel_h,
            kernel_w: conv.kernel_w,
            stride_h: conv.stride_h,
            stride_w: conv.stride_w,
            pad_top: conv.pad_top,
            pad_left: conv.pad_left,
            dilation_h: conv.dilation_h,
            dilation_w: conv.dilation_w,
            groups: conv.groups,
            has_bias: false,
        }
    }

    tensor_shapes! {
        input: "`[N, Ci, P, Q]`.",
        weight: "`[Ci, Co/groups, kh, kw]`." = [in_channels, out_channels / groups],
        output: "`[N, Co, H, W]`.",
    }

    /// Floating-point operations of the dense product, counting a multiply-add as two:
    /// `2 * N * Ci * P * Q * Co/groups * kh * kw` (saturating), the same as the convolution it
    /// is the gradient of.
    pub fn flops(&self) -> u64 {
        (self.input_len() as u64)
            .saturating_mul((self.out_channels / self.groups) as u64)
            .saturating_mul((self.kernel_h * self.kernel_w) as u64)
            .saturating_mul(2)
    }
}

impl ConvParams for ConvTranspose2dParams {
    type Shape = ConvTranspose2dShape;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<ConvTranspose2dShape> {
        ConvTranspose2dShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}
