//! Convolution parameters as the command line writes them, before the weight's rank says how
//! many spatial axes there are: [`AxisValues`] (`2`, `2,1`), [`PaddingArg`] (`1`, `1,2`,
//! `0,1,2,0`, `same`, `valid`), resolved for `N` axes by [`ConvArgs::params`].

use super::activation::Activation;
use super::common::parse_numbers;
use super::mode::PaddingMode;
use super::nd::{ConvNdParams, PaddingNd};
use crate::error::{Error, Result};

/// One number for every axis, or one per axis: `--stride 2`, `--dilation 1,2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxisValues(pub Vec<usize>);

impl std::str::FromStr for AxisValues {
    type Err = String;

    /// One to three comma-separated non-negative integers.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let values = parse_numbers(s)?;
        match values.len() {
            1..=3 => Ok(AxisValues(values)),
            n => Err(format!(
                "expected one number, or one per axis (at most 3), got {n} numbers"
            )),
        }
    }
}

/// Padding as the command line writes it: one number, one per axis, `before,after` per axis in
/// axis order (for 2D `T,B,L,R`), `same` or `valid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaddingArg {
    /// Numbers, resolved once the axes are known.
    Numbers(Vec<usize>),
    /// `same`.
    Same,
    /// `valid`.
    Valid,
}

impl std::str::FromStr for PaddingArg {
    type Err = String;

    /// `same`, `valid`, or 1 to 6 comma-separated non-negative integers.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "same" => return Ok(PaddingArg::Same),
            "valid" => return Ok(PaddingArg::Valid),
            _ => {}
        }
        let values = parse_numbers(s)?;
        match values.len() {
            1..=6 => Ok(PaddingArg::Numbers(values)),
            n => Err(format!(
                "expected one number, one per axis, two per axis (before,after), 'same' or \
                 'valid', got {n} numbers"
            )),
        }
    }
}

/// Stride, padding, dilation and groups as given on the command line, for any number of axes
/// (with the `cli` feature, the `wgconv run` flags that set them).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ConvArgs {
    /// Stride: one number, or one per axis (2D: SH,SW).
    #[cfg_attr(feature = "cli", arg(long, value_name = "S|S,..", default_value = "1", value_parser = clap::value_parser!(AxisValues)))]
    pub stride: AxisValues,
    /// Padding amounts: one number, one per axis, before,after per axis (2D: T,B,L,R), same or valid.
    #[cfg_attr(feature = "cli", arg(long, value_name = "P|P,..|B,A,..|same|valid", default_value = "0", value_parser = clap::value_parser!(PaddingArg)))]
    pub padding: PaddingArg,
    /// What the padding holds: zeros, reflect (mirrored, edge once), replicate (edge repeated) or circular (wrapped).
    #[cfg_attr(feature = "cli", arg(long, value_name = "zeros|reflect|replicate|circular", default_value = "zeros", value_parser = clap::value_parser!(PaddingMode)))]
    pub padding_mode: PaddingMode,
    /// Dilation: one number, or one per axis (2D: DH,DW).
    #[cfg_attr(feature = "cli", arg(long, value_name = "D|D,..", default_value = "1", value_parser = clap::value_parser!(AxisValues)))]
    pub dilation: AxisValues,
    /// Groups.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1))]
    pub groups: usize,
    /// Activation of the fused epilogue, applied to conv + bias (+ residual).
    #[cfg_attr(feature = "cli", arg(long, value_name = "relu|relu6|leaky-relu[=SLOPE]|sigmoid|tanh|gelu|gelu-tanh|silu|hardswish|clamp=MIN,MAX", default_value = "none", value_parser = clap::value_parser!(Activation)))]
    pub activation: Activation,
    /// True convolution: turn the kernel 180 degrees (reversed along every axis) instead of
    /// PyTorch's cross-correlation; the weight file stays as stored.
    #[cfg_attr(feature = "cli", arg(long))]
    pub flip_kernel: bool,
}

/// The spatial axes of the convolution a weight of its rank runs: 3 conv1d, 4 conv2d, 5 conv3d.
///
/// # Errors
/// [`Error::WeightRank`] for any other rank, naming the ones taken.
pub fn spatial_dims_of(weight: &[usize]) -> Result<usize> {
    match weight.len() {
        3 => Ok(1),
        4 => Ok(2),
        5 => Ok(3),
        _ => Err(Error::WeightRank {
            op: "wgconv run",
            expected: "3D weight [O, C/groups, k] (conv1d), 4D weight [O, C/groups, kh, kw] \
                       (conv2d) or 5D weight [O, C/groups, kd, kh, kw] (conv3d)",
            shape: weight.to_vec(),
        }),
    }
}

impl ConvArgs {
    /// The parameters for `N` spatial axes.
    ///
    /// # Errors
    /// [`Error::AxisCount`] when a value has a count of numbers `N` axes do not take.
    pub fn params<const N: usize>(&self) -> Result<ConvNdParams<N>> {
        let axes = |what: &'static str, values: &AxisValues| -> Result<[usize; N]> {
            match values.0[..] {
                [one] => Ok([one; N]),
                ref many => many.try_into().map_err(|_| Error::AxisCount {
                    what,
                    dims: N,
                    allowed: if N == 1 {
                        "1 number".into()
                    } else {
                        format!("1 or {N} numbers")
                    },
                    got: many.len(),
                }),
            }
        };
        let padding = match &self.padding {
            PaddingArg::Same => PaddingNd::Same,
            PaddingArg::Valid => PaddingNd::Valid,
            PaddingArg::Numbers(v) if v.len() == 1 => PaddingNd::Explicit([[v[0]; 2]; N]),
            PaddingArg::Numbers(v) if v.len() == N => {
                PaddingNd::Explicit(std::array::from_fn(|a| [v[a]; 2]))
            }
            PaddingArg::Numbers(v) if v.len() == 2 * N => {
                PaddingNd::Explicit(std::array::from_fn(|a| [v[2 * a], v[2 * a + 1]]))
            }
            PaddingArg::Numbers(v) => {
                let allowed = if N == 1 {
                    "1 or 2 (before,after) numbers".into()
                } else {
                    format!(
                        "1, {N} (one per axis) or {} (before,after per axis) numbers",
                        2 * N
                    )
                };
                return Err(Error::AxisCount {
                    what: "padding",
                    dims: N,
                    allowed,
                    got: v.len(),
                });
            }
        };
        Ok(ConvNdParams {
            stride: axes("stride", &self.stride)?,
            padding,
            padding_mode: self.padding_mode,
            dilation: axes("dilation", &self.dilation)?,
            groups: self.groups,
            activation: self.activation,
            flip_kernel: self.flip_kernel,
        })
    }
}
