//! The results as text: CSV tables, written atomically.

use std::path::Path;

use super::{BackwardResult, BenchError, Layer, LayerResult};

/// The CSV header line written by [`csv_string`] (without the newline).
pub const CSV_HEADER: &str = "name,n,c,h,w,k,r,s,stride,pad,flops,kernel,gpu_ms,gpu_e2e_ms,\
                              cpu_ms,gpu_gflops,cpu_gflops,speedup,max_abs_err";

/// The columns [`backward_csv_string`] adds after [`CSV_HEADER`]'s.
pub const BACKWARD_CSV_COLUMNS: &str = "grad_input_ms,grad_input_gflops,grad_weight_ms,\
    grad_weight_gflops,grad_bias_ms,backward_ms,backward_gflops,grad_input_max_abs_err,\
    grad_weight_max_abs_err,grad_bias_max_abs_err";

/// The results as CSV: [`CSV_HEADER`], then one row per layer, `\n` line ends.
///
/// `gpu_gflops = flops / (gpu_ms * 1e6)`, `cpu_gflops` likewise, `speedup = cpu_ms / gpu_ms`
/// (GPU kernel time). A missing or non-finite value is an empty cell; text cells holding a comma,
/// a quote or a line break are quoted, with quotes doubled (RFC 4180).
pub fn csv_string(results: &[LayerResult]) -> String {
    let mut out = header(CSV_HEADER, results.len());
    for r in results {
        push_row(
            &mut out,
            [layer_cells(&r.layer, r.n, r.flops), forward_cells(Some(r))],
        );
    }
    out
}

/// Forward and backward results as CSV, one row per backward result: the columns of
/// [`csv_string`], empty where the forward pass was not measured (`forward` shorter than
/// `backward`, e.g. empty; `forward[i]` pairs with `backward[i]`), then [`BACKWARD_CSV_COLUMNS`].
/// `grad_*_gflops = flops / (ms * 1e6)`; `backward_gflops` counts both gradients and the bias
/// gradient. A missing value is an empty cell.
pub fn backward_csv_string(forward: &[LayerResult], backward: &[BackwardResult]) -> String {
    let mut out = header(
        &format!("{CSV_HEADER},{BACKWARD_CSV_COLUMNS}"),
        backward.len(),
    );
    for (i, b) in backward.iter().enumerate() {
        let f = forward.get(i);
        let (layer, n, flops) = f.map_or((&b.layer, b.n, b.flops), |f| (&f.layer, f.n, f.flops));
        push_row(
            &mut out,
            [
                layer_cells(layer, n, flops),
                forward_cells(f),
                backward_cells(b),
            ],
        );
    }
    out
}

/// Writes [`csv_string`] to `path`, atomically.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) (as [`BenchError::Wgconv`]) when the file cannot be created or
/// written (for example, its folder does not exist); no partial file is left behind.
pub fn write_csv(path: &Path, results: &[LayerResult]) -> Result<(), BenchError> {
    write_atomically(path, csv_string(results).as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a reader
/// sees the old file or the whole new one and a failure leaves nothing behind.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    crate::atomic::write_with(path, |w| {
        w.write_all(bytes)
            .map_err(|source| crate::Error::io("write", path, source))
    })?;
    Ok(())
}

/// The header line and its newline, with room for `rows` rows.
fn header(header: &str, rows: usize) -> String {
    let mut out = String::with_capacity(header.len() + 1 + rows * 192);
    out.push_str(header);
    out.push('\n');
    out
}

/// Appends one row made of groups of cells.
fn push_row<const N: usize>(out: &mut String, groups: [Vec<String>; N]) {
    out.push_str(&groups.concat().join(","));
    out.push('\n');
}

/// `name,n,c,h,w,k,r,s,stride,pad,flops`.
fn layer_cells(l: &Layer, n: usize, flops: u64) -> Vec<String> {
    let numbers = [n, l.c, l.h, l.w, l.k, l.r, l.s, l.stride, l.pad];
    std::iter::once(csv_text(&l.name))
        .chain(numbers.iter().map(usize::to_string))
        .chain([flops.to_string()])
        .collect()
}

/// `kernel,gpu_ms,...,max_abs_err`; all empty for a layer whose forward pass was not measured.
fn forward_cells(r: Option<&LayerResult>) -> Vec<String> {
    let Some(r) = r else {
        return vec![String::new(); 8];
    };
    vec![
        r.kernel.as_deref().map(csv_text).unwrap_or_default(),
        csv_number(r.gpu_ms),
        csv_number(r.gpu_e2e_ms),
        csv_number(r.cpu_ms),
        csv_number(r.gpu_ms.map(|ms| r.gflops(ms))),
        csv_number(r.cpu_ms.map(|ms| r.gflops(ms))),
        csv_number(r.speedup()),
        csv_number(r.max_abs_err),
    ]
}

/// The cells of [`BACKWARD_CSV_COLUMNS`].
fn backward_cells(b: &BackwardResult) -> Vec<String> {
    let err = |i: usize| csv_number(b.max_abs_err.map(|e| e[i]));
    vec![
        csv_number(Some(b.grad_input_ms)),
        csv_number(Some(b.gflops(b.grad_input_ms))),
        csv_number(Some(b.grad_weight_ms)),
        csv_number(Some(b.gflops(b.grad_weight_ms))),
        csv_number(Some(b.grad_bias_ms)),
        csv_number(Some(b.backward_ms)),
        csv_number(Some(b.backward_gflops())),
        err(0),
        err(1),
        err(2),
    ]
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
