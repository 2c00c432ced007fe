//! `wgconv bench --suite FILE` on hostile suite files: devices and FIFOs are refused without
//! reading (or waiting), oversized and non-UTF-8 files are clear errors, and numbers the shaders
//! cannot index with are parse errors naming the file, the line and the token.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use wgconv::bench::{parse_suite, parse_suite_str, BenchError, MAX_SUITE_BYTES, MAX_SUITE_NUMBER};
use wgconv::Error;

/// How long a refusal may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(20);

/// `wgconv bench --suite SUITE extra...` within `deadline`.
fn bench(suite: &Path, extra: &[&str], deadline: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgconv"));
    command.args(["bench", "--suite"]).arg(suite).args(extra);
    common::run_with_deadline(command, deadline)
}

/// The one line on stderr of a run that must exit with status 1.
fn fails_with_one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    stderr.trim_end().to_string()
}

#[cfg(target_os = "linux")]
#[test]
fn devices_as_suite_are_refused_without_reading_them() {
    for device in ["/dev/zero", "/dev/urandom"] {
        let out = bench(Path::new(device), &["--device", "cpu"], DEADLINE);
        assert_eq!(
            fails_with_one_line(&out),
            format!(
                "wgconv: error: cannot read {device}: it is a character device, not a regular file"
            )
        );
    }
}

#[cfg(unix)]
#[test]
fn fifo_as_suite_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("layers.suite");
    common::mkfifo(&fifo);
    let out = bench(&fifo, &["--device", "cpu"], DEADLINE);
    assert_eq!(
        fails_with_one_line(&out),
        format!(
            "wgconv: error: cannot read {}: it is a FIFO (named pipe), not a regular file",
            fifo.display()
        )
    );
    // The library says the same, as the crate's Io error.
    match parse_suite(&fifo) {
        Err(e @ BenchError::Wgconv(Error::Io { action: "read", .. })) => assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: it is a FIFO (named pipe), not a regular file",
                fifo.display()
            )
        ),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

#[test]
fn suite_file_over_one_mib_is_refused_naming_its_size_and_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.suite");
    // Valid text all the way: one layer, then comment lines past the cap.
    let mut text = String::from("c 3 8 8 -> 4 3x3\n");
    while text.len() as u64 <= MAX_SUITE_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let size = text.len();
    let err = parse_suite(&path).unwrap_err();
    assert!(
        matches!(&err, BenchError::Wgconv(Error::Io { action: "read", source, .. })
            if source.kind() == std::io::ErrorKind::InvalidData),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: it is {}, more than the 1048576 bytes (1 MiB) a suite file may have",
            path.display(),
            wgconv::memory::bytes_text(size as u64)
        )
    );
    let out = bench(&path, &["--device", "cpu"], DEADLINE);
    assert_eq!(fails_with_one_line(&out), format!("wgconv: error: {err}"));

    // Exactly at the cap is still read.
    let mut text = String::from("c 3 8 8 -> 4 3x3\n");
    text.push_str(&"#".repeat(MAX_SUITE_BYTES as usize - text.len()));
    std::fs::write(&path, &text).unwrap();
    assert_eq!(parse_suite(&path).unwrap().len(), 1);
}

#[test]
fn non_utf8_suite_is_a_parse_error_naming_the_line_and_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.suite");
    std::fs::write(
        &path,
        b"ok 3 8 8 -> 4 3x3\n# caf\xe9 layers\nc 3 8 8 -> 4 1x1\n",
    )
    .unwrap();
    let err = parse_suite(&path).unwrap_err();
    assert!(matches!(err, BenchError::Parse { line: 2, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: not UTF-8 text: byte 0xe9 at column 6 (byte 23 of the file) is not valid \
             UTF-8; a suite file is plain text",
            path.display()
        )
    );
    let out = bench(&path, &["--device", "cpu"], DEADLINE);
    assert_eq!(fails_with_one_line(&out), format!("wgconv: error: {err}"));
}

#[test]
fn huge_stride_is_a_parse_error_with_file_line_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stride.suite");
    let line = "far 3 8 8 -> 4 3x3 stride 18446744073709551615";
    std::fs::write(&path, format!("ok 3 8 8 -> 4 3x3\n{line}\n")).unwrap();
    // Before the parser refused it, the run got as far as planning the GPU kernels and failed
    // there without the file or the line: "stride_h is too large: 18446744073709551615 exceeds
    // 4294967295 (the shaders index with u32)".
    let out = bench(
        &path,
        &["--device", "both", "--repeat", "1"],
        Duration::from_secs(120),
    );
    assert_eq!(
        fails_with_one_line(&out),
        format!(
            "wgconv: error: {}:2: expected stride to be at most 2147483647 (the shaders compute \
             indices in i32), but got '18446744073709551615', in `{line}`",
            path.display()
        )
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

/// The line and message of a parse error of `text`.
fn parse_error(text: &str) -> (usize, String) {
    match parse_suite_str(text, Path::new("n.suite")) {
        Err(BenchError::Parse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error for {text:?}, got {other:?}"),
    }
}

#[test]
fn every_number_above_i32_max_is_a_parse_error_quoting_it() {
    assert_eq!(MAX_SUITE_NUMBER, i32::MAX as usize);
    let over = "2147483648";
    let huge = "340282366920938463463374607431768211456"; // 2^128: no integer type holds it
    for (line, what) in [
        (format!("c {over} 8 8 -> 4 3x3"), "C (input channels)"),
        (format!("c 3 {huge} 8 -> 4 3x3"), "H (input height)"),
        (format!("c 3 8 {over} -> 4 3x3"), "W (input width)"),
        (format!("c 3 8 8 -> {over} 3x3"), "K (output channels)"),
        (format!("c 3 8 8 -> 4 {over}x3"), "kernel height R in"),
        (format!("c 3 8 8 -> 4 3x{huge}"), "kernel width S in"),
        (format!("c 3 8 8 -> 4 3x3 stride {over}"), "stride"),
        (format!("c 3 8 8 -> 4 3x3 pad {huge}"), "pad"),
    ] {
        let (n, message) = parse_error(&format!("# numbers\n{line}\n"));
        assert_eq!(n, 2, "{line}");
        let token = line
            .split([' ', 'x'])
            .find(|t| t.len() >= over.len())
            .unwrap();
        assert!(
            message.starts_with(&format!("expected {what}"))
                && message.contains(&format!(
                    "to be at most 2147483647 (the shaders compute indices in i32), but got \
                     '{token}', in `{line}`"
                )),
            "{message}"
        );
    }
}

#[test]
fn numbers_at_i32_max_parse_unless_the_padded_input_exceeds_it() {
    let layers = parse_suite_str(
        "far 3 8 8 -> 4 3x3 stride 2147483647 pad 1\n",
        Path::new("n.suite"),
    )
    .unwrap();
    assert_eq!((layers[0].stride, layers[0].pad), (2147483647, 1));
    // 8 + 2 * 1073741820 = 2147483648 rows with padding: one too many.
    let (line, message) = parse_error("c 3 8 8 -> 4 3x3 pad 1073741820\n");
    assert_eq!(line, 1);
    assert_eq!(
        message,
        "the padded input height H + 2 * pad = 8 + 2 * 1073741820 = 2147483648 exceeds \
         2147483647 (input coordinates are i32 in the shaders), in `c 3 8 8 -> 4 3x3 pad \
         1073741820`"
    );
    let (_, message) = parse_error("c 3 2147483647 8 -> 4 3x3 pad 1\n");
    assert!(
        message.starts_with(
            "the padded input height H + 2 * pad = 2147483647 + 2 * 1 = 2147483649 exceeds"
        ),
        "{message}"
    );
}

#[test]
fn a_stride_of_i32_max_runs_forward_and_backward_on_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("far.suite");
    std::fs::write(&path, "far 3 8 8 -> 4 3x3 stride 2147483647 pad 1\n").unwrap();
    let out = bench(
        &path,
        &["--device", "both", "--pass", "both", "--repeat", "1"],
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l.starts_with("far ")), "{stdout}");
}
