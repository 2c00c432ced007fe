//! The results as files: the JSON document and the CSV tables, written atomically.

use std::path::Path;

use serde_json::{json, Value};

use super::chart::{check_chart_name, write_plot_svg};
use super::error::{write_atomically, BenchError};
use super::run::{BackwardResult, LayerResult};
use super::suite_run::SuiteResults;
use super::suites::Layer;

impl SuiteResults {
    /// The JSON document of `wgconv bench --json`, pretty-printed:
    ///
    /// ```text
    /// { "adapter": "name, ...", "backend": "Vulkan, ...", "batch": N, "repeat": R,
    ///   "results": [ forward rows..., backward rows... ] }
    /// ```
    ///
    /// Every row has the layer (`name`, `n`, `c`, `h`, `w`, `k`, `r`, `s`, `stride`, `pad`),
    /// `pass` and `flops`. A forward row (`"pass": "forward"`) adds `kernel`, `algorithm` (the
    /// name `--algorithm` takes), `tuned` (whether the tuning cache chose the kernel), `gpu_ms`,
    /// `gpu_e2e_ms`, `cpu_ms` and `max_abs_err`; a backward row (`"pass": "backward"`, GPU
    /// kernel times, no CPU baseline) adds `bias_flops`, `backward_flops`, `grad_input_ms`,
    /// `grad_input_gflops`, `grad_weight_ms`, `grad_weight_gflops`, `grad_bias_ms`, `backward_ms`,
    /// `backward_gflops`, `reference_checked` and `grad_{input,weight,bias}_max_abs_err`. Times
    /// are medians; each also comes with its fastest and slowest run, `*_ms_min` and `*_ms_max`
    /// (`gpu_ms_min`, `grad_bias_ms_max`, ...). What was not measured (or is not finite) is
    /// `null`. Rows are named as in [`SuiteResults::forward_rows`].
    pub fn json(&self) -> String {
        let mut results: Vec<Value> = self.forward_rows().iter().map(forward_json).collect();
        results.extend(self.backward_rows().iter().map(backward_json));
        let adapters: Vec<&str> = self.adapters().map(|a| a.name.as_str()).collect();
        let backends: Vec<String> = self
            .adapters()
            .map(|a| format!("{:?}", a.backend))
            .collect();
        let document = json!({
            "adapter": adapters.join(", "),
            "backend": backends.join(", "),
            "batch": self.batch,
            "repeat": self.repeat,
            "results": results,
        });
        // A `Value` always serializes (its keys are strings), so `{:#}` cannot fail.
        format!("{document:#}")
    }

    /// The CSV of `wgconv bench --csv`: [`backward_csv_string`] of [`SuiteResults::forward_rows`]
    /// and [`SuiteResults::backward_rows`] when the backward passes were timed, else
    /// [`csv_string`] of the forward rows.
    pub fn csv(&self) -> String {
        if self.passes.backward() {
            backward_csv_string(&self.forward_rows(), &self.backward_rows())
        } else {
            csv_string(&self.forward_rows())
        }
    }
}

/// The files of `wgconv bench --json`, `--csv` and `--plot`; `None` for one not wanted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outputs<'a> {
    /// [`SuiteResults::json`].
    pub json: Option<&'a Path>,
    /// [`SuiteResults::csv`].
    pub csv: Option<&'a Path>,
    /// The chart of [`write_plot_svg`], of [`SuiteResults::forward_rows`].
    pub plot: Option<&'a Path>,
}

impl Outputs<'_> {
    /// Checks every output before the run, so none is written when another cannot be: the chart
    /// is named `.svg` ([`check_chart_name`]) and each is writable
    /// ([`check_writable`](crate::atomic::check_writable)).
    ///
    /// # Errors
    /// [`BenchError::NotSvg`]; [`Error::Io`](crate::error::Error::Io) (as [`BenchError::Wgconv`]) for a
    /// missing folder, a directory, ...
    pub fn check(&self) -> Result<(), BenchError> {
        if let Some(path) = self.plot {
            check_chart_name(path)?;
        }
        for path in [self.json, self.csv, self.plot].into_iter().flatten() {
            crate::atomic::check_writable(path)?;
        }
        Ok(())
    }

    /// Writes each wanted file, atomically, calling `wrote` after each. The chart's title names
    /// the adapters and the batch.
    ///
    /// # Errors
    /// The first error of [`write_json`], [`write_csv`] or [`write_plot_svg`].
    pub fn write(
        &self,
        results: &SuiteResults,
        mut wrote: impl FnMut(&Path),
    ) -> Result<(), BenchError> {
        if let Some(path) = self.json {
            write_json(path, results)?;
            wrote(path);
        }
        if let Some(path) = self.csv {
            write_csv(path, results)?;
            wrote(path);
        }
        if let Some(path) = self.plot {
            let adapters: Vec<&str> = results.adapters().map(|a| a.name.as_str()).collect();
            let title = format!(
                "wgconv bench: {} vs CPU baseline, batch {}",
                adapters.join(" / "),
                results.batch
            );
            write_plot_svg(path, &title, &results.forward_rows())?;
            wrote(path);
        }
        Ok(())
    }
}

/// Writes [`SuiteResults::json`] to `path`, atomically.
///
/// # Errors
/// [`Error::Io`](crate::error::Error::Io) (as [`BenchError::Wgconv`]) when the file cannot be created or
/// written (for example, its folder does not exist); no partial file is left behind.
pub fn write_json(path: &Path, results: &SuiteResults) -> Result<(), BenchError> {
    write_atomically(path, results.json().as_bytes())
}

/// A row of the JSON document: the layer, `pass`, then `fields`.
fn json_row(layer: &Layer, n: usize, pass: &str, fields: Value) -> Value {
    let mut row = json!({
        "name": layer.name, "dims": layer.dims, "n": n, "c": layer.c, "d": layer.d, "h": layer.h, "w": layer.w, "k": layer.k, "t": layer.t,
        "r": layer.r, "s": layer.s, "stride": layer.stride, "pad": layer.pad, "padding_mode": layer.mode.name(), "activation": layer.activation.to_string(), "pass": pass,
    });
    if let (Some(row), Value::Object(fields)) = (row.as_object_mut(), fields) {
        row.extend(fields);
    }
    row
}

fn forward_json(r: &LayerResult) -> Value {
    json_row(
        &r.layer,
        r.n,
        "forward",
        json!({
            "flops": r.flops, "kernel": r.kernel, "algorithm": r.algorithm, "tuned": r.tuned,
            "gpu_ms": r.gpu_ms, "gpu_e2e_ms": r.gpu_e2e_ms,
            "cpu_ms": r.cpu_ms, "max_abs_err": r.max_abs_err,
            "gpu_ms_min": r.gpu_ms_min, "gpu_ms_max": r.gpu_ms_max,
            "gpu_e2e_ms_min": r.gpu_e2e_ms_min, "gpu_e2e_ms_max": r.gpu_e2e_ms_max,
            "cpu_ms_min": r.cpu_ms_min, "cpu_ms_max": r.cpu_ms_max,
        }),
    )
}

/// FLOPs of one gradient pass (input or weight), GPU kernel times; the errors are null where
/// the reference check was skipped.
fn backward_json(r: &BackwardResult) -> Value {
    let err = |i: usize| r.max_abs_err.map(|e| e[i]);
    json_row(
        &r.layer,
        r.n,
        "backward",
        json!({
            "flops": r.flops, "bias_flops": r.bias_flops, "backward_flops": r.backward_flops(),
            "grad_input_ms": r.grad_input_ms, "grad_input_gflops": r.gflops(r.grad_input_ms),
            "grad_weight_ms": r.grad_weight_ms, "grad_weight_gflops": r.gflops(r.grad_weight_ms),
            "grad_bias_ms": r.grad_bias_ms,
            "backward_ms": r.backward_ms, "backward_gflops": r.backward_gflops(),
            "reference_checked": r.max_abs_err.is_some(),
            "grad_input_max_abs_err": err(0), "grad_weight_max_abs_err": err(1),
            "grad_bias_max_abs_err": err(2),
            "grad_input_ms_min": r.grad_input_ms_min, "grad_input_ms_max": r.grad_input_ms_max,
            "grad_weight_ms_min": r.grad_weight_ms_min, "grad_weight_ms_max": r.grad_weight_ms_max,
            "grad_bias_ms_min": r.grad_bias_ms_min, "grad_bias_ms_max": r.grad_bias_ms_max,
            "backward_ms_min": r.backward_ms_min, "backward_ms_max": r.backward_ms_max,
        }),
    )
}

/// The CSV columns of a forward result, in their order since the first release.
macro_rules! forward_columns {
    () => {
        "name,n,c,h,w,k,r,s,stride,pad,flops,kernel,gpu_ms,gpu_e2e_ms,cpu_ms,gpu_gflops,\
         cpu_gflops,speedup,max_abs_err"
    };
}

/// The CSV columns of a backward result, in their order since the first release.
macro_rules! backward_columns {
    () => {
        "grad_input_ms,grad_input_gflops,grad_weight_ms,grad_weight_gflops,grad_bias_ms,\
         backward_ms,backward_gflops,grad_input_max_abs_err,grad_weight_max_abs_err,\
         grad_bias_max_abs_err"
    };
}

/// The fastest and slowest runs of a forward result's times, added after every older column.
macro_rules! forward_spread_columns {
    () => {
        "gpu_ms_min,gpu_ms_max,gpu_e2e_ms_min,gpu_e2e_ms_max,cpu_ms_min,cpu_ms_max"
    };
}

/// The fastest and slowest runs of a backward result's times, added after every older column.
macro_rules! backward_spread_columns {
    () => {
        "grad_input_ms_min,grad_input_ms_max,grad_weight_ms_min,grad_weight_ms_max,\
         grad_bias_ms_min,grad_bias_ms_max,backward_ms_min,backward_ms_max"
    };
}

/// The CSV header line written by [`csv_string`] (without the newline). The columns of earlier
/// versions keep their names, meanings and places; newer ones follow them.
pub const CSV_HEADER: &str = concat!(forward_columns!(), ",", forward_spread_columns!());

/// The CSV header line written by [`backward_csv_string`] (without the newline): the forward
/// columns of earlier versions, the backward ones, then the spreads of both.
pub const BACKWARD_CSV_HEADER: &str = concat!(
    forward_columns!(),
    ",",
    backward_columns!(),
    ",",
    forward_spread_columns!(),
    ",",
    backward_spread_columns!()
);

/// The results as CSV: [`CSV_HEADER`], then one row per layer, `\n` line ends.
///
/// `gpu_gflops = flops / (gpu_ms * 1e6)`, `cpu_gflops` likewise, `speedup = cpu_ms / gpu_ms`
/// (GPU kernel time); times are medians, `*_ms_min` and `*_ms_max` the fastest and slowest run.
/// A missing or non-finite value is an empty cell; text cells holding a comma, a quote or a line
/// break are quoted, with quotes doubled (RFC 4180).
pub fn csv_string(results: &[LayerResult]) -> String {
    let mut out = header(CSV_HEADER, results.len());
    for r in results {
        let layer = layer_cells(&r.layer, r.n, r.flops);
        push_row(
            &mut out,
            [layer, forward_cells(Some(r)), forward_spread_cells(Some(r))],
        );
    }
    out
}

/// Forward and backward results as CSV, one row per backward result ([`BACKWARD_CSV_HEADER`]):
/// the cells of [`csv_string`], empty where the forward pass was not measured (`forward`
/// shorter than `backward`, e.g. empty; `forward[i]` pairs with `backward[i]`), and the
/// backward ones. `grad_*_gflops = flops / (ms * 1e6)`; `backward_gflops` counts both gradients
/// and the bias gradient. A missing value is an empty cell.
pub fn backward_csv_string(forward: &[LayerResult], backward: &[BackwardResult]) -> String {
    let mut out = header(BACKWARD_CSV_HEADER, backward.len());
    for (i, b) in backward.iter().enumerate() {
        let f = forward.get(i);
        let (layer, n, flops) = f.map_or((&b.layer, b.n, b.flops), |f| (&f.layer, f.n, f.flops));
        push_row(
            &mut out,
            [
                layer_cells(layer, n, flops),
                forward_cells(f),
                backward_cells(b),
                forward_spread_cells(f),
                backward_spread_cells(b),
            ],
        );
    }
    out
}

/// Writes [`SuiteResults::csv`] to `path`, atomically.
///
/// # Errors
/// [`Error::Io`](crate::error::Error::Io) (as [`BenchError::Wgconv`]) when the file cannot be created or
/// written (for example, its folder does not exist); no partial file is left behind.
pub fn write_csv(path: &Path, results: &SuiteResults) -> Result<(), BenchError> {
    write_atomically(path, results.csv().as_bytes())
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

/// The fastest and slowest runs of the GPU kernel, GPU end-to-end and CPU times.
fn forward_spread_cells(r: Option<&LayerResult>) -> Vec<String> {
    let Some(r) = r else {
        return vec![String::new(); 6];
    };
    [
        r.gpu_ms_min,
        r.gpu_ms_max,
        r.gpu_e2e_ms_min,
        r.gpu_e2e_ms_max,
        r.cpu_ms_min,
        r.cpu_ms_max,
    ]
    .map(csv_number)
    .to_vec()
}

/// The fastest and slowest runs of the four backward times.
fn backward_spread_cells(b: &BackwardResult) -> Vec<String> {
    [
        b.grad_input_ms_min,
        b.grad_input_ms_max,
        b.grad_weight_ms_min,
        b.grad_weight_ms_max,
        b.grad_bias_ms_min,
        b.grad_bias_ms_max,
        b.backward_ms_min,
        b.backward_ms_max,
    ]
    .map(|v| csv_number(Some(v)))
    .to_vec()
}

/// The cells of the backward columns (medians, GFLOP/s, differences).
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
