//! Suites: the layers a benchmark times, built in (`resnet`, `quick`) or read from a suite file
//! (format in the [module docs](super#suite-files)).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use super::error::BenchError;
use crate::error::Result;
use crate::spec::{Conv2dParams, Conv2dShape};

/// One convolution layer of a suite: `C, H, W -> K, R x S, stride, pad` (square stride and pad).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Name shown in tables.
    pub name: String,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height.
    pub r: usize,
    /// Kernel width.
    pub s: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (all sides).
    pub pad: usize,
}

impl Layer {
    /// A layer from its numbers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        r: usize,
        s: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Layer {
            name: name.to_string(),
            c,
            h,
            w,
            k,
            r,
            s,
            stride,
            pad,
        }
    }

    /// The convolution parameters.
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams::default()
            .with_stride(self.stride)
            .with_padding(self.pad)
    }

    /// The validated problem for a batch of `n`.
    ///
    /// # Errors
    /// Shape errors of [`Conv2dShape::new`].
    pub fn shape(&self, n: usize) -> Result<Conv2dShape> {
        Conv2dShape::new(
            &[n, self.c, self.h, self.w],
            &[self.k, self.c, self.r, self.s],
            Some(&[self.k]),
            &self.params(),
        )
    }
}

/// The ResNet/VGG layers of `wgconv bench --suite resnet`, as a suite file.
pub const RESNET_SUITE: &str = "\
stem         3 224 224 ->   64 7x7 stride 2 pad 3
conv3x3     64  56  56 ->   64 3x3 pad 1
conv1x1     64  56  56 ->  256 1x1
conv3x3_s2 128  56  56 ->  128 3x3 stride 2 pad 1
conv1x1_s2 512  28  28 -> 1024 1x1 stride 2
deep       512   7   7 ->  512 3x3 pad 1
thin        16 112 112 ->   16 3x3 pad 1
vgg         64 224 224 ->   64 3x3 pad 1
";

/// The layers of `wgconv bench --suite quick`, small enough to finish in seconds on a software
/// adapter, as a suite file.
pub const QUICK_SUITE: &str = "\
conv3x3_small  32 28 28 -> 32 3x3 pad 1
conv1x1_small  64 28 28 -> 64 1x1
deep          512  7  7 -> 512 3x3 pad 1
stem_small      3 64 64 -> 16 7x7 stride 2 pad 3
";

/// The layers of [`RESNET_SUITE`].
pub fn resnet_suite() -> Vec<Layer> {
    built_in(RESNET_SUITE)
}

/// The layers of [`QUICK_SUITE`].
pub fn quick_suite() -> Vec<Layer> {
    built_in(QUICK_SUITE)
}

/// The layers of the suite `name`: `resnet` ([`resnet_suite`]), `quick` ([`quick_suite`]), or
/// else the path of a suite file ([`parse_suite`]).
///
/// # Errors
/// As [`parse_suite`].
pub fn suite(name: &str) -> Result<Vec<Layer>, BenchError> {
    match name {
        "resnet" => Ok(resnet_suite()),
        "quick" => Ok(quick_suite()),
        file => parse_suite(Path::new(file)),
    }
}

/// A built-in suite's layers (the tests pin that each parses to its layers).
fn built_in(text: &str) -> Vec<Layer> {
    parse_suite_str(text, Path::new("built-in suite")).unwrap_or_default()
}

/// Largest suite file [`parse_suite`] reads, in bytes (1 MiB: some twenty thousand layers).
pub const MAX_SUITE_BYTES: u64 = 1 << 20;

/// Largest number a suite file may hold, and largest padded input height or width `H + 2 P`:
/// `i32::MAX`, as the shaders form input coordinates in i32.
pub const MAX_SUITE_NUMBER: usize = i32::MAX as usize;

/// The layers of the suite file at `path` (format in the [module docs](super#suite-files)).
///
/// # Errors
/// [`Error::Io`](crate::error::Error::Io) (as [`BenchError::Wgconv`]) when the file cannot be read, is
/// not a regular file (a FIFO, a device such as `/dev/zero`, a directory) or is larger than
/// [`MAX_SUITE_BYTES`]; [`BenchError::Parse`] for text that is not UTF-8 (naming the line), for
/// the first line that is not a valid layer, or when the file holds no layer.
pub fn parse_suite(path: &Path) -> Result<Vec<Layer>, BenchError> {
    let too_large = |size: String| {
        crate::error::Error::io(
            "read",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{size} more than the {MAX_SUITE_BYTES} bytes (1 MiB) a suite file may have"
                ),
            ),
        )
    };
    let (file, len) = crate::files::open_input(path)?;
    if len > MAX_SUITE_BYTES {
        let size = format!("it is {},", crate::memory::bytes_text(len));
        return Err(too_large(size).into());
    }
    // At most one byte past the cap, whatever the length said (a file may grow, and some
    // regular files, as in /proc, say 0).
    let mut bytes = Vec::new();
    file.take(MAX_SUITE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| crate::error::Error::io("read", path, source))?;
    if bytes.len() as u64 > MAX_SUITE_BYTES {
        return Err(too_large("it holds".into()).into());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        BenchError::Parse {
            path: path.to_path_buf(),
            line: 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count(),
            message: format!(
                "not UTF-8 text: byte 0x{:02x} at column {} (byte {at} of the file) is not valid \
                 UTF-8; a suite file is plain text",
                bytes[at],
                at - line_start + 1
            ),
        }
    })?;
    parse_suite_str(&text, path)
}

/// The layers of suite text (format in the [module docs](super#suite-files)); `path` only names it in errors.
///
/// # Errors
/// [`BenchError::Parse`] for the first line that is not a valid layer, or when the text holds
/// no layer.
pub fn parse_suite_str(text: &str, path: &Path) -> Result<Vec<Layer>, BenchError> {
    let mut layers = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut line_count = 0;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        line_count = line_no;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let parse_error = |message: String| BenchError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("{message}, in `{content}`"),
        };
        let layer = parse_layer(content).map_err(parse_error)?;
        if let Some(first) = first_seen.get(&layer.name) {
            return Err(parse_error(format!(
                "duplicate layer name '{}' (first defined on line {first})",
                layer.name
            )));
        }
        // Reject shapes the convolution itself refuses here, where the line number is known.
        layer.shape(1).map_err(|e| {
            parse_error(format!(
                "layer '{}' is not a valid convolution: {e}",
                layer.name
            ))
        })?;
        first_seen.insert(layer.name.clone(), line_no);
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(BenchError::Parse {
            path: path.to_path_buf(),
            line: 0,
            message: format!(
                "no layers: all {line_count} lines are blank or comments; expected lines like \
                 `conv3x3 64 56 56 -> 64 3x3 stride 1 pad 1`"
            ),
        });
    }
    Ok(layers)
}

/// One non-empty, comment-free line; the error message names the offending token.
fn parse_layer(content: &str) -> Result<Layer, String> {
    let tokens: Vec<&str> = content.split_whitespace().collect();
    let arrow = tokens.iter().position(|&t| t == "->").ok_or_else(|| {
        "missing '->' between the input 'C H W' and the output 'K RxS'".to_string()
    })?;
    let (before, after) = (&tokens[..arrow], &tokens[arrow + 1..]);
    let Some((&name, sizes)) = before.split_first() else {
        return Err("missing the layer name before the sizes 'C H W ->'".to_string());
    };
    let [c, h, w] = sizes else {
        return Err(format!(
            "expected 3 sizes 'C H W' between the name '{name}' and '->', but got {}: '{}'",
            sizes.len(),
            sizes.join(" ")
        ));
    };
    let c = positive(c, "C (input channels)")?;
    let h = positive(h, "H (input height)")?;
    let w = positive(w, "W (input width)")?;

    let (k, kernel, options) = match after {
        [k, kernel, options @ ..] => (k, kernel, options),
        _ => {
            return Err(format!(
                "expected 'K RxS' after '->', but got '{}'",
                after.join(" ")
            ))
        }
    };
    let k = positive(k, "K (output channels)")?;
    let (r, s) = kernel
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected the kernel as 'RxS' (e.g. 3x3), but got '{kernel}'"))?;
    let r = positive(r, &format!("kernel height R in '{kernel}'"))?;
    let s = positive(s, &format!("kernel width S in '{kernel}'"))?;

    let (mut stride, mut pad) = (None, None);
    let mut rest = options.iter();
    while let Some(&key) = rest.next() {
        let slot = match key {
            "stride" => &mut stride,
            "pad" => &mut pad,
            _ => {
                return Err(format!(
                    "unknown token '{key}' after the kernel; expected 'stride S' or 'pad P'"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("'{key}' is given twice"));
        }
        let value = rest
            .next()
            .ok_or_else(|| format!("'{key}' needs a value, e.g. '{key} 1'"))?;
        *slot = Some(if key == "stride" {
            positive(value, "stride")?
        } else {
            non_negative(value, "pad")?
        });
    }
    let pad = pad.unwrap_or(0);
    for (what, size) in [("height H", h), ("width W", w)] {
        // Each number is at most i32::MAX, so the sum fits u64 (usize may be 32 bits).
        let padded = size as u64 + 2 * pad as u64;
        if padded > MAX_SUITE_NUMBER as u64 {
            return Err(format!(
                "the padded input {what} + 2 * pad = {size} + 2 * {pad} = {padded} exceeds \
                 {MAX_SUITE_NUMBER} (input coordinates are i32 in the shaders)"
            ));
        }
    }
    Ok(Layer::new(name, c, h, w, k, r, s, stride.unwrap_or(1), pad))
}

fn non_negative(text: &str, what: &str) -> Result<usize, String> {
    bounded(text, what, 0, "non-negative")
}

fn positive(text: &str, what: &str) -> Result<usize, String> {
    bounded(text, what, 1, "positive")
}

/// `text` as an integer from `min` to [`MAX_SUITE_NUMBER`]; `kind` names the lower bound in the
/// message (`positive`, `non-negative`).
fn bounded(text: &str, what: &str, min: usize, kind: &str) -> Result<usize, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match digits.parse::<usize>() {
        Ok(v) if is_integer && (min..=MAX_SUITE_NUMBER).contains(&v) => Ok(v),
        // Digits only, yet too large for the shaders (or for usize itself).
        Ok(v) if is_integer && v > MAX_SUITE_NUMBER => Err(too_large(text, what)),
        Err(_) if is_integer => Err(too_large(text, what)),
        _ => Err(format!(
            "expected {what} to be a {kind} integer, but got '{text}'"
        )),
    }
}

fn too_large(text: &str, what: &str) -> String {
    format!(
        "expected {what} to be at most {MAX_SUITE_NUMBER} (the shaders compute indices in i32), but got \
         '{text}'"
    )
}
