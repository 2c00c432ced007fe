//! The forward convolution: [`Padding`], [`Conv2dParams`] and the validated [`Conv2dShape`].

use super::common::{
    check_bias, check_groups_divide_weight, check_operands, check_positive, overflow, ConvParams,
    IntoPair, Shaped,
};
use crate::error::{Error, Result};

/// Zero padding around the input, PyTorch's `padding=` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Explicit zero rows/columns on each side (may be asymmetric).
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
    /// Output as large as the input: stride 1 only; per axis total `dilation*(k-1)`, the odd
    /// extra row/column going to the bottom/right, exactly as PyTorch.
    Same,
    /// No padding (PyTorch's `padding='valid'`).
    Valid,
}

impl Padding {
    /// The same padding on all four sides.
    pub const fn uniform(p: usize) -> Self {
        Padding::Explicit {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// `ph` rows above and below, `pw` columns left and right.
    pub const fn symmetric(ph: usize, pw: usize) -> Self {
        Padding::Explicit {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }

    /// Four independent sides.
    pub const fn explicit(top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        }
    }

    /// Resolves to `(top, bottom, left, right)` for a kernel `kh x kw` with dilation `(dh, dw)`.
    pub fn resolve(
        self,
        kernel: (usize, usize),
        dilation: (usize, usize),
    ) -> (usize, usize, usize, usize) {
        match self {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => (top, bottom, left, right),
            Padding::Valid => (0, 0, 0, 0),
            Padding::Same => {
                // Saturating: absurd sizes are refused later by the checked size arithmetic.
                let total_h = dilation.0.saturating_mul(kernel.0.saturating_sub(1));
                let total_w = dilation.1.saturating_mul(kernel.1.saturating_sub(1));
                (
                    total_h / 2,
                    total_h - total_h / 2,
                    total_w / 2,
                    total_w - total_w / 2,
                )
            }
        }
    }
}

impl Default for Padding {
    fn default() -> Self {
        Padding::uniform(0)
    }
}

impl From<usize> for Padding {
    fn from(p: usize) -> Self {
        Padding::uniform(p)
    }
}

impl From<(usize, usize)> for Padding {
    /// `(ph, pw)` as in PyTorch's `padding=(ph, pw)`.
    fn from((ph, pw): (usize, usize)) -> Self {
        Padding::symmetric(ph, pw)
    }
}

impl From<[usize; 4]> for Padding {
    /// `[top, bottom, left, right]`.
    fn from([t, b, l, r]: [usize; 4]) -> Self {
        Padding::explicit(t, b, l, r)
    }
}
/// Stride, padding, dilation and groups of a 2D convolution, as in `torch.nn.Conv2d`.
///
/// Built with the `with_*` methods; checked against the tensor shapes by [`Conv2dShape::new`].
///
/// ```
/// use wgconv::{Conv2dParams, Padding};
/// let p = Conv2dParams::default().with_stride(2).with_padding(Padding::uniform(1));
/// assert_eq!(wgconv::output_shape(&[1, 3, 8, 8], &[4, 3, 3, 3], &p).unwrap(), [1, 4, 4, 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    /// Zero padding.
    pub padding: Padding,
    /// `(dh, dw)`: spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Input and output channels are split into this many independent groups.
    pub groups: usize,
}

impl Default for Conv2dParams {
    /// PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1.
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: Padding::default(),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    setters! {
        /// Sets the stride from `s` or `(sh, sw)`.
        with_stride(stride: impl IntoPair) => into_pair;
        /// Sets the padding from `p`, `(ph, pw)`, `[top, bottom, left, right]` or a [`Padding`].
        with_padding(padding: impl Into<Padding>) => into;
        /// Sets the dilation from `d` or `(dh, dw)`.
        with_dilation(dilation: impl IntoPair) => into_pair;
        /// Sets the number of groups.
        with_groups(groups: usize);
    }
}

/// Output length along one axis: `floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1`.
///
/// `None` when the dilated kernel is longer than the padded input, or `stride`, `dilation` or `k`
/// is zero.
pub fn conv_output_len(
    n: usize,
    pad_total: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    if stride == 0 || dilation == 0 || k == 0 {
        return None;
    }
    let padded = n.checked_add(pad_total)?;
    let span = dilation.checked_mul(k - 1)?.checked_add(1)?;
    let room = padded.checked_sub(span)?;
    Some(room / stride + 1)
}

/// Output shape `[N, O, P, Q]` of a convolution of `input` `[N, C, H, W]` with `weight`
/// `[O, C/groups, kh, kw]`.
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`].
pub fn output_shape(
    input: &[usize],
    weight: &[usize],
    params: &Conv2dParams,
) -> Result<[usize; 4]> {
    Ok(Conv2dShape::new(input, weight, None, params)?.output_shape())
}

/// A validated convolution problem with every size resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Batch size N (may be 0).
    pub batch: usize,
    /// Input channels C.
    pub in_channels: usize,
    /// Input height H.
    pub in_h: usize,
    /// Input width W.
    pub in_w: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Kernel height kh.
    pub kernel_h: usize,
    /// Kernel width kw.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows above.
    pub pad_top: usize,
    /// Zero rows below.
    pub pad_bottom: usize,
    /// Zero columns left.
    pub pad_left: usize,
    /// Zero columns right.
    pub pad_right: usize,
    /// Vertical dilation.
    pub dilation_h: usize,
    /// Horizontal dilation.
    pub dilation_w: usize,
    /// Groups.
    pub groups: usize,
    /// Whether a bias is added.
    pub has_bias: bool,
    /// Output height P.
    pub out_h: usize,
    /// Output width Q.
    pub out_w: usize,
}

impl Conv2dShape {
    /// Validates shapes and parameters, in PyTorch's order, and resolves padding and output size.
    ///
    /// `bias` is the bias tensor's shape, if there is one.
    ///
    /// # Errors
    /// [`Error::NonPositive`], [`Error::InputRank`], [`Error::WeightRank`],
    /// [`Error::EmptyDimension`], [`Error::SameWithStride`], [`Error::OutChannelsNotDivisible`],
    /// [`Error::InChannelsNotDivisible`], [`Error::ChannelMismatch`], [`Error::BiasShape`],
    /// [`Error::KernelTooLarge`], [`Error::SizeOverflow`].
    pub fn new(
        input: &[usize],
        weight: &[usize],
        bias: Option<&[usize]>,
        params: &Conv2dParams,
    ) -> Result<Self> {
        let (sh, sw) = params.stride;
        let (dh, dw) = params.dilation;
        let groups = params.groups;
        check_positive(params.stride, params.dilation, groups)?;
        let ([n, c, h, w], [o, cg, kh, kw]) = check_operands(input, weight)?;
        if params.padding == Padding::Same && (sh != 1 || sw != 1) {
            return Err(Error::SameWithStride {
                stride_h: sh,
                stride_w: sw,
            });
        }
        check_groups_divide_weight(weight, groups)?;
        if c % groups != 0 {
            return Err(Error::InChannelsNotDivisible {
                groups,
                input: input.to_vec(),
                channels: c,
            });
        }
        let expected = cg
            .checked_mul(groups)
            .ok_or_else(|| overflow(&format!("weight[1] * groups = {cg} * {groups}")))?;
        if c != expected {
            return Err(Error::ChannelMismatch {
                groups,
                weight: weight.to_vec(),
                input: input.to_vec(),
                expected,
                got: c,
            });
        }
        check_bias(bias, o, |got| Error::BiasShape {
            weight: weight.to_vec(),
            expected: o,
            got,
        })?;
        let (top, bottom, left, right) = params.padding.resolve((kh, kw), (dh, dw));
        let padded_h = h.checked_add(top).and_then(|v| v.checked_add(bottom));
        let padded_w = w.checked_add(left).and_then(|v| v.checked_add(right));
        let span_h = dh.checked_mul(kh - 1).and_then(|v| v.checked_add(1));
        let span_w = dw.checked_mul(kw - 1).and_then(|v| v.checked_add(1));
        let (Some(padded_h), Some(padded_w), Some(span_h), Some(span_w)) =
            (padded_h, padded_w, span_h, span_w)
        else {
            return Err(overflow(&format!(
                "padded input size (H {h} + padding {top} + {bottom}, W {w} + padding {left} + {right}) \
                 or dilated kernel size (kernel {kh}x{kw}, dilation ({dh}, {dw}))"
            )));
        };
        let out_h = conv_output_len(h, top + bottom, kh, sh, dh);
        let out_w = conv_output_len(w, left + right, kw, sw, dw);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(Error::KernelTooLarge {
                padded_h,
                padded_w,
                kernel_h: span_h,
                kernel_w: span_w,
            });
        };
        Conv2dShape {
            batch: n,
            in_channels: c,
            in_h: h,
            in_w: w,
            out_channels: o,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: top,
            pad_bottom: bottom,
            pad_left: left,
            pad_right: right,
            dilation_h: dh,
            dilation_w: dw,
            groups,
            has_bias: bias.is_some(),
            out_h,
            out_w,
        }
        .with_checked_sizes()
    }

    tensor_shapes! {
        input: "`[N, C, H, W]`.",
        weight: "`[O, C/groups, kh, kw]`." = [out_channels, in_channels / groups],
        output: "`[N, O, P, Q]`.",
    }

    /// The parameters that give this shape: its stride, its padding (explicit, as resolved),
    /// dilation and groups.
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: (self.stride_h, self.stride_w),
            padding: Padding::explicit(
                self.pad_top,
                self.pad_bottom,
                self.pad_left,
                self.pad_right,
            ),
            dilation: (self.dilation_h, self.dilation_w),
            groups: self.groups,
        }
    }

    /// Input channels seen by one output channel: `C / groups`.
    pub fn in_channels_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group: `O / groups`.
    pub fn out_channels_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Length of each output's dot product: `C/groups * kh * kw`.
    pub fn reduction_len(&self) -> usize {
        self.in_channels_per_group() * self.kernel_h * self.kernel_w
    }

    /// Floating-point operations, counting a multiply-add as two: `2 * N*O*P*Q * C/groups*kh*kw`
    /// (saturating at `u64::MAX`).
    pub fn flops(&self) -> u64 {
        (self.output_len() as u64)
            .saturating_mul(self.reduction_len() as u64)
            .saturating_mul(2)
    }
}

/// Padding as the command line writes it: `P`, `PH,PW`, `T,B,L,R`, `same` or `valid`.
impl std::str::FromStr for Padding {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "same" => return Ok(Padding::Same),
            "valid" => return Ok(Padding::Valid),
            _ => {}
        }
        match super::common::parse_numbers(s)?.as_slice() {
            [p] => Ok(Padding::uniform(*p)),
            [h, w] => Ok(Padding::symmetric(*h, *w)),
            [t, b, l, r] => Ok(Padding::explicit(*t, *b, *l, *r)),
            other => Err(format!(
                "expected 1, 2 or 4 numbers, 'same' or 'valid', got {} numbers",
                other.len()
            )),
        }
    }
}

impl ConvParams for Conv2dParams {
    type Shape = Conv2dShape;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<Conv2dShape> {
        Conv2dShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}
