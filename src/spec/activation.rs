//! The fused epilogue's activation ([`Activation`]): `output = act(conv + bias + residual)`, with
//! PyTorch's definitions, applied by every forward kernel as it stores its outputs.

use crate::error::{Error, Result};

/// The activation a convolution's fused epilogue applies to `pre = conv + bias + residual`,
/// as PyTorch defines it:
///
/// | activation | `act(x)` | CLI |
/// | --- | --- | --- |
/// | `None` | `x` | (default) |
/// | `Relu` | `max(x, 0)` | `relu` |
/// | `Relu6` | `min(max(x, 0), 6)` | `relu6` |
/// | `LeakyRelu(slope)` | `x` if `x > 0` else `slope * x` | `leaky-relu[=SLOPE]` (0.01) |
/// | `Sigmoid` | `1 / (1 + exp(-x))` | `sigmoid` |
/// | `Tanh` | `tanh(x)` | `tanh` |
/// | `Gelu` | `0.5 x (1 + erf(x / sqrt(2)))` | `gelu` |
/// | `GeluTanh` | `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` | `gelu-tanh` |
/// | `Silu` | `x / (1 + exp(-x))` | `silu` |
/// | `Hardswish` | `x * min(max(x + 3, 0), 6) / 6` | `hardswish` |
/// | `Clamp { min, max }` | `min(max(x, min), max)` (all `max` when `min > max`, as `torch.clamp`) | `clamp=MIN,MAX` |
///
/// ```
/// use wgconv::spec::Activation;
/// let act: Activation = "leaky-relu=0.2".parse().unwrap();
/// assert_eq!(act, Activation::LeakyRelu(0.2));
/// assert_eq!(act.apply(-1.0), -0.2f32 as f64);
/// assert_eq!("clamp=-1,2".parse::<Activation>().unwrap().apply(5.0), 2.0);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub enum Activation {
    /// No activation: the output is `conv + bias + residual`.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x > 0`, else `slope * x` (PyTorch's default slope is 0.01).
    LeakyRelu(f32),
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt(2)))`: PyTorch's `gelu` with the exact erf.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: `gelu(approximate="tanh")`.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `x * relu6(x + 3) / 6`.
    Hardswish,
    /// `min(max(x, min), max)`.
    Clamp {
        /// The lower bound.
        min: f32,
        /// The upper bound.
        max: f32,
    },
}

/// The activations' CLI names, for messages.
const NAMES: &str = "relu, relu6, leaky-relu[=SLOPE], sigmoid, tanh, gelu, gelu-tanh, silu, \
                     hardswish, clamp=MIN,MAX";

impl Activation {
    /// Every activation, with PyTorch's default leaky slope and a clamp to [-1, 1]: for sweeps.
    pub const ALL: [Activation; 11] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu(0.01),
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Hardswish,
        Activation::Clamp {
            min: -1.0,
            max: 1.0,
        },
    ];

    /// Whether this is [`Activation::None`], the epilogue that passes `conv + bias + residual`
    /// through.
    pub fn is_none(self) -> bool {
        matches!(self, Activation::None)
    }

    /// Its CLI name without parameters: `none`, `relu`, `leaky-relu`, `clamp`, ...
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu(_) => "leaky-relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu-tanh",
            Activation::Silu => "silu",
            Activation::Hardswish => "hardswish",
            Activation::Clamp { .. } => "clamp",
        }
    }

    /// `act(x)` in f64, from PyTorch's formulas (the f32 parameters widened exactly).
    pub fn apply(self, x: f64) -> f64 {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::LeakyRelu(_) if x > 0.0 => x,
            Activation::LeakyRelu(slope) => f64::from(slope) * x,
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x * normal_cdf(x),
            // 0.5 (1 + tanh(u)) = sigmoid(2u), which does not cancel for negative u.
            Activation::GeluTanh => x * sigmoid(2.0 * gelu_tanh_u(x)),
            Activation::Silu => x * sigmoid(x),
            Activation::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::Clamp { min, max } => x.max(f64::from(min)).min(f64::from(max)),
        }
    }

    /// `act(x)` in f32, by the formulas the shaders use (`activate` in
    /// shaders/conv_params.wgsl): the CPU baseline's epilogue.
    pub fn apply_f32(self, x: f32) -> f32 {
        let sigmoid = |x: f32| {
            let e = (-x.abs()).exp();
            let s = 1.0 / (1.0 + e);
            if x >= 0.0 {
                s
            } else {
                e * s
            }
        };
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::LeakyRelu(_) if x > 0.0 => x,
            Activation::LeakyRelu(slope) => slope * x,
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => {
                0.5 * x * (1.0 + erf(f64::from(x) / std::f64::consts::SQRT_2) as f32)
            }
            Activation::GeluTanh => {
                let u = 0.797_884_6 * (x + 0.044715 * x * x * x);
                0.5 * x * (1.0 + u.tanh())
            }
            Activation::Silu => x * sigmoid(x),
            Activation::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::Clamp { min, max } => x.max(min).min(max),
        }
    }

    /// `act'(x)` in f64, PyTorch's choice at the kinks (the derivative of the piece on the left
    /// of a kink of relu and leaky-relu, 0 at relu6's and clamp's, hardswish's `(2x + 3) / 6`
    /// on `[-3, 3]`).
    pub fn derivative(self, x: f64) -> f64 {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            Activation::None => 1.0,
            Activation::Relu => f64::from(u8::from(x > 0.0)),
            Activation::Relu6 => f64::from(u8::from(x > 0.0 && x < 6.0)),
            Activation::LeakyRelu(_) if x > 0.0 => 1.0,
            Activation::LeakyRelu(slope) => f64::from(slope),
            Activation::Sigmoid => sigmoid(x) * (1.0 - sigmoid(x)),
            Activation::Tanh => 1.0 - x.tanh() * x.tanh(),
            Activation::Gelu => {
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                normal_cdf(x) + x * pdf
            }
            Activation::GeluTanh => {
                // With s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s).
                let k = (2.0 / std::f64::consts::PI).sqrt();
                let s = sigmoid(2.0 * gelu_tanh_u(x));
                let s_minus = sigmoid(-2.0 * gelu_tanh_u(x));
                s + 2.0 * x * s * s_minus * k * (1.0 + 3.0 * 0.044715 * x * x)
            }
            Activation::Silu => sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x))),
            Activation::Hardswish if x < -3.0 => 0.0,
            Activation::Hardswish if x > 3.0 => 1.0,
            Activation::Hardswish => (2.0 * x + 3.0) / 6.0,
            Activation::Clamp { min, max } => {
                f64::from(u8::from(x > f64::from(min) && x < f64::from(max)))
            }
        }
    }

    /// Its parameters are numbers: a leaky slope that is finite, clamp bounds that are not NaN.
    ///
    /// # Errors
    /// [`Error::ActivationParameter`] naming the activation and the value.
    pub fn check(self) -> Result<()> {
        let bad = match self {
            Activation::LeakyRelu(slope) if !slope.is_finite() => Some(("slope", slope)),
            Activation::Clamp { min, .. } if min.is_nan() => Some(("min", min)),
            Activation::Clamp { max, .. } if max.is_nan() => Some(("max", max)),
            _ => None,
        };
        match bad {
            Some((parameter, value)) => Err(Error::ActivationParameter {
                activation: self.name(),
                parameter,
                value: value.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The activation's number in the shaders' uniform block (`activation` in
    /// shaders/conv_params.wgsl) and its two f32 parameters as bits.
    pub(crate) fn code(self) -> (u32, u32, u32) {
        let (code, a, b) = match self {
            Activation::None => (0, 0.0, 0.0),
            Activation::Relu => (1, 0.0, 0.0),
            Activation::Relu6 => (2, 0.0, 0.0),
            Activation::LeakyRelu(slope) => (3, slope, 0.0),
            Activation::Sigmoid => (4, 0.0, 0.0),
            Activation::Tanh => (5, 0.0, 0.0),
            Activation::Gelu => (6, 0.0, 0.0),
            Activation::GeluTanh => (7, 0.0, 0.0),
            Activation::Silu => (8, 0.0, 0.0),
            Activation::Hardswish => (9, 0.0, 0.0),
            Activation::Clamp { min, max } => (10, min, max),
        };
        (code, f32::to_bits(a), f32::to_bits(b))
    }
}

/// Equal when they compute the same: the same activation with bit-equal parameters (so `Eq`
/// and `Hash` hold, as the plans' keys need).
impl PartialEq for Activation {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
    }
}

impl Eq for Activation {}

impl std::hash::Hash for Activation {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state);
    }
}

impl std::fmt::Display for Activation {
    /// The CLI spelling: `relu`, `leaky-relu=0.2`, `clamp=-1,1`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Activation::LeakyRelu(slope) => write!(f, "leaky-relu={slope}"),
            Activation::Clamp { min, max } => write!(f, "clamp={min},{max}"),
            other => f.write_str(other.name()),
        }
    }
}

/// An activation as `--activation` takes it: `relu`, `leaky-relu` or `leaky-relu=0.2`,
/// `clamp=MIN,MAX`, ... (see [`Activation`]); `none` too.
impl std::str::FromStr for Activation {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let (name, value) = match s.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (s, None),
        };
        let number = |text: &str, what: &str| {
            super::common::parse_finite_f32(text)
                .map_err(|e| format!("activation '{s}': the {what} {e}"))
        };
        let plain = Activation::ALL.into_iter().find(|a| {
            a.name() == name && !matches!(a, Activation::LeakyRelu(_) | Activation::Clamp { .. })
        });
        match (name, value, plain) {
            ("leaky-relu", None, _) => Ok(Activation::LeakyRelu(0.01)),
            ("leaky-relu", Some(v), _) => Ok(Activation::LeakyRelu(number(v, "slope")?)),
            ("clamp", Some(v), _) => {
                let (min, max) = v.split_once(',').ok_or_else(|| {
                    format!("activation '{s}': clamp takes MIN,MAX, e.g. clamp=-1,1")
                })?;
                Ok(Activation::Clamp {
                    min: number(min, "min")?,
                    max: number(max, "max")?,
                })
            }
            ("clamp", None, _) => Err(format!(
                "activation '{s}': clamp takes MIN,MAX, e.g. clamp=-1,1"
            )),
            (_, None, Some(a)) => Ok(a),
            (_, Some(_), Some(a)) => {
                Err(format!("activation '{s}': {} takes no parameter", a.name()))
            }
            _ => Err(format!("unknown activation '{s}': expected none, {NAMES}")),
        }
    }
}

/// `sqrt(2/pi) (x + 0.044715 x^3)`: the argument of gelu-tanh's tanh.
fn gelu_tanh_u(x: f64) -> f64 {
    (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
}

/// The standard normal distribution function `Phi(x) = erfc(-x / sqrt(2)) / 2`, in f64 to full
/// relative precision in both tails.
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function `1 - erf(x)` in f64 with full relative precision: `1 - erf`
/// below x = 2 (where it is at least 0.0047, so the subtraction loses under 3 digits of 16), and
/// past it the continued fraction `exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) /
/// (x + ...))))` (Abramowitz and Stegun 7.1.14), evaluated from 300 levels down.
pub(crate) fn erfc(x: f64) -> f64 {
    if x < 2.0 {
        return 1.0 - erf(x);
    }
    let mut t = x;
    for n in (1..=300).rev() {
        t = x + f64::from(n) / 2.0 / t;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / t
}

/// The error function, in f64: below |x| = 2, `2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) /
/// (1*3*...*(2n+1))` (Abramowitz and Stegun 7.1.6, every term positive, so nothing cancels);
/// past it, `+-(1 - erfc(|x|))`.
pub(crate) fn erf(x: f64) -> f64 {
    if x.abs() >= 2.0 {
        return x.signum() * (1.0 - erfc(x.abs()));
    }
    let x2 = x * x;
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > sum.abs() * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3.5) from tables (15+ digits).
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-15, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-15);
        }
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn erfc_keeps_its_relative_precision_in_the_tail() {
        // erfc at 1, 2, 3, 5, 10 from tables (16 digits).
        for (x, want) in [
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_034_8e-12),
            (10.0, 2.088_487_583_762_545e-45),
        ] {
            let rel = (erfc(x) - want).abs() / want;
            assert!(
                rel < 1e-13,
                "erfc({x}) = {:e}, relative error {rel:e}",
                erfc(x)
            );
        }
        assert!((erfc(-1.0) - (2.0 - 0.157_299_207_050_285_13)).abs() < 1e-15);
    }

    #[test]
    fn every_activation_prints_as_it_parses() {
        for a in Activation::ALL {
            assert_eq!(a.to_string().parse::<Activation>(), Ok(a), "{a}");
        }
    }

    #[test]
    fn derivatives_match_central_differences_away_from_kinks() {
        for a in Activation::ALL {
            for x in [-7.3, -2.9, -0.7, 0.3, 0.9, 2.1, 4.4, 7.9] {
                let h = 1e-6;
                let fd = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
                assert!((fd - a.derivative(x)).abs() < 1e-6, "{a} at {x}: {fd}");
            }
        }
    }
}
