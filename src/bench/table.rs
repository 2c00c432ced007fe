//! The text table of one engine's run, as `wgconv bench` prints it.

use super::run::{geomean, BackwardResult, LayerResult, REFERENCE_CHECK_MAX_MACS};
use super::suite_run::EngineRun;

impl EngineRun {
    /// The run as a text table: a `GPU: adapter` line, a header, per layer its forward row (GPU
    /// kernel and end-to-end times, GPU GFLOP/s, CPU time and GFLOP/s, speedup, largest
    /// difference) and, when the backward passes were timed, their rows under it (each pass's
    /// GPU time and GFLOP/s, and that GFLOP/s over the forward's, "vs fwd"; no CPU baseline,
    /// "n/a"), the forward kernel's algorithm (marked "(tuned)" when the tuning cache chose it),
    /// then the geometric means of the GFLOP/s. Each time is a median followed by its
    /// spread `±`: half the range of its runs, as a percentage of the median. Every column is as
    /// wide as its widest cell; a value not measured is `-`. No trailing newline.
    pub fn table(&self) -> String {
        let backward = !self.backward.is_empty();
        let mut rows = vec![[
            "layer", "pass", "GFLOP", "gpu ms", "±", "GFLOP/s", "vs fwd", "gpu e2e", "±", "cpu ms",
            "±", "GFLOP/s", "speedup", "max err", "kernel",
        ]
        .map(String::from)];
        for i in 0..self.forward.len().max(self.backward.len()) {
            let forward = self.forward.get(i);
            if let Some(f) = forward {
                rows.push(forward_row(f));
            }
            if let Some(b) = self.backward.get(i) {
                rows.extend(backward_rows(b, forward, forward.is_none()));
            }
        }
        if !backward {
            // Without backward rows, every row is a forward one at 1.00x of itself.
            for row in &mut rows {
                row[1].clear();
                row[6].clear();
            }
        }
        let mut out = match &self.adapter {
            Some(adapter) => format!("GPU: {adapter}\n"),
            None => "GPU: not measured\n".to_string(),
        };
        out.push_str(&aligned(&rows));
        out.push_str(&self.means());
        if self.backward.iter().any(|r| r.max_abs_err.is_none()) {
            out.push_str(&format!(
                "\nmax err: gradients against the CPU reference; skipped over {:.0e} \
                 multiply-adds (it is naive and slow)",
                REFERENCE_CHECK_MAX_MACS as f64
            ));
        }
        out
    }

    /// `geometric mean GFLOP/s: ...`, of each pass timed; `-` for a side not measured.
    fn means(&self) -> String {
        let forward = &self.forward;
        let gpu = mean(forward.iter().filter_map(|r| r.gpu_ms.map(|m| r.gflops(m))));
        let cpu = mean(forward.iter().filter_map(|r| r.cpu_ms.map(|m| r.gflops(m))));
        if self.backward.is_empty() {
            return format!("geometric mean GFLOP/s: gpu {gpu}, cpu {cpu}");
        }
        let backward = &self.backward;
        let input = mean(backward.iter().map(|r| r.gflops(r.grad_input_ms)));
        let weight = mean(backward.iter().map(|r| r.gflops(r.grad_weight_ms)));
        let all = mean(backward.iter().map(|r| r.backward_gflops()));
        let forward_part = if forward.is_empty() {
            String::new()
        } else {
            format!("forward gpu {gpu}, cpu {cpu}; ")
        };
        format!(
            "geometric mean GFLOP/s: {forward_part}grad input gpu {input}, grad weight gpu \
             {weight}, backward gpu {all}"
        )
    }
}

/// The geometric mean with one decimal, or `-`.
fn mean(gflops: impl IntoIterator<Item = f64>) -> String {
    number(geomean(gflops), 1)
}

/// `value` with `decimals` decimals, or `-` when there is none or it is not finite.
fn number(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// `±p%`: half the range `max - min` as a percentage of the median; empty when not measured.
fn spread(median: Option<f64>, min: Option<f64>, max: Option<f64>) -> String {
    match (median, min, max) {
        (Some(median), Some(min), Some(max)) if median > 0.0 => {
            format!("±{:.0}%", 50.0 * (max - min) / median)
        }
        _ => String::new(),
    }
}

fn error(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |e| format!("{e:.1e}"))
}

fn forward_row(f: &LayerResult) -> [String; 15] {
    let gflops = f.gpu_ms.map(|m| f.gflops(m));
    [
        f.layer.name.clone(),
        "forward".into(),
        format!("{:.3}", f.flops as f64 / 1e9),
        number(f.gpu_ms, 2),
        spread(f.gpu_ms, f.gpu_ms_min, f.gpu_ms_max),
        number(gflops, 1),
        number(gflops.map(|_| 1.0), 2),
        number(f.gpu_e2e_ms, 2),
        spread(f.gpu_e2e_ms, f.gpu_e2e_ms_min, f.gpu_e2e_ms_max),
        number(f.cpu_ms, 2),
        spread(f.cpu_ms, f.cpu_ms_min, f.cpu_ms_max),
        number(f.cpu_ms.map(|m| f.gflops(m)), 1),
        number(f.speedup(), 2),
        error(f.max_abs_err),
        match (&f.algorithm, f.tuned) {
            (Some(a), Some(true)) => format!("{a} (tuned)"),
            (Some(a), _) => a.clone(),
            (None, _) => "-".into(),
        },
    ]
}

/// The rows of the input, weight and bias gradients and of the whole backward pass; the layer's
/// name on the first when `named` (no forward row above it).
fn backward_rows(
    b: &BackwardResult,
    forward: Option<&LayerResult>,
    named: bool,
) -> Vec<[String; 15]> {
    let forward_gflops = forward.and_then(|f| f.gpu_ms.map(|m| f.gflops(m)));
    // A skipped reference check says so in the error column.
    let check = |which: usize| {
        b.max_abs_err
            .map_or_else(|| "skipped".to_string(), |e| error(Some(e[which])))
    };
    let passes = [
        ("grad input", b.flops, check(0)),
        ("grad weight", b.flops, check(1)),
        ("grad bias", b.bias_flops, check(2)),
        ("backward", b.backward_flops(), "-".to_string()),
    ];
    let times = [
        [b.grad_input_ms, b.grad_input_ms_min, b.grad_input_ms_max],
        [b.grad_weight_ms, b.grad_weight_ms_min, b.grad_weight_ms_max],
        [b.grad_bias_ms, b.grad_bias_ms_min, b.grad_bias_ms_max],
        [b.backward_ms, b.backward_ms_min, b.backward_ms_max],
    ];
    let mut rows = Vec::with_capacity(passes.len());
    for (j, ((pass, flops, max_err), [ms, min, max])) in passes.into_iter().zip(times).enumerate() {
        let gflops = flops as f64 / (ms * 1e6);
        // The bias gradient's adds are no match for a convolution's multiply-adds.
        let vs_forward = forward_gflops
            .filter(|_| pass != "grad bias")
            .map(|f| gflops / f);
        let name = if named && j == 0 {
            b.layer.name.as_str()
        } else {
            ""
        };
        rows.push([
            name.to_string(),
            pass.to_string(),
            format!("{:.3}", flops as f64 / 1e9),
            number(Some(ms), 2),
            spread(Some(ms), Some(min), Some(max)),
            number(Some(gflops), 1),
            number(vs_forward, 2),
            "-".into(),
            String::new(),
            "n/a".into(),
            String::new(),
            "n/a".into(),
            "-".into(),
            max_err,
            "-".into(),
        ]);
    }
    rows
}

/// The rows as lines, each column as wide as its widest cell (in characters): the first two
/// left-aligned, the rest right-aligned, two spaces apart; empty columns are left out.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..N).map(width).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if w == 0 {
                continue;
            }
            if !line.is_empty() {
                line.push_str("  ");
            }
            if c < 2 {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("{cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
