//! Suites: the layers a benchmark times, built in (`resnet`, `quick`) or read from a suite file
//! (format in the [module docs](super#suite-files)).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use super::error::BenchError;
use crate::error::Result;
use crate::spec::{
    Activation, Conv1dParams, Conv2dParams, Conv2dShape, Conv3dParams, ConvNdShape, PaddingMode,
};

/// One convolution layer of a suite: `C, H, W -> K, R x S, stride, pad` (square stride and pad);
/// a conv1d's `C, L -> K, k, stride, pad`, kept as the conv2d of height 1 it runs as (`h` and
/// `r` are 1, stride and pad apply to the length); or a conv3d's `C, D, H, W -> K, T x R x S`
/// (stride and pad on every axis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Name shown in tables.
    pub name: String,
    /// Spatial axes: 1 (conv1d), 2 (conv2d) or 3 (conv3d).
    pub dims: usize,
    /// Input depth (1 but for conv3d).
    pub d: usize,
    /// Kernel depth (1 but for conv3d).
    pub t: usize,
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
    /// Padding (all sides).
    pub pad: usize,
    /// What the padding holds (`mode reflect` in a suite file; zeros by default).
    pub mode: PaddingMode,
    /// The fused epilogue's activation (`act gelu` in a suite file; none by default). The
    /// forward rows time it; the backward rows time the convolution's gradients alone.
    pub activation: Activation,
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
            dims: 2,
            d: 1,
            t: 1,
            c,
            h,
            w,
            k,
            r,
            s,
            stride,
            pad,
            mode: PaddingMode::Zeros,
            activation: Activation::None,
        }
    }

    /// A conv1d layer `C, L -> K, k` with its stride and padding.
    pub fn conv1d(
        name: &str,
        c: usize,
        l: usize,
        k: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Layer {
            dims: 1,
            ..Layer::new(name, c, 1, l, k, 1, kernel, stride, pad)
        }
    }

    /// A conv3d layer `C, D, H, W -> K, T x R x S` with its stride and padding (every axis).
    #[allow(clippy::too_many_arguments)]
    pub fn conv3d(
        name: &str,
        [c, d, h, w]: [usize; 4],
        k: usize,
        [t, r, s]: [usize; 3],
        stride: usize,
        pad: usize,
    ) -> Self {
        Layer {
            dims: 3,
            d,
            t,
            ..Layer::new(name, c, h, w, k, r, s, stride, pad)
        }
    }

    /// The conv3d's parameters (meaningful for a conv3d layer).
    pub fn params3d(&self) -> Conv3dParams {
        Conv3dParams::default()
            .with_stride(self.stride)
            .with_padding(self.pad)
            .with_padding_mode(self.mode)
            .with_activation(self.activation)
    }

    /// A conv3d layer's validated problem for a batch of `n`.
    ///
    /// # Errors
    /// Shape errors of [`ConvNdShape::new`].
    pub fn shape3d(&self, n: usize) -> Result<ConvNdShape<3>> {
        ConvNdShape::new(
            &[n, self.c, self.d, self.h, self.w],
            &[self.k, self.c, self.t, self.r, self.s],
            Some(&[self.k]),
            &self.params3d(),
        )
    }

    /// The parameters of the conv2d the layer runs as (for conv1d, of height 1).
    pub fn params(&self) -> Conv2dParams {
        match self.dims {
            1 => Conv2dParams::default()
                .with_stride((1, self.stride))
                .with_padding((0, self.pad)),
            _ => Conv2dParams::default()
                .with_stride(self.stride)
                .with_padding(self.pad),
        }
        .with_padding_mode(self.mode)
        .with_activation(self.activation)
    }

    /// The validated problem for a batch of `n`, as the conv2d it runs as (a conv1d checked as
    /// one, then [`ConvNdShape::as_conv2d`]; a conv3d as one, then [`ConvNdShape::folded`]).
    ///
    /// # Errors
    /// Shape errors of [`Conv2dShape::new`] or [`ConvNdShape::new`].
    pub fn shape(&self, n: usize) -> Result<Conv2dShape> {
        if self.dims == 3 {
            let shape = self.shape3d(n)?;
            return shape
                .folded()
                .ok_or_else(|| crate::error::Error::SizeOverflow {
                    what: format!("the folded 2D problem of layer '{}'", self.name),
                });
        }
        if self.dims == 1 {
            let params = Conv1dParams::default()
                .with_stride(self.stride)
                .with_padding(self.pad)
                .with_padding_mode(self.mode)
                .with_activation(self.activation);
            let input = [n, self.c, self.w];
            let shape =
                ConvNdShape::new(&input, &[self.k, self.c, self.s], Some(&[self.k]), &params)?;
            return Ok(shape.as_conv2d());
        }
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

/// The layers of `wgconv bench --suite family`, as a suite file: the convolution family's rows
/// beside conv2d rows of the same multiply-adds, to compare their GFLOP/s in one run. The audio
/// conv1d (32 -> 64 channels, kernel 9, stride 4, 16000 samples: 4000 outputs of 288 products
/// per channel) has the same multiply-adds as the 3x3 conv2d on 40x100 (4000 outputs of 288), the
/// kernel-9 conv1d over 4096 samples as the 3x3 conv2d on 64x64 (4096 outputs of 576), the video
/// conv3d (16 -> 32 channels, 3x3x3 over 8x56x56: 25088 outputs of 432) as the 3x3 conv2d of 48
/// channels on 112x224 (25088 outputs of 432).
pub const FAMILY_SUITE: &str = "\
conv1d_audio  32 16000 -> 64 9 stride 4 pad 4
conv2d_audio  32 160 400 -> 64 3x3 stride 4 pad 1
conv1d_k9     64  4096 -> 64 9 pad 4
conv2d_3x3    64 64 64 -> 64 3x3 pad 1
conv3d_video  16 8 56 56 -> 32 3x3x3 pad 1
conv2d_video  48 112 224 -> 32 3x3 pad 1
";

/// The padding modes beside zero padding (issue bar: each at most 1.15x the zeros row's time):
/// a ResNet 3x3 layer, the audio conv1d and the video conv3d of [`FAMILY_SUITE`], each with
/// every mode.
pub const MODES_SUITE: &str = "\
conv2d_zeros      64 56 56 -> 64 3x3 pad 1
conv2d_reflect    64 56 56 -> 64 3x3 pad 1 mode reflect
conv2d_replicate  64 56 56 -> 64 3x3 pad 1 mode replicate
conv2d_circular   64 56 56 -> 64 3x3 pad 1 mode circular
conv1d_zeros      32 16000 -> 64 9 stride 4 pad 4
conv1d_reflect    32 16000 -> 64 9 stride 4 pad 4 mode reflect
conv1d_replicate  32 16000 -> 64 9 stride 4 pad 4 mode replicate
conv1d_circular   32 16000 -> 64 9 stride 4 pad 4 mode circular
conv3d_zeros      16 8 56 56 -> 32 3x3x3 pad 1
conv3d_reflect    16 8 56 56 -> 32 3x3x3 pad 1 mode reflect
conv3d_replicate  16 8 56 56 -> 32 3x3x3 pad 1 mode replicate
conv3d_circular   16 8 56 56 -> 32 3x3x3 pad 1 mode circular
";

/// The fused activations beside none (issue bar: each at most 1.05x the none row's time): a
/// ResNet 3x3 layer with each activation, and the audio conv1d and video conv3d of
/// [`FAMILY_SUITE`] with none and with the costliest (gelu, an erf per output).
pub const ACTIVATIONS_SUITE: &str = "\
conv2d_none       64 56 56 -> 64 3x3 pad 1
conv2d_relu       64 56 56 -> 64 3x3 pad 1 act relu
conv2d_relu6      64 56 56 -> 64 3x3 pad 1 act relu6
conv2d_leaky      64 56 56 -> 64 3x3 pad 1 act leaky-relu=0.1
conv2d_sigmoid    64 56 56 -> 64 3x3 pad 1 act sigmoid
conv2d_tanh       64 56 56 -> 64 3x3 pad 1 act tanh
conv2d_gelu       64 56 56 -> 64 3x3 pad 1 act gelu
conv2d_gelu_tanh  64 56 56 -> 64 3x3 pad 1 act gelu-tanh
conv2d_silu       64 56 56 -> 64 3x3 pad 1 act silu
conv2d_hardswish  64 56 56 -> 64 3x3 pad 1 act hardswish
conv2d_clamp      64 56 56 -> 64 3x3 pad 1 act clamp=-1,1
conv1d_none       32 16000 -> 64 9 stride 4 pad 4
conv1d_gelu       32 16000 -> 64 9 stride 4 pad 4 act gelu
conv3d_none       16 8 56 56 -> 32 3x3x3 pad 1
conv3d_gelu       16 8 56 56 -> 32 3x3x3 pad 1 act gelu
";

/// The layers of [`FAMILY_SUITE`].
pub fn family_suite() -> Vec<Layer> {
    built_in(FAMILY_SUITE)
}

/// The layers of [`RESNET_SUITE`].
pub fn resnet_suite() -> Vec<Layer> {
    built_in(RESNET_SUITE)
}

/// The layers of [`QUICK_SUITE`].
pub fn quick_suite() -> Vec<Layer> {
    built_in(QUICK_SUITE)
}

/// The layers of the suite `name`: `resnet` ([`resnet_suite`]), `quick` ([`quick_suite`]),
/// `family` ([`family_suite`]), `modes` ([`MODES_SUITE`]), `activations`
/// ([`ACTIVATIONS_SUITE`]), or else the path of a suite file ([`parse_suite`]).
///
/// # Errors
/// As [`parse_suite`].
pub fn suite(name: &str) -> Result<Vec<Layer>, BenchError> {
    match name {
        "resnet" => Ok(resnet_suite()),
        "quick" => Ok(quick_suite()),
        "family" => Ok(family_suite()),
        "modes" => Ok(built_in(MODES_SUITE)),
        "activations" => Ok(built_in(ACTIVATIONS_SUITE)),
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
    let (c, depth, h, w) = match sizes {
        [c, h, w] => (c, None, Some(h), w),
        [c, l] => (c, None, None, l),
        [c, d, h, w] => (c, Some(d), Some(h), w),
        _ => {
            return Err(format!(
                "expected 3 sizes 'C H W' (or 2, 'C L', for a conv1d; 4, 'C D H W', for a \
                 conv3d) between the name '{name}' and '->', but got {}: '{}'",
                sizes.len(),
                sizes.join(" ")
            ))
        }
    };
    let depth = depth.map(|d| positive(d, "D (input depth)")).transpose()?;
    let c = positive(c, "C (input channels)")?;
    let h = h.map(|h| positive(h, "H (input height)")).transpose()?;
    let w = positive(
        w,
        if h.is_some() {
            "W (input width)"
        } else {
            "L (input length)"
        },
    )?;

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
    let mut kernel_depth = None;
    let kernel = match (depth, kernel.split_once(['x', 'X'])) {
        (Some(_), Some((t, rest))) if rest.contains(['x', 'X']) => {
            kernel_depth = Some(positive(t, &format!("kernel depth T in '{kernel}'"))?);
            rest
        }
        (Some(_), _) => {
            return Err(format!(
                "a conv3d layer ('C D H W ->') takes its kernel as 'TxRxS' (e.g. 3x3x3), but got \
                 '{kernel}'"
            ))
        }
        _ => kernel,
    };
    let (r, s) = match (h, kernel.split_once(['x', 'X'])) {
        (Some(_), Some((r, s))) => (
            positive(r, &format!("kernel height R in '{kernel}'"))?,
            positive(s, &format!("kernel width S in '{kernel}'"))?,
        ),
        (Some(_), None) => {
            return Err(format!(
                "expected the kernel as 'RxS' (e.g. 3x3), but got '{kernel}'"
            ))
        }
        (None, None) => (1, positive(kernel, "kernel length k")?),
        (None, Some(_)) => {
            return Err(format!(
                "a conv1d layer ('C L ->') takes its kernel as one length 'k' (e.g. 9), but got \
                 '{kernel}'"
            ))
        }
    };

    let (mut stride, mut pad, mut mode, mut act) = (None, None, None, None);
    let mut rest = options.iter();
    while let Some(&key) = rest.next() {
        if key == "act" {
            if act.is_some() {
                return Err("'act' is given twice".into());
            }
            let value = rest.next().ok_or("'act' needs a value, e.g. 'act relu'")?;
            act = Some(value.parse::<Activation>()?);
            continue;
        }
        if key == "mode" {
            if mode.is_some() {
                return Err("'mode' is given twice".into());
            }
            let value = rest
                .next()
                .ok_or("'mode' needs a value, e.g. 'mode reflect'")?;
            mode = Some(value.parse::<PaddingMode>()?);
            continue;
        }
        let slot = match key {
            "stride" => &mut stride,
            "pad" => &mut pad,
            _ => {
                return Err(format!(
                    "unknown token '{key}' after the kernel; expected 'stride S', 'pad P', \
                     'mode zeros|reflect|replicate|circular' or 'act ACTIVATION'"
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
    let mut sizes = match h {
        Some(h) => vec![("height H", h), ("width W", w)],
        None => vec![("length L", w)],
    };
    if let Some(d) = depth {
        sizes.push(("depth D", d));
    }
    for (what, size) in sizes {
        // Each number is at most i32::MAX, so the sum fits u64 (usize may be 32 bits).
        let padded = size as u64 + 2 * pad as u64;
        if padded > MAX_SUITE_NUMBER as u64 {
            return Err(format!(
                "the padded input {what} + 2 * pad = {size} + 2 * {pad} = {padded} exceeds \
                 {MAX_SUITE_NUMBER} (input coordinates are i32 in the shaders)"
            ));
        }
    }
    let stride = stride.unwrap_or(1);
    let layer = match (depth, kernel_depth, h) {
        (Some(d), Some(t), Some(h)) => Layer::conv3d(name, [c, d, h, w], k, [t, r, s], stride, pad),
        (_, _, Some(h)) => Layer::new(name, c, h, w, k, r, s, stride, pad),
        _ => Layer::conv1d(name, c, w, k, s, stride, pad),
    };
    let (mode, activation) = (mode.unwrap_or_default(), act.unwrap_or_default());
    Ok(Layer {
        mode,
        activation,
        ..layer
    })
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
