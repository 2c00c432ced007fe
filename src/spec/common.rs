//! What the forward and the transposed shapes check the same way, and the builder and shape
//! macros both use.

use crate::error::{Error, Result};

/// Builder methods from a table: `with_x(x: T) => convert;` becomes
/// `pub fn with_x(mut self, x: T) -> Self`, which sets field `x` to `x.convert()` (to `x` itself
/// when no conversion is named).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($field:ident: $ty:ty) $(=> $convert:ident)?;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $field: $ty) -> Self {
                self.$field = $field$(.$convert())?;
                self
            }
        )*
    };
}

/// The tensor shapes and element counts of a validated problem, and the check of their byte
/// sizes, from the fields both shape types have (`batch`, `in_channels`, `in_h`, `in_w`,
/// `out_channels`, `out_h`, `out_w`, `kernel_h`, `kernel_w`, `groups`). Only the weight's layout
/// differs: its first dimension is named, and the second is the other channel count divided by
/// `groups`.
macro_rules! tensor_shapes {
    (
        input: $input_doc:literal,
        weight: $weight_doc:literal = [$first:ident, $per_group:ident / groups],
        output: $output_doc:literal $(,)?
    ) => {
        #[doc = $input_doc]
        pub fn input_shape(&self) -> [usize; 4] {
            [self.batch, self.in_channels, self.in_h, self.in_w]
        }

        #[doc = $weight_doc]
        pub fn weight_shape(&self) -> [usize; 4] {
            let per_group = self.$per_group / self.groups;
            [self.$first, per_group, self.kernel_h, self.kernel_w]
        }

        #[doc = $output_doc]
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

        /// The shape itself, once [`check_sizes`](super::check_sizes) passes for its tensors.
        fn with_checked_sizes(self) -> Result<Self> {
            $crate::spec::common::check_sizes(
                self.input_shape(),
                self.weight_shape(),
                self.output_shape(),
            )?;
            Ok(self)
        }
    };
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

/// A transposed convolution's first checks, as PyTorch's: stride and dilation positive on both
/// axes, then groups positive.
pub(super) fn check_positive(
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    for (name, (a, b)) in [("stride", stride), ("dilation", dilation)] {
        if a == 0 || b == 0 {
            return Err(Error::NonPositive {
                name,
                value: format!("({a}, {b})"),
            });
        }
    }
    if groups == 0 {
        return Err(Error::NonPositive {
            name: "groups",
            value: "0".into(),
        });
    }
    Ok(())
}

/// Stride and dilation (one value per axis) and groups must be positive, as PyTorch checks first.
pub(super) fn check_positive_axes(
    stride: &[usize],
    dilation: &[usize],
    groups: usize,
) -> Result<()> {
    for (name, values) in [("stride", stride), ("dilation", dilation)] {
        if values.contains(&0) {
            return Err(Error::NonPositive {
                name,
                value: crate::error::tuple(values),
            });
        }
    }
    if groups == 0 {
        return Err(Error::NonPositive {
            name: "groups",
            value: "0".into(),
        });
    }
    Ok(())
}

/// The ranks of an operation `op` over `spatial` axes: the input batched (`spatial + 2`
/// dimensions) or not (`spatial + 1`), the weight `spatial + 2` (`weight_layout` in messages),
/// neither with an empty dimension but for the batch. `(unbatched, batch, the input without its
/// batch)`.
pub(super) fn check_ranks<'a>(
    op: &'static str,
    spatial: usize,
    weight_layout: &'static str,
    input: &'a [usize],
    weight: &[usize],
) -> Result<(bool, usize, &'a [usize])> {
    let unbatched = input.len() == spatial + 1;
    if !unbatched && input.len() != spatial + 2 {
        return Err(Error::InputRank {
            op,
            expected: format!("{}D (unbatched) or {}D (batched)", spatial + 1, spatial + 2),
            shape: input.to_vec(),
        });
    }
    if weight.len() != spatial + 2 {
        return Err(Error::WeightRank {
            op,
            expected: weight_layout,
            shape: weight.to_vec(),
        });
    }
    let (batch, image) = if unbatched {
        (1, input)
    } else {
        (input[0], &input[1..])
    };
    for (what, shape, dims) in [("input", input, image), ("weight", weight, weight)] {
        if dims.contains(&0) {
            return Err(Error::EmptyDimension {
                what,
                shape: shape.to_vec(),
            });
        }
    }
    Ok((unbatched, batch, image))
}

/// A transposed convolution's input and weight as 4-D shapes, neither with an empty dimension
/// (but for the input's batch).
pub(super) fn check_operands(
    input: &[usize],
    weight: &[usize],
) -> Result<([usize; 4], [usize; 4])> {
    let Ok(input4) = <[usize; 4]>::try_from(input) else {
        return Err(Error::InputRank {
            op: "conv_transpose2d",
            expected: "4D [N, C, H, W] (wgconv takes no unbatched one here yet)".into(),
            shape: input.to_vec(),
        });
    };
    let Ok(weight4) = <[usize; 4]>::try_from(weight) else {
        return Err(Error::WeightRank {
            op: "conv_transpose2d",
            expected: "4D weight [Ci, Co/groups, kh, kw]",
            shape: weight.to_vec(),
        });
    };
    for (what, shape, dims) in [("input", input, &input[1..]), ("weight", weight, weight)] {
        if dims.contains(&0) {
            return Err(Error::EmptyDimension {
                what,
                shape: shape.to_vec(),
            });
        }
    }
    Ok((input4, weight4))
}

/// The weight's first dimension (output channels forward, input channels transposed) must split
/// into `groups`.
pub(super) fn check_groups_divide_weight(weight: &[usize], groups: usize) -> Result<()> {
    if !weight[0].is_multiple_of(groups) {
        return Err(Error::OutChannelsNotDivisible {
            groups,
            weight: weight.to_vec(),
        });
    }
    Ok(())
}

/// A bias, where there is one, must be `[expected]`; `mismatch` names the error for its shape.
pub(super) fn check_bias(
    bias: Option<&[usize]>,
    expected: usize,
    mismatch: impl FnOnce(Vec<usize>) -> Error,
) -> Result<()> {
    match bias {
        Some(b) if b != [expected] => Err(mismatch(b.to_vec())),
        _ => Ok(()),
    }
}

/// Every tensor's byte size must fit the host's address space (the GPU path checks tighter
/// limits). An empty batch must not hide an absurd image: `[0, C, H, W]` is still an array of
/// `C*H*W`-element images to ndarray, and to every size computed per image.
pub(super) fn check_sizes(input: [usize; 4], weight: [usize; 4], output: [usize; 4]) -> Result<()> {
    check_byte_sizes(&[("input", &input), ("weight", &weight), ("output", &output)])?;
    if input[0] == 0 {
        check_byte_sizes(&[("input image", &input[1..]), ("output image", &output[1..])])?;
    }
    Ok(())
}

/// Each `(what, dims)`: `4 * product(dims)` must not overflow.
pub(super) fn check_byte_sizes(tensors: &[(&str, &[usize])]) -> Result<()> {
    for &(what, dims) in tensors {
        dims.iter()
            .try_fold(4usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| overflow(&format!("{what} byte size (4 bytes x {dims:?})")))?;
    }
    Ok(())
}

pub(super) fn overflow(what: &str) -> Error {
    Error::SizeOverflow {
        what: what.to_string(),
    }
}

/// Comma-separated non-negative integers, as the command line writes sizes (`3`, `2,1`,
/// `1,1,0,2`).
///
/// # Errors
/// A message quoting the first part that is not a non-negative integer.
pub fn parse_numbers(s: &str) -> std::result::Result<Vec<usize>, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<usize>()
                .map_err(|_| format!("'{part}' is not a non-negative integer"))
        })
        .collect()
}

/// A per-axis pair as the command line writes it: `S` for both axes or `SH,SW`.
///
/// # Errors
/// [`parse_numbers`]' message, or the count of numbers when there are more than two.
pub fn parse_pair(s: &str) -> std::result::Result<(usize, usize), String> {
    match parse_numbers(s)?.as_slice() {
        [v] => Ok((*v, *v)),
        [h, w] => Ok((*h, *w)),
        other => Err(format!(
            "expected one number or two separated by a comma, got {} numbers",
            other.len()
        )),
    }
}

/// A tensor on the host or the GPU, as the shape checks see it.
pub(crate) trait Shaped {
    /// Its shape.
    fn dims(&self) -> &[usize];
}

/// Parameters that validate a (transposed) convolution of tensors into its shape.
pub(crate) trait ConvParams {
    /// The validated problem.
    type Shape;
    /// The problem of `input` by `weight` (and `bias`) with these parameters.
    fn shape_of<T: Shaped>(&self, input: &T, weight: &T, bias: Option<&T>) -> Result<Self::Shape>;
}

/// A finite f32 (a learning rate on the command line).
///
/// # Errors
/// A message quoting `text` when it is not a number, or is infinite or NaN.
pub fn parse_finite_f32(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("'{text}' is {v}, not a finite number")),
        Err(e) => Err(format!("'{text}' is not a number: {e}")),
    }
}

/// A count that must be at least 1 (a batch, a repeat count): a zero batch or no timed run would
/// make a benchmark meaningless, so zero is refused rather than quietly changed.
///
/// # Errors
/// A message quoting `s` when it is not a positive integer.
pub fn parse_positive(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive integer")),
    }
}
