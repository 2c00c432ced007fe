//! The SVG bar chart of a forward run: GPU and CPU GFLOP/s per layer and the speedup.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::error::{write_atomically, BenchError};
use super::run::LayerResult;

// Colours of the two bar series (matplotlib's tab:blue and tab:orange).
const GPU_COLOR: RGBColor = RGBColor(31, 119, 180);
const CPU_COLOR: RGBColor = RGBColor(255, 127, 14);

/// Draws a bar chart of the results to the SVG file `path`, atomically: per layer a GPU and a CPU
/// GFLOP/s bar on a log scale, the speedup `cpu_ms / gpu_ms` above the group, a legend, and
/// `title` as caption (say, adapter name and date). Missing values are left out.
///
/// # Errors
/// [`BenchError::NotSvg`] when `path` does not end in `.svg` ([`check_chart_name`]);
/// [`BenchError::Plot`] when no layer has a GPU or CPU time, or plotters fails;
/// [`Error::Io`](crate::error::Error::Io) (as [`BenchError::Wgconv`]) when the file cannot be written
/// (no partial file is left behind).
pub fn write_plot_svg(path: &Path, title: &str, results: &[LayerResult]) -> Result<(), BenchError> {
    check_chart_name(path)?;
    let svg = plot_svg_string(title, results).map_err(|message| BenchError::Plot {
        path: path.to_path_buf(),
        message,
    })?;
    write_atomically(path, svg.as_bytes())
}

/// Checks that `path` names an SVG file: its extension is `svg`, in any case. Call it before the
/// work, so a chart named `bench.png` is refused before anything runs.
///
/// # Errors
/// [`BenchError::NotSvg`] for any other extension, or none.
pub fn check_chart_name(path: &Path) -> Result<(), BenchError> {
    match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("svg") => Ok(()),
        _ => Err(BenchError::NotSvg {
            path: path.to_path_buf(),
        }),
    }
}

/// A positive, finite GFLOP/s for a time, or `None` (a log axis cannot show the rest).
fn plottable_gflops(res: &LayerResult, ms: Option<f64>) -> Option<f64> {
    ms.map(|ms| res.gflops(ms))
        .filter(|g| g.is_finite() && *g > 0.0)
}

/// The SVG text of the chart of [`write_plot_svg`]; errors are messages for [`BenchError::Plot`].
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
                let s = r.speedup().filter(|s| s.is_finite())?;
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
