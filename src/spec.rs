//! Convolution parameters, output shapes and validation, with PyTorch's `nn.Conv2d` semantics.
//!
//! Nothing here knows about wgpu: [`Conv2dShape::new`] turns an input shape, a weight shape, an
//! optional bias shape and [`Conv2dParams`] into a fully resolved, validated problem that both the
//! CPU reference and the GPU path consume.

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

/// A per-axis `(vertical, horizontal)` pair from one number or two.
pub trait IntoPair {
    /// `(h, w)`.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
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
    /// Sets the stride from `s` or `(sh, sw)`.
    pub fn with_stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding from `p`, `(ph, pw)`, `[top, bottom, left, right]` or a [`Padding`].
    pub fn with_padding(mut self, padding: impl Into<Padding>) -> Self {
        self.padding = padding.into();
        self
    }

    /// Sets the dilation from `d` or `(dh, dw)`.
    pub fn with_dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
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

fn pair(p: (usize, usize)) -> String {
    format!("({}, {})", p.0, p.1)
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
        if sh == 0 || sw == 0 {
            return Err(Error::NonPositive {
                name: "stride",
                value: pair(params.stride),
            });
        }
        if dh == 0 || dw == 0 {
            return Err(Error::NonPositive {
                name: "dilation",
                value: pair(params.dilation),
            });
        }
        if params.groups == 0 {
            return Err(Error::NonPositive {
                name: "groups",
                value: "0".into(),
            });
        }
        let &[n, c, h, w] = input else {
            return Err(Error::InputRank {
                shape: input.to_vec(),
            });
        };
        let &[o, cg, kh, kw] = weight else {
            return Err(Error::WeightRank {
                shape: weight.to_vec(),
            });
        };
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::EmptyDimension {
                what: "input",
                shape: input.to_vec(),
            });
        }
        if weight.contains(&0) {
            return Err(Error::EmptyDimension {
                what: "weight",
                shape: weight.to_vec(),
            });
        }
        if params.padding == Padding::Same && (sh != 1 || sw != 1) {
            return Err(Error::SameWithStride {
                stride_h: sh,
                stride_w: sw,
            });
        }
        let groups = params.groups;
        if o % groups != 0 {
            return Err(Error::OutChannelsNotDivisible {
                groups,
                weight: weight.to_vec(),
            });
        }
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
        if let Some(b) = bias {
            if b != [o] {
                return Err(Error::BiasShape {
                    weight: weight.to_vec(),
                    expected: o,
                    got: b.to_vec(),
                });
            }
        }
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
        let shape = Conv2dShape {
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
        };
        check_byte_sizes(&[
            ("input", &shape.input_shape()),
            ("weight", &shape.weight_shape()),
            ("output", &shape.output_shape()),
        ])?;
        // An empty batch must not hide an absurd image: `[0, C, H, W]` is still an array of
        // `C*H*W`-element images to ndarray, and to every size computed per image.
        if n == 0 {
            check_byte_sizes(&[
                ("input image", &[c, h, w]),
                ("output image", &[o, out_h, out_w]),
            ])?;
        }
        Ok(shape)
    }

    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// `[O, C/groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels / self.groups,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[N, O, P, Q]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
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

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Number of weight elements.
    pub fn weight_len(&self) -> usize {
        self.weight_shape().iter().product()
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Floating-point operations, counting a multiply-add as two: `2 * N*O*P*Q * C/groups*kh*kw`
    /// (saturating at `u64::MAX`).
    pub fn flops(&self) -> u64 {
        (self.output_len() as u64)
            .saturating_mul(self.reduction_len() as u64)
            .saturating_mul(2)
    }
}

/// Every tensor's byte size must fit the host's address space (the GPU path checks tighter
/// limits).
fn check_byte_sizes(tensors: &[(&str, &[usize])]) -> Result<()> {
    for &(what, dims) in tensors {
        dims.iter()
            .try_fold(4usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| overflow(&format!("{what} byte size (4 bytes x {dims:?})")))?;
    }
    Ok(())
}

fn overflow(what: &str) -> Error {
    Error::SizeOverflow {
        what: what.to_string(),
    }
}

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
    /// Sets the stride from `s` or `(sh, sw)`.
    pub fn with_stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding from `p` or `(ph, pw)`.
    pub fn with_padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Sets the output padding from `p` or `(oph, opw)`.
    pub fn with_output_padding(mut self, output_padding: impl IntoPair) -> Self {
        self.output_padding = output_padding.into_pair();
        self
    }

    /// Sets the dilation from `d` or `(dh, dw)`.
    pub fn with_dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
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
        for (name, (a, b)) in [("stride", params.stride), ("dilation", params.dilation)] {
            if a == 0 || b == 0 {
                return Err(Error::NonPositive {
                    name,
                    value: pair((a, b)),
                });
            }
        }
        if params.groups == 0 {
            return Err(Error::NonPositive {
                name: "groups",
                value: "0".into(),
            });
        }
        if (oph >= sh && oph >= dh) || (opw >= sw && opw >= dw) {
            return Err(Error::OutputPaddingTooLarge {
                output_padding: params.output_padding,
                stride: params.stride,
                dilation: params.dilation,
            });
        }
        let &[n, ci, p, q] = input else {
            return Err(Error::InputRank {
                shape: input.to_vec(),
            });
        };
        let &[wi, cog, kh, kw] = weight else {
            return Err(Error::WeightRank {
                shape: weight.to_vec(),
            });
        };
        if ci == 0 || p == 0 || q == 0 {
            return Err(Error::EmptyDimension {
                what: "input",
                shape: input.to_vec(),
            });
        }
        if weight.contains(&0) {
            return Err(Error::EmptyDimension {
                what: "weight",
                shape: weight.to_vec(),
            });
        }
        let groups = params.groups;
        if wi % groups != 0 {
            return Err(Error::OutChannelsNotDivisible {
                groups,
                weight: weight.to_vec(),
            });
        }
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
        if let Some(b) = bias {
            if b != [co] {
                return Err(Error::TransposedBiasShape {
                    weight: weight.to_vec(),
                    expected: co,
                    got: b.to_vec(),
                });
            }
        }
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
                input: (p, q),
                output: (out_h, out_w),
            });
        }
        let (Ok(out_h), Ok(out_w)) = (usize::try_from(out_h), usize::try_from(out_w)) else {
            return Err(overflow("transposed convolution output size"));
        };
        let shape = ConvTranspose2dShape {
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
        };
        check_byte_sizes(&[
            ("input", &shape.input_shape()),
            ("weight", &shape.weight_shape()),
            ("output", &shape.output_shape()),
        ])?;
        // As for the convolution: an empty batch must not hide an absurd image.
        if n == 0 {
            check_byte_sizes(&[
                ("input image", &[ci, p, q]),
                ("output image", &[co, out_h, out_w]),
            ])?;
        }
        Ok(shape)
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

    /// `[N, Ci, P, Q]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// `[Ci, Co/groups, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.in_channels,
            self.out_channels / self.groups,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[N, Co, H, W]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Number of weight elements.
    pub fn weight_len(&self) -> usize {
        self.weight_shape().iter().product()
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
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
