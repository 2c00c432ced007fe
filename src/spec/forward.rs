//! The forward convolution: [`Padding`], [`Conv2dParams`] and the validated [`Conv2dShape`].

use super::activation::Activation;
use super::common::{check_byte_sizes, ConvParams, IntoPair, Shaped};
use super::mode::PaddingMode;
use super::nd::{ConvNdParams, ConvNdShape, PaddingNd};
use crate::error::Result;

/// Padding amounts around the input, PyTorch's `padding=` argument (what the padding holds is
/// the [`PaddingMode`]).
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
    /// Padding amounts.
    pub padding: Padding,
    /// What the padding holds (PyTorch's `padding_mode`).
    pub padding_mode: PaddingMode,
    /// `(dh, dw)`: spacing between kernel taps.
    pub dilation: (usize, usize),
    /// Input and output channels are split into this many independent groups.
    pub groups: usize,
    /// The activation the fused epilogue applies to `conv + bias + residual`.
    pub activation: Activation,
    /// True convolution: the kernel turned 180 degrees ([`ConvNdParams::flip_kernel`]).
    pub flip_kernel: bool,
}

impl Default for Conv2dParams {
    /// PyTorch's defaults: stride 1, padding 0 (zeros), dilation 1, groups 1.
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: Padding::default(),
            padding_mode: PaddingMode::Zeros,
            dilation: (1, 1),
            groups: 1,
            activation: Activation::None,
            flip_kernel: false,
        }
    }
}

impl Conv2dParams {
    setters! {
        /// Sets the stride from `s` or `(sh, sw)`.
        with_stride(stride: impl IntoPair) => into_pair;
        /// Sets the padding from `p`, `(ph, pw)`, `[top, bottom, left, right]` or a [`Padding`].
        with_padding(padding: impl Into<Padding>) => into;
        /// Sets what the padding holds.
        with_padding_mode(padding_mode: PaddingMode);
        /// Sets the dilation from `d` or `(dh, dw)`.
        with_dilation(dilation: impl IntoPair) => into_pair;
        /// Sets the number of groups.
        with_groups(groups: usize);
        /// Sets the fused epilogue's activation.
        with_activation(activation: Activation);
        /// Sets whether the kernel is turned 180 degrees (true convolution).
        with_flip_kernel(flip_kernel: bool);
    }
}

/// Output shape `[N, O, P, Q]` of a convolution of `input` `[N, C, H, W]` with `weight`
/// `[O, C/groups, kh, kw]` (`[O, P, Q]` for an unbatched input `[C, H, W]`).
///
/// # Errors
/// Every shape or parameter error of [`Conv2dShape::new`].
pub fn output_shape(
    input: &[usize],
    weight: &[usize],
    params: &Conv2dParams,
) -> Result<Vec<usize>> {
    Ok(ConvNdShape::<2>::new(input, weight, None, &params.into())?.output_shape())
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
    /// What the padding holds.
    pub padding_mode: PaddingMode,
    /// The activation of the fused epilogue.
    pub activation: Activation,
    /// Whether the fused epilogue adds a residual (a tensor of the output's shape) before it.
    pub has_residual: bool,
    /// Whether the kernel is turned 180 degrees ([`ConvNdParams::flip_kernel`]).
    pub flip_kernel: bool,
}

impl Conv2dShape {
    /// Validates shapes and parameters, in PyTorch's order, and resolves padding and output size,
    /// as [`ConvNdShape::new`] does; an unbatched input `[C, H, W]` is a batch of one.
    ///
    /// `bias` is the bias tensor's shape, if there is one.
    ///
    /// # Errors
    /// Every error of [`ConvNdShape::new`]: [`NonPositive`](crate::Error::NonPositive),
    /// [`InputRank`](crate::Error::InputRank), [`WeightRank`](crate::Error::WeightRank),
    /// [`EmptyDimension`](crate::Error::EmptyDimension),
    /// [`SameWithStride`](crate::Error::SameWithStride),
    /// [`OutChannelsNotDivisible`](crate::Error::OutChannelsNotDivisible),
    /// [`InChannelsNotDivisible`](crate::Error::InChannelsNotDivisible),
    /// [`ChannelMismatch`](crate::Error::ChannelMismatch), [`BiasShape`](crate::Error::BiasShape),
    /// [`KernelTooLarge`](crate::Error::KernelTooLarge), [`SizeOverflow`](crate::Error::SizeOverflow).
    pub fn new(
        input: &[usize],
        weight: &[usize],
        bias: Option<&[usize]>,
        params: &Conv2dParams,
    ) -> Result<Self> {
        ConvNdShape::<2>::new(input, weight, bias, &params.into())?
            .as_conv2d()
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
            padding_mode: self.padding_mode,
            dilation: (self.dilation_h, self.dilation_w),
            groups: self.groups,
            activation: self.activation,
            flip_kernel: self.flip_kernel,
        }
    }

    /// Whether some padding reads the input (a [`PaddingMode`] other than zeros, and a side
    /// padded): what a kernel or pass that knows only zero padding cannot run.
    pub fn pads_with_mode(&self) -> bool {
        self.padding_mode != PaddingMode::Zeros
            && self.pad_top + self.pad_bottom + self.pad_left + self.pad_right > 0
    }

    /// The same convolution over the input with its padding written out: input
    /// `[N, C, H + top + bottom, W + left + right]`, no padding. What a padding mode computes,
    /// padded first (PyTorch's `F.pad`, then an unpadded convolution); its output is this one's.
    ///
    /// # Errors
    /// [`SizeOverflow`](crate::Error::SizeOverflow) when a padded size overflows.
    pub fn over_padded_input(&self) -> Result<Conv2dShape> {
        let grow = |n: usize, before: usize, after: usize| {
            n.checked_add(before)
                .and_then(|v| v.checked_add(after))
                .ok_or_else(|| crate::error::Error::SizeOverflow {
                    what: format!("the padded input size {n} + {before} + {after}"),
                })
        };
        let unpadded = Conv2dParams {
            padding: Padding::explicit(0, 0, 0, 0),
            padding_mode: PaddingMode::Zeros,
            ..self.params()
        };
        Conv2dShape::new(
            &[
                self.batch,
                self.in_channels,
                grow(self.in_h, self.pad_top, self.pad_bottom)?,
                grow(self.in_w, self.pad_left, self.pad_right)?,
            ],
            &self.weight_shape(),
            self.has_bias.then_some(&[self.out_channels][..]),
            &unpadded,
        )
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

impl From<Padding> for PaddingNd<2> {
    fn from(p: Padding) -> Self {
        match p {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => PaddingNd::Explicit([[top, bottom], [left, right]]),
            Padding::Same => PaddingNd::Same,
            Padding::Valid => PaddingNd::Valid,
        }
    }
}

impl From<&Conv2dParams> for ConvNdParams<2> {
    fn from(p: &Conv2dParams) -> Self {
        ConvNdParams {
            stride: [p.stride.0, p.stride.1],
            padding: p.padding.into(),
            padding_mode: p.padding_mode,
            dilation: [p.dilation.0, p.dilation.1],
            groups: p.groups,
            activation: p.activation,
            flip_kernel: p.flip_kernel,
        }
    }
}

impl ConvNdShape<1> {
    /// The same problem as a 2D convolution of height 1 (`[N, C, 1, L]` by `[O, C/groups, 1, k]`),
    /// which is how the GPU runs it: every 2D kernel, split and gradient serves a 1D one.
    pub fn as_conv2d(&self) -> Conv2dShape {
        let [[before, after]] = self.padding;
        Conv2dShape {
            batch: self.batch,
            in_channels: self.in_channels,
            in_h: 1,
            in_w: self.input[0],
            out_channels: self.out_channels,
            kernel_h: 1,
            kernel_w: self.kernel[0],
            stride_h: 1,
            stride_w: self.stride[0],
            pad_top: 0,
            pad_bottom: 0,
            pad_left: before,
            pad_right: after,
            dilation_h: 1,
            dilation_w: self.dilation[0],
            groups: self.groups,
            has_bias: self.has_bias,
            out_h: 1,
            out_w: self.output[0],
            padding_mode: self.padding_mode,
            activation: self.activation,
            has_residual: self.has_residual,
            flip_kernel: self.flip_kernel,
        }
    }
}

impl ConvNdShape<2> {
    /// The batched 2D problem (an unbatched input is a batch of one).
    pub fn as_conv2d(&self) -> Conv2dShape {
        let [[top, bottom], [left, right]] = self.padding;
        Conv2dShape {
            batch: self.batch,
            in_channels: self.in_channels,
            in_h: self.input[0],
            in_w: self.input[1],
            out_channels: self.out_channels,
            kernel_h: self.kernel[0],
            kernel_w: self.kernel[1],
            stride_h: self.stride[0],
            stride_w: self.stride[1],
            pad_top: top,
            pad_bottom: bottom,
            pad_left: left,
            pad_right: right,
            dilation_h: self.dilation[0],
            dilation_w: self.dilation[1],
            groups: self.groups,
            has_bias: self.has_bias,
            out_h: self.output[0],
            out_w: self.output[1],
            padding_mode: self.padding_mode,
            activation: self.activation,
            has_residual: self.has_residual,
            flip_kernel: self.flip_kernel,
        }
    }
}

impl From<&ConvNdParams<2>> for Conv2dParams {
    fn from(p: &ConvNdParams<2>) -> Self {
        Conv2dParams {
            stride: (p.stride[0], p.stride[1]),
            padding: match p.padding {
                PaddingNd::Explicit([[top, bottom], [left, right]]) => {
                    Padding::explicit(top, bottom, left, right)
                }
                PaddingNd::Same => Padding::Same,
                PaddingNd::Valid => Padding::Valid,
            },
            padding_mode: p.padding_mode,
            dilation: (p.dilation[0], p.dilation[1]),
            groups: p.groups,
            activation: p.activation,
            flip_kernel: p.flip_kernel,
        }
    }
}

impl ConvNdShape<3> {
    /// The 2D convolution the 3D one is run as, its depth folded into the batch and the channels:
    /// input `[N*OD, KD*C, H, W]`, weight `[O, KD*C/groups, kh, kw]`, output `[N*OD, O, P, Q]`,
    /// where image `n*OD + od`, channel `g*KD*C/groups + a*C/groups + ci` holds input depth
    /// `od*sd + a*dd - front` of channel `g*C/groups + ci` (outside the input, what the
    /// [`PaddingMode`] reads there; the folded problem pads its height and width the same way). The sum over
    /// its channels and taps is the 3D sum over channels and taps (shaders/fold_depth.wgsl).
    ///
    /// `None` when `N*OD`, `KD*C` or the byte size of a folded tensor overflows.
    pub fn folded(&self) -> Option<Conv2dShape> {
        let [_, [top, bottom], [left, right]] = self.padding;
        let folded = Conv2dShape {
            batch: self.batch.checked_mul(self.output[0])?,
            in_channels: self.kernel[0].checked_mul(self.in_channels)?,
            in_h: self.input[1],
            in_w: self.input[2],
            out_channels: self.out_channels,
            kernel_h: self.kernel[1],
            kernel_w: self.kernel[2],
            stride_h: self.stride[1],
            stride_w: self.stride[2],
            pad_top: top,
            pad_bottom: bottom,
            pad_left: left,
            pad_right: right,
            dilation_h: self.dilation[1],
            dilation_w: self.dilation[2],
            groups: self.groups,
            has_bias: self.has_bias,
            out_h: self.output[1],
            out_w: self.output[2],
            padding_mode: self.padding_mode,
            // The epilogue runs as the output's depth is put back (shaders/fold_depth.wgsl).
            activation: Activation::None,
            has_residual: false,
            // A turned kernel is turned before it is folded (its depth with it).
            flip_kernel: false,
        };
        let tensors = [
            ("folded input", &folded.input_shape()[..]),
            ("folded weight", &folded.weight_shape()[..]),
            ("folded output", &folded.output_shape()[..]),
        ];
        check_byte_sizes(&tensors).ok().map(|()| folded)
    }
}
