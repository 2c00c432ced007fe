//! Convolutions over 1 to 3 spatial axes, as PyTorch's `nn.Conv1d/2d/3d`: [`ConvNdParams`],
//! [`PaddingNd`] and the validated [`ConvNdShape`], which every forward convolution's checks go
//! through (a 2D one's too: `Conv2dShape::new` is `ConvNdShape::<2>::new` lowered).
//!
//! Inputs are `[N, C, *spatial]` or, unbatched as in PyTorch, `[C, *spatial]` (the output is then
//! unbatched too); weights `[O, C/groups, *kernel]`. Along each axis the output length is
//! `floor((n + before + after - dilation*(k-1) - 1) / stride) + 1` ([`conv_output_len`]).

use super::activation::Activation;
use super::common::{
    check_bias, check_byte_sizes, check_groups_divide_weight, check_positive_axes, check_ranks,
    overflow, ConvParams, Shaped,
};
use super::mode::{check_amounts, PaddingMode};
use crate::error::{tuple, Error, Result};

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

/// Stride, padding, dilation and groups of a convolution over `N` spatial axes, as in
/// `torch.nn.Conv1d` (`N = 1`) or `torch.nn.Conv3d` (`N = 3`); axes in order (D, H, W).
///
/// ```
/// use wgconv::spec::{Conv1dParams, ConvNdShape};
/// let p = Conv1dParams::default().with_stride(4).with_padding(4);
/// let s = ConvNdShape::new(&[1, 32, 16000], &[64, 32, 9], None, &p).unwrap();
/// assert_eq!(s.output_shape(), [1, 64, 4000]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvNdParams<const N: usize> {
    /// Stride per axis.
    pub stride: [usize; N],
    /// Padding amounts.
    pub padding: PaddingNd<N>,
    /// What the padding holds (PyTorch's `padding_mode`).
    pub padding_mode: PaddingMode,
    /// Spacing between kernel taps per axis.
    pub dilation: [usize; N],
    /// Input and output channels are split into this many independent groups.
    pub groups: usize,
    /// The activation the fused epilogue applies to `conv + bias + residual`.
    pub activation: Activation,
    /// True convolution: the kernel turned 180 degrees (reversed along every spatial axis), as
    /// in signal processing, instead of PyTorch's cross-correlation. The weight is given as
    /// stored (unturned); its gradients are with respect to it.
    pub flip_kernel: bool,
}

/// A 1D convolution's parameters (`torch.nn.Conv1d`).
pub type Conv1dParams = ConvNdParams<1>;

/// A 3D convolution's parameters (`torch.nn.Conv3d`).
pub type Conv3dParams = ConvNdParams<3>;

/// Padding amounts around an input of `N` spatial axes, PyTorch's `padding=` argument (what
/// the padding holds is the [`PaddingMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaddingNd<const N: usize> {
    /// `[before, after]` per axis (may be asymmetric).
    Explicit([[usize; 2]; N]),
    /// Output as long as the input (stride 1 only): per axis total `dilation*(k-1)`, the odd
    /// extra one after, exactly as PyTorch.
    Same,
    /// No padding (PyTorch's `padding='valid'`).
    Valid,
}

impl<const N: usize> PaddingNd<N> {
    /// `[before, after]` per axis for a kernel `kernel` with dilation `dilation`.
    pub fn resolve(self, kernel: [usize; N], dilation: [usize; N]) -> [[usize; 2]; N] {
        match self {
            PaddingNd::Explicit(pads) => pads,
            PaddingNd::Valid => [[0, 0]; N],
            PaddingNd::Same => std::array::from_fn(|a| {
                // Saturating: absurd sizes are refused later by the checked size arithmetic.
                let total = dilation[a].saturating_mul(kernel[a].saturating_sub(1));
                [total / 2, total - total / 2]
            }),
        }
    }
}

impl<const N: usize> Default for PaddingNd<N> {
    fn default() -> Self {
        PaddingNd::Explicit([[0, 0]; N])
    }
}

impl<const N: usize> From<usize> for PaddingNd<N> {
    /// `p` on both sides of every axis.
    fn from(p: usize) -> Self {
        PaddingNd::Explicit([[p, p]; N])
    }
}

impl<const N: usize> From<[usize; N]> for PaddingNd<N> {
    /// One amount per axis, on both of its sides, as PyTorch's `padding=(pd, ph, pw)`.
    fn from(p: [usize; N]) -> Self {
        PaddingNd::Explicit(p.map(|v| [v, v]))
    }
}

impl<const N: usize> From<[[usize; 2]; N]> for PaddingNd<N> {
    /// `[before, after]` per axis.
    fn from(p: [[usize; 2]; N]) -> Self {
        PaddingNd::Explicit(p)
    }
}

/// A per-axis value from one number (every axis) or one per axis.
pub trait IntoAxes<const N: usize> {
    /// One value per axis.
    fn into_axes(self) -> [usize; N];
}

impl<const N: usize> IntoAxes<N> for usize {
    fn into_axes(self) -> [usize; N] {
        [self; N]
    }
}

impl<const N: usize> IntoAxes<N> for [usize; N] {
    fn into_axes(self) -> [usize; N] {
        self
    }
}

impl<const N: usize> Default for ConvNdParams<N> {
    /// PyTorch's defaults: stride 1, padding 0 (zeros), dilation 1, groups 1.
    fn default() -> Self {
        ConvNdParams {
            stride: [1; N],
            padding: PaddingNd::default(),
            padding_mode: PaddingMode::Zeros,
            dilation: [1; N],
            groups: 1,
            activation: Activation::None,
            flip_kernel: false,
        }
    }
}

impl<const N: usize> ConvNdParams<N> {
    /// Sets the stride from one number or one per axis.
    pub fn with_stride(mut self, stride: impl IntoAxes<N>) -> Self {
        self.stride = stride.into_axes();
        self
    }

    /// Sets the padding from `p`, one amount per axis, `[before, after]` per axis or a
    /// [`PaddingNd`].
    pub fn with_padding(mut self, padding: impl Into<PaddingNd<N>>) -> Self {
        self.padding = padding.into();
        self
    }

    /// Sets what the padding holds.
    pub fn with_padding_mode(mut self, mode: PaddingMode) -> Self {
        self.padding_mode = mode;
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

    /// Sets the fused epilogue's activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets whether the kernel is turned 180 degrees (true convolution).
    pub fn with_flip_kernel(mut self, flip_kernel: bool) -> Self {
        self.flip_kernel = flip_kernel;
        self
    }
}

/// A validated convolution over `N` spatial axes with every size resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvNdShape<const N: usize> {
    /// Batch size N (1 for an unbatched input; may be 0).
    pub batch: usize,
    /// Whether the input (and so the output) has no batch dimension.
    pub unbatched: bool,
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Groups.
    pub groups: usize,
    /// Whether a bias is added.
    pub has_bias: bool,
    /// Input length per axis.
    pub input: [usize; N],
    /// Kernel length per axis.
    pub kernel: [usize; N],
    /// Output length per axis.
    pub output: [usize; N],
    /// Stride per axis.
    pub stride: [usize; N],
    /// Dilation per axis.
    pub dilation: [usize; N],
    /// `[before, after]` padding per axis.
    pub padding: [[usize; 2]; N],
    /// What the padding holds.
    pub padding_mode: PaddingMode,
    /// The activation of the fused epilogue.
    pub activation: Activation,
    /// Whether the fused epilogue adds a residual of the output's shape before the activation
    /// (set by [`ConvNdShape::with_residual`]).
    pub has_residual: bool,
    /// Whether the kernel is turned 180 degrees ([`ConvNdParams::flip_kernel`]).
    pub flip_kernel: bool,
}

/// The operation's name in messages: `conv1d`, `conv2d` or `conv3d`.
const fn op_name(spatial: usize) -> &'static str {
    match spatial {
        1 => "conv1d",
        2 => "conv2d",
        _ => "conv3d",
    }
}

/// The weight's layout in messages.
const fn weight_layout(spatial: usize) -> &'static str {
    match spatial {
        1 => "3D weight [O, C/groups, k]",
        2 => "4D weight [O, C/groups, kh, kw]",
        _ => "5D weight [O, C/groups, kd, kh, kw]",
    }
}

impl<const N: usize> ConvNdShape<N> {
    /// Validates shapes and parameters in PyTorch's order and resolves padding and output size.
    ///
    /// `input` is `[N, C, *spatial]` or `[C, *spatial]`; `bias` the bias tensor's shape, if any.
    ///
    /// # Errors
    /// [`Error::SpatialDims`] unless `N` is 1, 2 or 3; [`Error::NonPositive`],
    /// [`Error::InputRank`], [`Error::WeightRank`], [`Error::EmptyDimension`],
    /// [`Error::SameWithStride`], [`Error::OutChannelsNotDivisible`],
    /// [`Error::InChannelsNotDivisible`], [`Error::ChannelMismatch`], [`Error::BiasShape`],
    /// [`Error::ReflectPaddingTooLarge`], [`Error::CircularPaddingTooLarge`],
    /// [`Error::KernelTooLarge`], [`Error::SizeOverflow`].
    pub fn new(
        input: &[usize],
        weight: &[usize],
        bias: Option<&[usize]>,
        params: &ConvNdParams<N>,
    ) -> Result<Self> {
        if !(1..=3).contains(&N) {
            return Err(Error::SpatialDims { dims: N });
        }
        let groups = params.groups;
        check_positive_axes(&params.stride, &params.dilation, groups)?;
        params.activation.check()?;
        let (unbatched, batch, image) =
            check_ranks(op_name(N), N, weight_layout(N), input, weight)?;
        if params.padding == PaddingNd::Same && params.stride.iter().any(|&s| s != 1) {
            return Err(Error::SameWithStride {
                stride: params.stride.to_vec(),
            });
        }
        check_groups_divide_weight(weight, groups)?;
        let spatial: [usize; N] = std::array::from_fn(|a| image[1 + a]);
        let kernel: [usize; N] = std::array::from_fn(|a| weight[2 + a]);
        let padding = params.padding.resolve(kernel, params.dilation);
        // PyTorch pads (`F.pad`) before it convolves, so these come before the channel checks.
        check_amounts(params.padding_mode, &padding, &spatial, input)?;
        let (c, o, cg) = (image[0], weight[0], weight[1]);
        // PyTorch names an unbatched input by the batch of one it runs as.
        let named = if unbatched {
            [&[1][..], input].concat()
        } else {
            input.to_vec()
        };
        if c % groups != 0 {
            return Err(Error::InChannelsNotDivisible {
                groups,
                input: named,
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
                input: named,
                expected,
                got: c,
            });
        }
        check_bias(bias, o, |got| Error::BiasShape {
            weight: weight.to_vec(),
            expected: o,
            got,
        })?;
        let mut padded = [0; N];
        let mut span = [0; N];
        for a in 0..N {
            let [before, after] = padding[a];
            let p = spatial[a]
                .checked_add(before)
                .and_then(|v| v.checked_add(after));
            let s = params.dilation[a]
                .checked_mul(kernel[a] - 1)
                .and_then(|v| v.checked_add(1));
            let (Some(p), Some(s)) = (p, s) else {
                let names = &["D", "H", "W"][3 - N..];
                let sizes: Vec<String> = (0..N)
                    .map(|a| {
                        let [before, after] = padding[a];
                        format!("{} {} + padding {before} + {after}", names[a], spatial[a])
                    })
                    .collect();
                let kernel: Vec<String> = kernel.iter().map(usize::to_string).collect();
                return Err(overflow(&format!(
                    "padded input size ({}) or dilated kernel size (kernel {}, dilation {})",
                    sizes.join(", "),
                    kernel.join("x"),
                    tuple(&params.dilation)
                )));
            };
            (padded[a], span[a]) = (p, s);
        }
        let mut output = [0; N];
        for a in 0..N {
            let [before, after] = padding[a];
            let len = conv_output_len(
                spatial[a],
                before + after,
                kernel[a],
                params.stride[a],
                params.dilation[a],
            );
            match len {
                Some(len) => output[a] = len,
                None => {
                    return Err(Error::KernelTooLarge {
                        padded: padded.to_vec(),
                        kernel: span.to_vec(),
                    })
                }
            }
        }
        let shape = ConvNdShape {
            batch,
            unbatched,
            in_channels: c,
            out_channels: o,
            groups,
            has_bias: bias.is_some(),
            input: spatial,
            kernel,
            output,
            stride: params.stride,
            dilation: params.dilation,
            padding,
            padding_mode: params.padding_mode,
            activation: params.activation,
            has_residual: false,
            flip_kernel: params.flip_kernel,
        };
        shape.check_sizes()?;
        Ok(shape)
    }

    /// The checks of a backward pass of the convolution alone (`op` names it): no fused
    /// activation, whose gradient needs the pre-activation values, and `grad_output` of the
    /// output's shape.
    ///
    /// # Errors
    /// [`Error::EpilogueGradient`], [`Error::GradOutputShape`].
    pub fn check_backward(&self, op: &'static str, grad_output: &[usize]) -> Result<()> {
        if !self.activation.is_none() {
            return Err(Error::EpilogueGradient {
                op,
                activation: self.activation.to_string(),
            });
        }
        if grad_output != self.output_shape() {
            return Err(Error::GradOutputShape {
                expected: self.output_shape(),
                got: grad_output.to_vec(),
            });
        }
        Ok(())
    }

    /// This convolution with a residual of shape `residual` added before the activation, if
    /// one is given: it must have the output's shape.
    ///
    /// # Errors
    /// [`Error::ResidualShape`] naming both shapes.
    pub fn with_residual(mut self, residual: Option<&[usize]>) -> Result<Self> {
        if let Some(r) = residual {
            if r != self.output_shape() {
                return Err(Error::ResidualShape {
                    expected: self.output_shape(),
                    got: r.to_vec(),
                });
            }
        }
        self.has_residual = residual.is_some();
        Ok(self)
    }

    /// Every tensor's byte size fits the host's address space, and, for an empty batch, each
    /// image's too (`[0, C, L]` is still an array of `C*L`-element images).
    fn check_sizes(&self) -> Result<()> {
        let (input, weight, output) =
            (self.input_shape(), self.weight_shape(), self.output_shape());
        check_byte_sizes(&[("input", &input), ("weight", &weight), ("output", &output)])?;
        let image = |s: &[usize]| s[usize::from(!self.unbatched)..].to_vec();
        check_byte_sizes(&[
            ("input image", &image(&input)),
            ("output image", &image(&output)),
        ])
    }

    /// The input's shape as given: `[N, C, *spatial]`, or `[C, *spatial]` unbatched.
    pub fn input_shape(&self) -> Vec<usize> {
        self.with_batch(self.in_channels, &self.input)
    }

    /// `[O, C/groups, *kernel]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        let mut shape = vec![self.out_channels, self.in_channels / self.groups];
        shape.extend_from_slice(&self.kernel);
        shape
    }

    /// The output's shape: `[N, O, *output]`, or `[O, *output]` unbatched.
    pub fn output_shape(&self) -> Vec<usize> {
        self.with_batch(self.out_channels, &self.output)
    }

    fn with_batch(&self, channels: usize, spatial: &[usize]) -> Vec<usize> {
        let mut shape = if self.unbatched {
            vec![]
        } else {
            vec![self.batch]
        };
        shape.push(channels);
        shape.extend_from_slice(spatial);
        shape
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Floating-point operations, counting a multiply-add as two:
    /// `2 * N*O*prod(output) * C/groups*prod(kernel)` (saturating at `u64::MAX`).
    pub fn flops(&self) -> u64 {
        let reduction = self.in_channels / self.groups * self.kernel.iter().product::<usize>();
        (self.output_len() as u64)
            .saturating_mul(reduction as u64)
            .saturating_mul(2)
    }

    /// The parameters that give this shape (padding explicit, as resolved).
    pub fn params(&self) -> ConvNdParams<N> {
        ConvNdParams {
            stride: self.stride,
            padding: PaddingNd::Explicit(self.padding),
            padding_mode: self.padding_mode,
            dilation: self.dilation,
            groups: self.groups,
            activation: self.activation,
            flip_kernel: self.flip_kernel,
        }
    }
}

impl<const N: usize> ConvParams for ConvNdParams<N> {
    type Shape = ConvNdShape<N>;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<ConvNdShape<N>> {
        ConvNdShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}
