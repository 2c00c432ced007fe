//! The command-line tool: success paths against the CPU reference, and the error path
//! (exit status, one message on stderr, no output file).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use wgconv::{cpu, io, Conv2dParams, Padding};

use common::{files_in, npy_file, wgconv};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_matches_the_cpu_reference_on_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[2, 4, 9, 7], |i| {
        ((i * 37) % 23) as f32 / 11.0 - 1.0
    });
    let w = npy_file(dir.path(), "w.npy", &[6, 2, 3, 2], |i| {
        ((i * 13) % 17) as f32 / 8.0 - 1.0
    });
    let b = npy_file(dir.path(), "b.npy", &[6], |i| i as f32 / 4.0);
    let params = Conv2dParams::default()
        .with_stride((2, 1))
        .with_padding(Padding::explicit(1, 0, 2, 1))
        .with_dilation((1, 2))
        .with_groups(2);
    let want = cpu::reference::conv2d(
        &io::read_npy(&x).unwrap(),
        &io::read_npy(&w).unwrap(),
        Some(&io::read_npy(&b).unwrap()),
        &params,
    )
    .unwrap();
    for device in ["gpu", "cpu"] {
        let y = dir.path().join(format!("y_{device}.npy"));
        let out = wgconv(&[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--bias",
            &b,
            "--stride",
            "2,1",
            "--padding",
            "1,0,2,1",
            "--dilation",
            "1,2",
            "--groups",
            "2",
            "--device",
            device,
            "--output",
            y.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{device}: {}", stderr(&out));
        let got = io::read_npy(&y).unwrap();
        assert_eq!(got.shape(), want.shape());
        for (g, r) in got.data().iter().zip(want.data()) {
            assert!(
                (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                "{device}: {g} vs {r}"
            );
        }
    }
}

/// A 3-D weight makes `run` a conv1d: `--padding 1,3` is before,after, and an unbatched
/// `[C, L]` input gives an unbatched output; a per-axis count a conv1d does not take is refused.
#[test]
fn run_with_a_3d_weight_is_a_conv1d_batched_or_unbatched() {
    let dir = tempfile::tempdir().unwrap();
    let w = npy_file(dir.path(), "w.npy", &[4, 3, 5], |i| {
        ((i * 13) % 17) as f32 / 8.0 - 1.0
    });
    let params = wgconv::Conv1dParams::default()
        .with_stride(2)
        .with_padding([[1, 3]])
        .with_dilation(2);
    for (name, shape) in [("x.npy", &[2, 3, 50][..]), ("x1.npy", &[3, 50][..])] {
        let x = npy_file(dir.path(), name, shape, |i| {
            ((i * 37) % 23) as f32 / 11.0 - 1.0
        });
        let want = cpu::reference::conv1d(
            &io::read_npy(&x).unwrap(),
            &io::read_npy(&w).unwrap(),
            None,
            &params,
        )
        .unwrap();
        for device in ["gpu", "cpu"] {
            let y = dir.path().join(format!("y_{device}_{name}"));
            let out = wgconv(&[
                "run",
                "--input",
                &x,
                "--weight",
                &w,
                "--stride",
                "2",
                "--padding",
                "1,3",
                "--dilation",
                "2",
                "--device",
                device,
                "--output",
                y.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{device}: {}", stderr(&out));
            let got = io::read_npy(&y).unwrap();
            assert_eq!(got.shape(), want.shape(), "{device} {name}");
            for (g, r) in got.data().iter().zip(want.data()) {
                assert!(
                    (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                    "{device}: {g} vs {r}"
                );
            }
        }
    }
    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    let before = files_in(dir.path());
    let out = wgconv(&[
        "run",
        "--input",
        x.to_str().unwrap(),
        "--weight",
        &w,
        "--stride",
        "1,2",
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "wgconv: error: --stride of a 1-D convolution takes 1 number, but got 2 numbers"
    );
    assert_eq!(files_in(dir.path()), before, "no output file");
}

/// A 5-D weight makes `run` a conv3d, with per-axis stride, padding and dilation.
#[test]
fn run_with_a_5d_weight_is_a_conv3d() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[2, 4, 5, 6, 7], |i| {
        ((i * 37) % 23) as f32 / 11.0 - 1.0
    });
    let w = npy_file(dir.path(), "w.npy", &[6, 2, 2, 3, 2], |i| {
        ((i * 13) % 17) as f32 / 8.0 - 1.0
    });
    let params = wgconv::Conv3dParams::default()
        .with_stride([1, 2, 1])
        .with_padding([[1, 0], [1, 1], [0, 2]])
        .with_dilation([2, 1, 1])
        .with_groups(2);
    let want = cpu::reference::conv_nd(
        &io::read_npy(&x).unwrap(),
        &io::read_npy(&w).unwrap(),
        None,
        &params,
    )
    .unwrap();
    for device in ["gpu", "cpu"] {
        let y = dir.path().join(format!("y_{device}.npy"));
        let out = wgconv(&[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--stride",
            "1,2,1",
            "--padding",
            "1,0,1,1,0,2",
            "--dilation",
            "2,1,1",
            "--groups",
            "2",
            "--device",
            device,
            "--output",
            y.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{device}: {}", stderr(&out));
        let got = io::read_npy(&y).unwrap();
        assert_eq!(got.shape(), want.shape(), "{device}");
        for (g, r) in got.data().iter().zip(want.data()) {
            assert!(
                (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                "{device}: {g} vs {r}"
            );
        }
    }
}

#[test]
fn run_accepts_same_and_valid_padding() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[1, 2, 7, 8], |i| (i % 5) as f32);
    let w = npy_file(dir.path(), "w.npy", &[3, 2, 4, 2], |i| (i % 3) as f32 - 1.0);
    for (padding, want) in [("same", [1, 3, 7, 8]), ("valid", [1, 3, 4, 7])] {
        let y = dir.path().join(format!("{padding}.npy"));
        let out = wgconv(&[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--padding",
            padding,
            "--output",
            y.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(io::read_npy(&y).unwrap().shape(), want);
    }
}

#[test]
fn channel_mismatch_fails_with_one_message_and_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[1, 4, 8, 8], |_| 1.0);
    let w = npy_file(dir.path(), "w.npy", &[8, 3, 1, 1], |_| 1.0);
    let y = dir.path().join("y.npy");
    let before = files_in(dir.path());
    for device in ["gpu", "cpu"] {
        let out = wgconv(&[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--device",
            device,
            "--output",
            y.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{device}");
        let err = stderr(&out);
        assert!(
            err.contains(
                "expected input[1, 4, 8, 8] to have 3 channels, but got 4 channels instead"
            ),
            "{device}: {err}"
        );
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("wgconv: error"))
                .count(),
            1,
            "{device}: {err}"
        );
        assert_eq!(files_in(dir.path()), before, "{device}: files changed");
    }
}

#[test]
fn zero_stride_and_bad_padding_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[1, 1, 5, 5], |_| 1.0);
    let w = npy_file(dir.path(), "w.npy", &[1, 1, 3, 3], |_| 1.0);
    let y = dir.path().join("y.npy");
    let y = y.to_str().unwrap();
    let out = wgconv(&[
        "run", "--input", &x, "--weight", &w, "--stride", "0", "--output", y,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("non-positive stride is not supported: got stride=(0, 0)"),
        "{}",
        stderr(&out)
    );
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--padding",
        "1,2,3",
        "--output",
        y,
    ]);
    // Three numbers parse (one per axis of a 3-D convolution), but a 2-D weight takes 1, 2 or 4.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--padding of a 2-D convolution takes 1, 2 (one per axis) or 4 (before,after per axis) numbers, but got 3 numbers"
        ),
        "{}",
        stderr(&out)
    );
    let out = wgconv(&[
        "run", "--input", &x, "--weight", &w, "--stride", "-1", "--output", y,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--padding",
        "same",
        "--stride",
        "2",
        "--output",
        y,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("padding='same' is not supported for strided convolutions"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(y).exists());
}

#[test]
fn missing_and_non_float32_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let w = npy_file(dir.path(), "w.npy", &[1, 1, 3, 3], |_| 1.0);
    let y = dir.path().join("y.npy");
    let missing = dir.path().join("missing.npy");
    let out = wgconv(&[
        "run",
        "--input",
        missing.to_str().unwrap(),
        "--weight",
        &w,
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.npy"), "{}", stderr(&out));
    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"this is not numpy").unwrap();
    let out = wgconv(&[
        "run",
        "--input",
        garbage.to_str().unwrap(),
        "--weight",
        &w,
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a readable float32 .npy file"),
        "{}",
        stderr(&out)
    );
    assert!(!y.exists());
}

#[test]
fn failed_run_leaves_an_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[1, 2, 5, 5], |_| 1.0);
    let w = npy_file(dir.path(), "w.npy", &[1, 3, 3, 3], |_| 1.0);
    let y = dir.path().join("y.npy");
    std::fs::write(&y, b"previous result").unwrap();
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&y).unwrap(), b"previous result");
}

#[test]
fn info_lists_adapters_and_the_pick() {
    let out = wgconv(&["info"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("adapters wgpu sees") && text.contains("wgconv would use:"),
        "{text}"
    );
}

#[test]
fn no_arguments_runs_the_lecture_examples() {
    let out = wgconv(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "19.0   25.0",
        "37.0   43.0",
        "56.0   72.0",
        "104.0  120.0",
        "148.0  172.0",
        "192.0  224.0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.contains("equals the matrix product K[2x3] . X[3x9]: true"),
        "{text}"
    );
    assert!(text.contains("-> 4x4") && text.contains("-> 2x2"), "{text}");
}

#[test]
fn bench_quick_writes_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = wgconv(&[
        "bench",
        "--suite",
        "quick",
        "--repeat",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("geometric mean GFLOP/s"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    assert!(v["backend"].is_string());
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), wgconv::bench::quick_suite().len());
    for r in results {
        for key in [
            "name", "n", "c", "h", "w", "k", "r", "s", "stride", "pad", "flops",
        ] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        // The kernel by its stable name, e.g. conv2d_igemm_regtile_8x4_padded.
        let kernel = r["kernel"].as_str().unwrap_or_default();
        assert!(
            kernel.starts_with("conv2d_")
                && kernel
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "kernel in {r}"
        );
        // Today's medians, and the fastest and slowest runs around them.
        for key in ["gpu_ms", "gpu_e2e_ms", "cpu_ms"] {
            let time = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
            let (min, median, max) = (
                time(&format!("{key}_min")),
                time(key),
                time(&format!("{key}_max")),
            );
            assert!(0.0 < min && min <= median && median <= max, "{key} in {r}");
        }
        // Every bench run is a correctness check as well: data and bias lie in [-1, 1], so each
        // side is within K * eps32 (+ eps32 for the bias) of the exact result (tests/common).
        let k = ["c", "r", "s"]
            .iter()
            .map(|key| r[*key].as_f64().unwrap())
            .product::<f64>();
        let eps = f64::from(f32::EPSILON);
        let err = r["max_abs_err"].as_f64().unwrap();
        assert!(
            err <= 2.0 * (k * eps + eps),
            "GPU and CPU disagree by {err} in {r}"
        );
    }
}

#[test]
fn bench_takes_a_suite_file_and_writes_csv_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.txt");
    std::fs::write(&suite, "# two small layers\nsmall3x3 8 16 16 -> 8 3x3 pad 1\nsmall1x1 8 16 16 -> 16 1x1 stride 2\n").unwrap();
    let (csv, svg) = (dir.path().join("b.csv"), dir.path().join("b.svg"));
    let out = wgconv(&[
        "bench",
        "--suite",
        suite.to_str().unwrap(),
        "--repeat",
        "1",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(wgconv::bench::CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with("small3x3,1,8,16,16,8,3,3,1,1,"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with("small1x1,1,8,16,16,16,1,1,2,0,"),
        "{}",
        rows[1]
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("small3x3") && chart.contains("small1x1"));
    // The table goes to stdout as plain text when piped: no progress-bar escape codes.
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

#[test]
fn bench_of_one_side_prints_a_dash_not_nan_for_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.txt");
    std::fs::write(&suite, "small 4 8 8 -> 4 3x3 pad 1\n").unwrap();
    let suite = suite.to_str().unwrap();
    for (device, pass, means) in [
        ("gpu", "forward", "gpu "),
        ("cpu", "forward", "gpu -, cpu "),
        ("gpu", "both", "forward gpu "),
    ] {
        let out = wgconv(&[
            "bench", "--suite", suite, "--repeat", "1", "--device", device, "--pass", pass,
        ]);
        assert!(out.status.success(), "{device}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("NaN"), "{device} {pass}:\n{text}");
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("geometric mean GFLOP/s: "))
            .unwrap_or_default();
        assert!(line.starts_with(means), "{device} {pass}:\n{text}");
        if device == "gpu" {
            assert!(line.contains("cpu -"), "{device} {pass}:\n{text}");
        }
    }
}

#[test]
fn bench_pass_both_times_the_gradients_next_to_the_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = wgconv(&[
        "bench",
        "--suite",
        "quick",
        "--pass",
        "both",
        "--repeat",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "forward",
        "grad input",
        "grad weight",
        "grad bias",
        "backward",
    ] {
        assert!(text.contains(row), "no {row} row in\n{text}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = v["results"].as_array().unwrap();
    let of_pass = |pass: &str| results.iter().filter(|r| r["pass"] == pass).count();
    let layers = wgconv::bench::quick_suite().len();
    assert_eq!(
        (of_pass("forward"), of_pass("backward")),
        (layers, layers),
        "{v}"
    );
    let eps = f64::from(f32::EPSILON);
    for r in results.iter().filter(|r| r["pass"] == "backward") {
        let number = |key: &str| {
            r[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {r}"))
        };
        for key in [
            "flops",
            "grad_input_ms",
            "grad_input_gflops",
            "grad_weight_ms",
            "grad_weight_gflops",
            "grad_bias_ms",
            "backward_ms",
            "backward_gflops",
        ] {
            assert!(number(key) > 0.0, "{key} in {r}");
        }
        for key in [
            "grad_input_ms",
            "grad_weight_ms",
            "grad_bias_ms",
            "backward_ms",
        ] {
            let (min, max) = (number(&format!("{key}_min")), number(&format!("{key}_max")));
            assert!(min <= number(key) && number(key) <= max, "{key} in {r}");
        }
        // The quick suite is small enough for the reference check. grad_output, the input and
        // the weights lie in [-1, 1]: the input gradient sums K*R*S products per element, the
        // weight and bias gradients N*P*Q, each within that many eps32 of the exact sum.
        assert_eq!(r["reference_checked"], true, "{r}");
        let out_len = |size: &str, kernel: &str| {
            (number(size) + 2.0 * number("pad") - number(kernel)) / number("stride") + 1.0
        };
        let terms = number("n") * out_len("h", "r").floor() * out_len("w", "s").floor();
        for (key, k) in [
            (
                "grad_input_max_abs_err",
                number("k") * number("r") * number("s"),
            ),
            ("grad_weight_max_abs_err", terms),
            ("grad_bias_max_abs_err", terms),
        ] {
            let err = number(key);
            assert!(
                (0.0..=2.0 * k * eps).contains(&err),
                "{key} = {err} over {} in {r}",
                2.0 * k * eps
            );
        }
    }
}

#[test]
fn bench_pass_backward_writes_csv_rows_with_empty_forward_cells() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.txt");
    std::fs::write(
        &suite,
        "tiny3x3 4 9 9 -> 6 3x3 stride 2 pad 1
",
    )
    .unwrap();
    let csv = dir.path().join("b.csv");
    let out = wgconv(&[
        "bench",
        "--suite",
        suite.to_str().unwrap(),
        "--pass",
        "backward",
        "--repeat",
        "1",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header = wgconv::bench::BACKWARD_CSV_HEADER;
    assert_eq!(lines.first().copied(), Some(header));
    assert_eq!(lines.len(), 2, "{text}");
    let cells: Vec<&str> = lines[1].split(',').collect();
    let column = |name: &str| cells[header.split(',').position(|h| h == name).unwrap()];
    // 2 * N*K*P*Q * C*R*S = 2 * 6*5*5 * 4*3*3
    assert_eq!(column("name"), "tiny3x3");
    assert_eq!(column("flops"), "10800");
    assert_eq!(
        column("gpu_ms"),
        "",
        "the forward pass was not timed: {text}"
    );
    for name in ["grad_input_ms", "grad_weight_gflops", "backward_ms"] {
        assert!(
            column(name).parse::<f64>().is_ok_and(|v| v > 0.0),
            "{name} in {text}"
        );
    }
    assert!(column("grad_weight_max_abs_err").parse::<f64>().unwrap() < 1e-4);
}

#[test]
fn bench_refuses_an_unknown_pass_and_a_cpu_backward_as_usage_errors() {
    for args in [
        &["bench", "--pass", "sideways"][..],
        &[
            "bench", "--suite", "quick", "--pass", "backward", "--device", "cpu",
        ],
    ] {
        let out = wgconv(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--pass"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn bench_refuses_a_chart_not_named_svg_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["out.png", "out.svg.txt", "chart"] {
        let chart = dir.path().join(name);
        let out = wgconv(&[
            "bench",
            "--suite",
            "quick",
            "--plot",
            chart.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "wgconv: error: {}: the chart is SVG, so its name must end in .svg\n",
                chart.display()
            )
        );
        assert!(out.stdout.is_empty(), "{name}: the benchmark ran first");
    }
    assert!(files_in(dir.path()).is_empty());
    // The extension in any case, as README's chart command writes it.
    let chart = dir.path().join("BENCH.SVG");
    let suite = dir.path().join("one.suite");
    std::fs::write(&suite, "one 4 8 8 -> 4 3x3 pad 1\n").unwrap();
    let out = wgconv(&[
        "bench",
        "--suite",
        suite.to_str().unwrap(),
        "--repeat",
        "1",
        "--plot",
        chart.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
}

#[test]
fn bench_refuses_a_bad_suite_file_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.txt");
    std::fs::write(&suite, "fine 3 8 8 -> 4 3x3\nbroken 3 8 -> 4 3x3\n").unwrap();
    let out = wgconv(&["bench", "--suite", suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.txt:2:") && err.contains("broken 3 8 -> 4 3x3"),
        "{err}"
    );
}

#[test]
fn every_verb_has_help_with_examples() {
    for verb in [
        "demo",
        "info",
        "run",
        "bench",
        "filter",
        "sample-image",
        "train-edge",
    ] {
        let out = wgconv(&[verb, "--help"]);
        assert!(out.status.success(), "{verb}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{verb} --help has no example:\n{text}"
        );
    }
    let out = wgconv(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit status: 0 success, 1 error"));
}

#[test]
fn float64_npy_and_unwritable_output_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A float64 .npy (numpy's default dtype) is refused with the reason, not misread.
    let x64 = dir.path().join("x64.npy");
    let array = ndarray::Array4::<f64>::zeros((1, 1, 4, 4));
    ndarray_npy::write_npy(&x64, &array).unwrap();
    let w = npy_file(dir.path(), "w.npy", &[1, 1, 3, 3], |_| 1.0);
    let y = dir.path().join("y.npy");
    let out = wgconv(&[
        "run",
        "--input",
        x64.to_str().unwrap(),
        "--weight",
        &w,
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a readable float32 .npy file"),
        "{}",
        stderr(&out)
    );
    assert!(!y.exists());
    // An output in a folder that does not exist: an I/O error naming the path, nothing written.
    let x = npy_file(dir.path(), "x.npy", &[1, 1, 4, 4], |_| 1.0);
    let missing = dir.path().join("no/such/folder/y.npy");
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--output",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no/such/folder/y.npy"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(dir.path()), ["w.npy", "x.npy", "x64.npy"]);
}

#[test]
fn a_reader_that_stops_early_ends_the_tool_quietly_not_with_a_panic() {
    // The reader closes the pipe at once; wgconv only writes after creating its engine.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#""$0" info | (exec 0<&-; sleep 1); echo "status=${PIPESTATUS[0]}""#)
        .arg(env!("CARGO_BIN_EXE_wgconv"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status=0"), "{stdout}\n{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn train_edge_prints_the_lecture_loop_and_learns_the_kernel() {
    let out = wgconv(&["train-edge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let losses: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("batch "))
        .map(|l| {
            let (step, loss) = l.split_once(", loss ").expect("batch N, loss X");
            assert!(step.parse::<u32>().unwrap() % 2 == 0, "{l}");
            loss.parse().unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 5, "{text}");
    assert!(losses[4] < losses[0], "{text}");
    let kernel = text
        .lines()
        .find_map(|l| l.strip_prefix("learned kernel: ["))
        .and_then(|l| l.strip_suffix(']'))
        .expect("the learned kernel line");
    let k: Vec<f64> = kernel.split(", ").map(|v| v.parse().unwrap()).collect();
    assert!(
        (k[0] - 1.0).abs() < 0.1 && (k[1] + 1.0).abs() < 0.1,
        "{text}"
    );
    // A learning rate that is not a finite number is a usage error.
    let out = wgconv(&["train-edge", "--lr", "inf"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'inf' is inf, not a finite number"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_xdg_runtime_dir_complaint_on_a_headless_box() {
    for backend in ["vulkan", "gl"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wgconv"))
            .arg("info")
            .env_remove("XDG_RUNTIME_DIR")
            .env("WGPU_BACKEND", backend)
            .output()
            .unwrap();
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("XDG_RUNTIME_DIR"),
            "{backend}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_error_returned_from_main_prints_its_message() {
    let e = wgconv::cpu::reference::conv2d(
        &wgconv::Tensor::full([1, 4, 8, 8], 1.0).unwrap(),
        &wgconv::Tensor::full([8, 3, 1, 1], 1.0).unwrap(),
        None,
        &wgconv::Conv2dParams::default(),
    )
    .unwrap_err();
    // `fn main() -> wgconv::Result<()>` prints the error's Debug form.
    assert_eq!(format!("{e:?}"), e.to_string());
    assert!(format!("{e:?}").starts_with("Given groups=1, weight of size [8, 3, 1, 1]"));
}

#[test]
fn run_takes_a_padding_mode_on_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[2, 3, 6, 7], |i| {
        ((i * 29) % 19) as f32 / 9.0 - 1.0
    });
    let w = npy_file(dir.path(), "w.npy", &[4, 3, 3, 2], |i| {
        ((i * 7) % 11) as f32 / 5.0 - 1.0
    });
    for mode in ["reflect", "replicate", "circular"] {
        let params = wgconv::Conv2dParams::default()
            .with_padding(wgconv::Padding::explicit(2, 1, 0, 1))
            .with_padding_mode(mode.parse().unwrap());
        let want = cpu::reference::conv2d(
            &io::read_npy(&x).unwrap(),
            &io::read_npy(&w).unwrap(),
            None,
            &params,
        )
        .unwrap();
        for device in ["gpu", "cpu"] {
            let y = dir.path().join(format!("y_{mode}_{device}.npy"));
            let out = wgconv(&[
                "run",
                "--input",
                &x,
                "--weight",
                &w,
                "--padding",
                "2,1,0,1",
                "--padding-mode",
                mode,
                "--device",
                device,
                "--output",
                y.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{mode} {device}: {}", stderr(&out));
            let got = io::read_npy(&y).unwrap();
            assert_eq!(got.shape(), want.shape(), "{mode} {device}");
            for (g, r) in got.data().iter().zip(want.data()) {
                assert!(
                    (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                    "{mode} {device}: {g} vs {r}"
                );
            }
        }
    }
    // A mode that does not exist is a usage error naming the ones that do.
    let y = dir.path().join("bad.npy");
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--padding-mode",
        "mirror",
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}"),
        "{}",
        stderr(&out)
    );
    // Reflect padding 6 fits the width of 7 but not the height of 6: refused in PyTorch's words
    // (the width is checked first, then the height, argument #6), with no output file.
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--padding",
        "6",
        "--padding-mode",
        "reflect",
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Argument #6: Padding size should be less than the corresponding input dimension, \
             but got: padding (6, 6) at dimension 2 of input [2, 3, 6, 7]"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!y.exists());
}
