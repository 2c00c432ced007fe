//! The tuner from the command line: `wgconv tune` fills the cache it names, `info` shows the
//! profile and the cache, `bench` marks tuned rows, and `run`/`bench --algorithm` force a kernel.

mod common;

use std::process::{Command, Output};

use common::{npy_file, temp_dir, wgconv};

/// `wgconv args` with the tuning cache in `cache` (tuning on).
fn wgconv_cached(cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .env_remove("WGCONV_TUNING")
        .env("WGCONV_CACHE_DIR", cache)
        .args(args)
        .output()
        .expect("the wgconv binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tune_keeps_verified_winners_that_info_lists_and_bench_marks_as_tuned() {
    let dir = temp_dir("cli-tune");
    let cache = dir.join("cache");
    let suite = dir.join("suite.txt");
    std::fs::write(&suite, "small3x3 8 16 16 -> 16 3x3 pad 1\n").unwrap();
    let suite = suite.to_str().unwrap();

    let out = wgconv_cached(&cache, &["tune", "--suite", suite]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("small3x3: forward k3x3_s1x1_d1x1_pad_g1"),
        "{stdout}"
    );
    assert!(stdout.contains("winner: "), "{stdout}");
    assert!(stdout.contains("GFLOP/s (median of"), "{stdout}");
    assert!(!stdout.contains("REJECTED"), "{stdout}");
    assert!(cache.join(wgconv::gpu::tuning::CACHE_FILE).is_file());

    let info = text(&wgconv_cached(&cache, &["info"]).stdout);
    assert!(info.contains("profile: "), "{info}");
    assert!(info.contains("tuning cache: "), "{info}");
    assert!(
        info.contains("(1 winners, 0 kernels that did not build"),
        "{info}"
    );
    assert!(info.contains("forward k3x3_s1x1_d1x1_pad_g1"), "{info}");

    let bench = wgconv_cached(
        &cache,
        &[
            "bench", "--suite", suite, "--repeat", "1", "--device", "gpu",
        ],
    );
    let table = text(&bench.stdout);
    assert!(bench.status.success(), "{table}\n{}", text(&bench.stderr));
    assert!(table.contains("(tuned)"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_with_a_forced_algorithm_matches_the_default_and_a_bad_name_is_a_usage_error() {
    let dir = temp_dir("cli-algorithm");
    let x = npy_file(&dir, "x.npy", &[1, 8, 12, 12], |i| {
        ((i * 37) % 17) as f32 - 8.0
    });
    let w = npy_file(&dir, "w.npy", &[8, 8, 3, 3], |i| {
        ((i * 11) % 7) as f32 - 3.0
    });
    let mut outputs = Vec::new();
    for algorithm in ["auto", "direct", "register-tiled-8x4", "shared-tiled"] {
        let y = dir.join(format!("y-{algorithm}.npy"));
        let y = y.to_str().unwrap();
        let args = [
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--padding",
            "1",
            "--output",
            y,
        ];
        let out = wgconv(&[&args[..], &["--algorithm", algorithm]].concat());
        assert!(out.status.success(), "{algorithm}: {}", text(&out.stderr));
        outputs.push(wgconv::io::read_npy(y).unwrap());
    }
    // Small integers: every kernel's sums are exact, so the outputs are equal.
    for y in &outputs[1..] {
        assert_eq!(y.data(), outputs[0].data());
    }
    let out = wgconv(&[
        "run",
        "--input",
        &x,
        "--weight",
        &w,
        "--output",
        "y.npy",
        "--algorithm",
        "fastest",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown algorithm 'fastest'"), "{stderr}");
    assert!(
        stderr.contains("direct, pointwise, register-tiled"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
