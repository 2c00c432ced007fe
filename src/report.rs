//! Benchmark input and output on the host: custom suite files in, CSV tables and SVG bar charts
//! out. Nothing here touches the GPU.
//!
//! # Suite files
//!
//! One convolution layer per line, in the words of [`Layer`]:
//!
//! ```text
//! name C H W -> K RxS [stride S] [pad P]
//! ```
//!
//! - `name` is any text without spaces or `#`, unique within the file;
//! - `C H W` are the input channels, height and width, `K` the output channels and `RxS` the kernel
//!   height and width (`3x3`, `1x7`); all are positive integers;
//! - `stride S` (positive, default 1) and `pad P` (zero or more, default 0) may follow in either
//!   order, each at most once, and apply to both axes;
//! - every number is at most [`MAX_SUITE_NUMBER`] (2147483647, `i32::MAX`), and so are the padded
//!   input's height and width `H + 2 P` and `W + 2 P`: the shaders form input coordinates
//!   (`p * stride + i - pad`) in i32 and pass every size as u32;
//! - `#` starts a comment that runs to the end of the line; blank lines are ignored.
//!
//! ```text
//! # ResNet-50 stage 2, batch chosen on the command line
//! stem       3 224 224 ->  64 7x7 stride 2 pad 3
//! conv3x3   64  56  56 ->  64 3x3 pad 1      # stride defaults to 1
//! conv1x1   64  56  56 -> 256 1x1            # pad defaults to 0
//! ```
//!
//! Every layer must also be a valid convolution (the kernel fits in the padded input); a file
//! without any layer is an error. A suite file is UTF-8 text of at most [`MAX_SUITE_BYTES`]
//! (1 MiB), and a regular file (not a FIFO or a device such as `/dev/zero`).
//!
//! ```
//! use std::path::Path;
//! use wgconv::report::parse_suite_str;
//!
//! let layers = parse_suite_str("c 64 56 56 -> 64 3x3 pad 1\n", Path::new("suite.txt")).unwrap();
//! assert_eq!((layers[0].k, layers[0].r, layers[0].stride, layers[0].pad), (64, 3, 1, 1));
//! ```

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::bench::{Layer, LayerResult};

/// What can go wrong reading a suite file or writing a report, each naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A suite file line does not follow `name C H W -> K RxS [stride S] [pad P]`.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The suite file.
        path: PathBuf,
        /// 1-based line number; 0 when the problem concerns the whole file.
        line: usize,
        /// What is wrong, with the offending text and what was expected.
        message: String,
    },

    /// Reading or writing a file failed: `cannot read my.suite: No such file or directory (os
    /// error 2)`.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done to the file: `"read"` or `"write"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The chart could not be drawn.
    #[error("{}: cannot draw the chart: {message}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Suite files
// ---------------------------------------------------------------------------------------------

/// Largest suite file [`parse_suite`] reads, in bytes (1 MiB: some twenty thousand layers).
pub const MAX_SUITE_BYTES: u64 = 1 << 20;

/// Largest number a suite file may hold, and largest padded input height or width `H + 2 P`:
/// `i32::MAX`, as the shaders form input coordinates in i32.
pub const MAX_SUITE_NUMBER: usize = i32::MAX as usize;

/// The layers of the suite file at `path` (format in the [module docs](self)).
///
/// # Errors
/// [`ReportError::Io`] when the file cannot be read, is not a regular file (a FIFO, a device such
/// as `/dev/zero`, a directory) or is larger than [`MAX_SUITE_BYTES`]; [`ReportError::Parse`]
/// for text that is not UTF-8 (naming the line), for the first line that is not a valid layer,
/// or when the file holds no layer.
pub fn parse_suite(path: &Path) -> Result<Vec<Layer>, ReportError> {
    let read_error = |source| ReportError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size: String| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{size} more than the {MAX_SUITE_BYTES} bytes (1 MiB) a suite file may have"),
        ))
    };
    let (file, len) = crate::files::open_input(path).map_err(|e| report_io(e, "read", path))?;
    if len > MAX_SUITE_BYTES {
        return Err(too_large(format!(
            "it is {},",
            crate::memory::bytes_text(len)
        )));
    }
    // At most one byte past the cap, whatever the length said (a file may grow, and some
    // regular files, as in /proc, say 0).
    let mut bytes = Vec::new();
    file.take(MAX_SUITE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SUITE_BYTES {
        return Err(too_large("it holds".into()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        ReportError::Parse {
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

/// The layers of suite text (format in the [module docs](self)); `path` only names it in errors.
///
/// # Errors
/// [`ReportError::Parse`] for the first line that is not a valid layer, or when the text holds
/// no layer.
pub fn parse_suite_str(text: &str, path: &Path) -> Result<Vec<Layer>, ReportError> {
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
        let parse_error = |message: String| ReportError::Parse {
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
        return Err(ReportError::Parse {
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

// ---------------------------------------------------------------------------------------------
// Atomic file writes
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a reader
/// sees the old file or the whole new one and a failure leaves nothing behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let written = crate::atomic::write_with(path, |w| {
        w.write_all(bytes)
            .map_err(|source| crate::Error::io("write", path, source))
    });
    written.map_err(|e| report_io(e, "write", path))
}

/// A crate error from reading or writing `path` as a [`ReportError::Io`]: an [`Error::Io`]
/// keeps its action and OS error, anything else becomes the OS error's text under `action`.
///
/// [`Error::Io`]: crate::Error::Io
fn report_io(e: crate::Error, action: &'static str, path: &Path) -> ReportError {
    match e {
        crate::Error::Io {
            action,
            path,
            source,
        } => ReportError::Io {
            action,
            path,
            source,
        },
        other => ReportError::Io {
            action,
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// The CSV header line written by [`csv_string`] (without the newline).
pub const CSV_HEADER: &str = "name,n,c,h,w,k,r,s,stride,pad,flops,kernel,gpu_ms,gpu_e2e_ms,\
                              cpu_ms,gpu_gflops,cpu_gflops,speedup,max_abs_err";

/// The results as CSV: [`CSV_HEADER`], then one row per layer, `\n` line ends.
///
/// `gpu_gflops = flops / (gpu_ms * 1e6)`, `cpu_gflops` likewise, `speedup = cpu_ms / gpu_ms`
/// (GPU kernel time). A missing or non-finite value is an empty cell; text cells holding a comma,
/// a quote or a line break are quoted, with quotes doubled (RFC 4180).
pub fn csv_string(results: &[LayerResult]) -> String {
    let mut out = String::with_capacity(CSV_HEADER.len() + 1 + results.len() * 128);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for res in results {
        let l = &res.layer;
        let gpu_gflops = res.gpu_ms.map(|ms| res.gflops(ms));
        let cpu_gflops = res.cpu_ms.map(|ms| res.gflops(ms));
        let speedup = speedup(res);
        let cells = [
            csv_text(&l.name),
            res.n.to_string(),
            l.c.to_string(),
            l.h.to_string(),
            l.w.to_string(),
            l.k.to_string(),
            l.r.to_string(),
            l.s.to_string(),
            l.stride.to_string(),
            l.pad.to_string(),
            res.flops.to_string(),
            res.kernel.as_deref().map(csv_text).unwrap_or_default(),
            csv_number(res.gpu_ms),
            csv_number(res.gpu_e2e_ms),
            csv_number(res.cpu_ms),
            csv_number(gpu_gflops),
            csv_number(cpu_gflops),
            csv_number(speedup),
            csv_number(res.max_abs_err),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Writes [`csv_string`] to `path`, atomically.
///
/// # Errors
/// [`ReportError::Io`] when the file cannot be created or written (for example, its folder does
/// not exist); no partial file is left behind.
pub fn write_csv(path: &Path, results: &[LayerResult]) -> Result<(), ReportError> {
    write_atomically(path, csv_string(results).as_bytes())
}

/// `cpu_ms / gpu_ms`, when both ran.
fn speedup(res: &LayerResult) -> Option<f64> {
    Some(res.cpu_ms? / res.gpu_ms?)
}

fn csv_text(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn csv_number(value: Option<f64>) -> String {
    // `{}` prints the shortest text that reads back as the same f64.
    value
        .filter(|v| v.is_finite())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// SVG chart
// ---------------------------------------------------------------------------------------------

// Colours of the two bar series (matplotlib's tab:blue and tab:orange).
const GPU_COLOR: RGBColor = RGBColor(31, 119, 180);
const CPU_COLOR: RGBColor = RGBColor(255, 127, 14);

/// Draws a bar chart of the results to the SVG file `path`, atomically: per layer a GPU and a CPU
/// GFLOP/s bar on a log scale, the speedup `cpu_ms / gpu_ms` above the group, a legend, and
/// `title` as caption (say, adapter name and date). Missing values are left out.
///
/// # Errors
/// [`ReportError::Plot`] when no layer has a GPU or CPU time, or plotters fails;
/// [`ReportError::Io`] when the file cannot be written (no partial file is left behind).
pub fn write_plot_svg(
    path: &Path,
    title: &str,
    results: &[LayerResult],
) -> Result<(), ReportError> {
    let svg = plot_svg_string(title, results).map_err(|message| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    })?;
    write_atomically(path, svg.as_bytes())
}

/// A positive, finite GFLOP/s for a time, or `None` (a log axis cannot show the rest).
fn plottable_gflops(res: &LayerResult, ms: Option<f64>) -> Option<f64> {
    ms.map(|ms| res.gflops(ms))
        .filter(|g| g.is_finite() && *g > 0.0)
}

/// The SVG text of the chart of [`write_plot_svg`]; errors are messages for [`ReportError::Plot`].
fn plot_svg_string(title: &str, results: &[LayerResult]) -> Result<String, String> {
    let bars: Vec<(Option<f64>, Option<f64>)> = results
        .iter()
        .map(|r| (plottable_gflops(r, r.gpu_ms), plottable_gflops(r, r.cpu_ms)))
        .collect();
    let values = bars.iter().flat_map(|&(g, c)| g.into_iter().chain(c));
    let (min, max) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if max <= 0.0 {
        return Err(format!(
            "none of the {} layers has a positive GPU or CPU time to plot",
            results.len()
        ));
    }
    // Room below the smallest bar, and the top quarter of the plot (at least a factor 4) above
    // the tallest one for the speedup text and the legend.
    let y_lo = min / 2.0;
    let y_hi = max * ((max / y_lo).ln() / 3.0).exp().max(4.0);
    let n = results.len();
    let names: Vec<&str> = results.iter().map(|r| r.layer.name.as_str()).collect();
    let width = u32::try_from(n)
        .unwrap_or(u32::MAX)
        .saturating_mul(130)
        .saturating_add(220)
        .max(800);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        // Group i spans x in [10 i, 10 i + 10] (an integer axis takes custom ticks, a float one
        // does not); its label sits at the centre 10 i + 5.
        let group = |i: usize| i32::try_from(i.saturating_mul(10)).unwrap_or(i32::MAX - 10);
        let centers: Vec<i32> = (0..n).map(|i| group(i) + 5).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (0..group(n)).with_key_points(centers),
                (y_lo..y_hi).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        let name_of = |x: &i32| {
            let name = usize::try_from(x.div_euclid(10))
                .ok()
                .and_then(|i| names.get(i));
            name.map_or_else(String::new, |name| name.to_string())
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&name_of)
            .y_label_formatter(&|v: &f64| tick_label(*v))
            .y_labels(12)
            .x_desc("layer")
            .y_desc("GFLOP/s (log scale)")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;

        let series = [
            ("GPU GFLOP/s", GPU_COLOR, 1, 0),
            ("CPU GFLOP/s", CPU_COLOR, 5, 1),
        ];
        for (label, color, offset, which) in series {
            let rects = bars.iter().enumerate().filter_map(|(i, &(g, c))| {
                let top = if which == 0 { g } else { c }?;
                let x = group(i) + offset;
                Some(Rectangle::new([(x, y_lo), (x + 4, top)], color.filled()))
            });
            chart
                .draw_series(rects)
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled())
                });
        }

        let above = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let speedups = results
            .iter()
            .zip(&bars)
            .enumerate()
            .filter_map(|(i, (r, &(g, c)))| {
                let s = speedup(r).filter(|s| s.is_finite())?;
                let top = g.into_iter().chain(c).fold(y_lo, f64::max);
                Some(Text::new(
                    speedup_label(s),
                    (group(i) + 5, top * 1.15),
                    above.clone(),
                ))
            });
        let legend_text = TextStyle::from(("sans-serif", 13).into_font());
        chart
            .draw_series(speedups)
            .map_err(|e| e.to_string())?
            .label("GPU speedup = CPU ms / GPU ms")
            .legend(move |(x, y)| Text::new("1.0x", (x - 4, y - 6), legend_text.clone()));

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// `12.3x`, with more digits below 1 so a slowdown reads as one.
fn speedup_label(speedup: f64) -> String {
    if speedup >= 10.0 {
        format!("{speedup:.0}x")
    } else if speedup >= 1.0 {
        format!("{speedup:.1}x")
    } else {
        format!("{speedup:.2}x")
    }
}

/// A y tick without float noise: `2000`, `2.5`, `0.05`.
fn tick_label(value: f64) -> String {
    if value >= 100.0 {
        return format!("{value:.0}");
    }
    // Three significant digits, trailing zeros dropped.
    let decimals = (2 - value.log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
