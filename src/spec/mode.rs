//! How the padded border is filled: PyTorch's `padding_mode` ([`PaddingMode`]), what a padded
//! position reads ([`PaddingMode::source`]) and PyTorch's rules on the amounts.

use crate::error::{Error, Result};

/// What the padding around the input holds, PyTorch's `padding_mode=` of `nn.Conv1d/2d/3d`.
///
/// Along an axis of `n` elements, padded position `i` (`i < 0` or `i >= n`) reads:
///
/// | mode | reads | `[a b c d]` padded 2, 2 | amounts allowed |
/// | --- | --- | --- | --- |
/// | `Zeros` | `0` | `0 0 a b c d 0 0` | any |
/// | `Reflect` | `x[-i]`, `x[2(n-1) - i]` (the edge once) | `c b a b c d c b` | `< n` |
/// | `Replicate` | `x[clamp(i, 0, n-1)]` | `a a a b c d d d` | any |
/// | `Circular` | `x[i mod n]` | `c d a b c d a b` | `<= n` |
///
/// The axes are padded one after another, so a corner combines the rules of its axes. The
/// kernels read these positions in place: no padded copy of the input is made. The gradient
/// of a padded position goes to the element it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PaddingMode {
    /// Zeros (PyTorch's default).
    #[default]
    Zeros,
    /// The input mirrored at its edges, the edge element not repeated.
    Reflect,
    /// The edge element repeated.
    Replicate,
    /// The input wrapped around.
    Circular,
}

impl PaddingMode {
    /// Every mode, in PyTorch's documentation order.
    pub const ALL: [PaddingMode; 4] = [
        PaddingMode::Zeros,
        PaddingMode::Reflect,
        PaddingMode::Replicate,
        PaddingMode::Circular,
    ];

    /// PyTorch's name: `zeros`, `reflect`, `replicate` or `circular`.
    pub fn name(self) -> &'static str {
        match self {
            PaddingMode::Zeros => "zeros",
            PaddingMode::Reflect => "reflect",
            PaddingMode::Replicate => "replicate",
            PaddingMode::Circular => "circular",
        }
    }

    /// The element that position `i` of an axis of `n` elements reads, or `None` for a zero.
    /// Positions inside `[0, n)` read themselves; outside, the mode's rule applies once, so a
    /// position further out than the amounts [`PaddingMode`] allows may read `None`.
    ///
    /// ```
    /// use wgconv::spec::PaddingMode;
    /// let read = |m: PaddingMode| (-2..6).map(|i| m.source(i, 4)).collect::<Vec<_>>();
    /// assert_eq!(read(PaddingMode::Reflect), [2, 1, 0, 1, 2, 3, 2, 1].map(Some));
    /// assert_eq!(read(PaddingMode::Circular), [2, 3, 0, 1, 2, 3, 0, 1].map(Some));
    /// assert_eq!(PaddingMode::Zeros.source(-1, 4), None);
    /// ```
    pub fn source(self, i: i64, n: usize) -> Option<usize> {
        let n = i64::try_from(n).ok()?;
        let inside = |j: i64| (0..n).contains(&j).then_some(j as usize);
        if inside(i).is_some() {
            return inside(i);
        }
        match self {
            PaddingMode::Zeros => None,
            PaddingMode::Reflect if i < 0 => inside(-i),
            PaddingMode::Reflect => inside(2 * (n - 1) - i),
            PaddingMode::Replicate => inside(i.clamp(0, n - 1)),
            PaddingMode::Circular if i < 0 => inside(i + n),
            PaddingMode::Circular => inside(i - n),
        }
    }

    /// The mode's number in the shaders' uniform block (`pad_mode` in shaders/conv_params.wgsl).
    pub(crate) fn code(self) -> u32 {
        match self {
            PaddingMode::Zeros => 0,
            PaddingMode::Reflect => 1,
            PaddingMode::Replicate => 2,
            PaddingMode::Circular => 3,
        }
    }
}

impl std::fmt::Display for PaddingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode by its PyTorch name, as `--padding-mode` takes it; the error is PyTorch's.
impl std::str::FromStr for PaddingMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        PaddingMode::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "padding_mode must be one of {{'zeros', 'reflect', 'replicate', \
                     'circular'}}, but got padding_mode='{s}'"
                )
            })
    }
}

/// PyTorch's limits on the amounts of a reflect or circular padding, checked as `F.pad` does,
/// the last axis first: reflect needs `before, after < n`, circular `before, after <= n`.
/// `input` is the shape as given (batched or not), its spatial axes last.
///
/// # Errors
/// [`Error::ReflectPaddingTooLarge`] or [`Error::CircularPaddingTooLarge`], naming the axis.
pub(crate) fn check_amounts(
    mode: PaddingMode,
    padding: &[[usize; 2]],
    spatial: &[usize],
    input: &[usize],
) -> Result<()> {
    let first_spatial = input.len() - spatial.len();
    for (from_last, a) in (0..spatial.len()).rev().enumerate() {
        let (n, [before, after]) = (spatial[a], padding[a]);
        let dim = first_spatial + a;
        match mode {
            PaddingMode::Reflect if before >= n || after >= n => {
                return Err(Error::ReflectPaddingTooLarge {
                    argument: 4 + 2 * from_last,
                    padding: [before, after],
                    dim,
                    input: input.to_vec(),
                })
            }
            PaddingMode::Circular if before > n || after > n => {
                return Err(Error::CircularPaddingTooLarge {
                    padding: [before, after],
                    dim,
                    input: input.to_vec(),
                })
            }
            _ => {}
        }
    }
    Ok(())
}
