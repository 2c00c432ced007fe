//! Hostile output paths, signals, an unwritable stderr and absurd sizes, through the CLI as a
//! user meets them: no lost data, no abort, no kill, no hang, no leftover file.
//!
//! Device nodes, FIFOs and sockets are made in temporary folders (never the system's); huge
//! sizes run in a child under `ulimit -v`, so a regression cannot take the machine down.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use wgconv::{io, Tensor};

use common::wgconv;

/// `wgconv ARGS` under an address-space limit of `kib` KiB.
fn wgconv_limited(kib: u64, args: &[&str]) -> Output {
    common::wgconv_under_ulimit(kib, args)
        .output()
        .expect("sh runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Writes the small problem `x` `[1, 2, 6, 6]`, `w` `[3, 2, 3, 3]` into `dir`; returns their paths.
fn small_problem(dir: &Path) -> (String, String) {
    let x = dir.join("x.npy");
    let w = dir.join("w.npy");
    io::write_npy(
        &x,
        &Tensor::from_fn([1, 2, 6, 6], |i| i as f32 * 0.25).unwrap(),
    )
    .unwrap();
    io::write_npy(
        &w,
        &Tensor::from_fn([3, 2, 3, 3], |i| 1.0 - i as f32 * 0.1).unwrap(),
    )
    .unwrap();
    (path_str(&x).to_string(), path_str(&w).to_string())
}

/// The bytes `run --device cpu` writes for the small problem, to a plain new file.
fn expected_output(dir: &Path, x: &str, w: &str) -> Vec<u8> {
    let out = dir.join("expected.npy");
    let run = wgconv(&[
        "run",
        "--device",
        "cpu",
        "--input",
        x,
        "--weight",
        w,
        "--output",
        path_str(&out),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::read(&out).unwrap()
}

fn run_cpu(x: &str, w: &str, output: &str) -> Output {
    wgconv(&[
        "run", "--device", "cpu", "--input", x, "--weight", w, "--output", output,
    ])
}

/// Names in `dir` that a write left behind (`.wgconv-*.tmp`).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".wgconv-"))
        .collect()
}

fn mknod_char(path: &Path, major: u32, minor: u32) {
    let status = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .expect("mknod runs");
    assert!(
        status.success(),
        "mknod {} failed (the tests run as root)",
        path.display()
    );
}

#[test]
fn a_character_device_as_output_is_written_through_and_stays_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    // The null device's numbers, made here: never the system's /dev/null.
    let null = dir.path().join("null");
    mknod_char(&null, 1, 3);
    let out = run_cpu(&x, &w, path_str(&null));
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::symlink_metadata(&null).unwrap();
    assert!(
        meta.file_type().is_char_device(),
        "{null:?} was replaced: {meta:?}"
    );
    assert_eq!(meta.rdev(), std::fs::metadata("/dev/null").unwrap().rdev());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_fifo_as_output_is_written_through_to_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let expected = expected_output(dir.path(), &x, &w);
    let fifo = dir.path().join("pipe");
    common::mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = run_cpu(&x, &w, path_str(&fifo));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        reader.join().unwrap(),
        expected,
        "the reader got other bytes"
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn dash_and_dev_stdout_write_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let expected = expected_output(dir.path(), &x, &w);
    for name in ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
        let out = run_cpu(&x, &w, name);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(out.stdout, expected, "{name}: standard output differs");
    }
    // Through a shell's redirection to a file, `/dev/stdout` writes that file.
    let file = dir.path().join("redirected.npy");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec \"$0\" run --device cpu --input {x} --weight {w} --output /dev/stdout > {}",
            path_str(&file)
        ))
        .arg(env!("CARGO_BIN_EXE_wgconv"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&file).unwrap(), expected);
}

#[test]
fn a_symlinked_output_replaces_its_target_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let expected = expected_output(dir.path(), &x, &w);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let target = sub.join("target.npy");
    std::fs::write(&target, b"old").unwrap();
    // A relative link in another folder, and a link to that link.
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink("sub/target.npy", &link).unwrap();
    let link2 = dir.path().join("link2.npy");
    std::os::unix::fs::symlink(&link, &link2).unwrap();
    let out = run_cpu(&x, &w, path_str(&link2));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata(&link2)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), expected);
    // A dangling link names the file to create.
    let dangling = dir.path().join("dangling.npy");
    std::os::unix::fs::symlink("sub/new.npy", &dangling).unwrap();
    let out = run_cpu(&x, &w, path_str(&dangling));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(sub.join("new.npy")).unwrap(), expected);
    assert!(leftovers(dir.path()).is_empty() && leftovers(&sub).is_empty());
}

#[test]
fn a_hard_linked_output_stays_one_file_with_both_names() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let expected = expected_output(dir.path(), &x, &w);
    let a = dir.path().join("a.npy");
    let b = dir.path().join("b.npy");
    std::fs::write(&a, b"old contents, longer than nothing").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    let inode = std::fs::metadata(&a).unwrap().ino();
    let out = run_cpu(&x, &w, path_str(&a));
    assert!(out.status.success(), "{}", stderr(&out));
    let (ma, mb) = (
        std::fs::metadata(&a).unwrap(),
        std::fs::metadata(&b).unwrap(),
    );
    assert_eq!((ma.ino(), mb.ino(), ma.nlink()), (inode, inode, 2));
    assert_eq!(std::fs::read(&b).unwrap(), expected);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn an_existing_output_keeps_its_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    for mode in [0o600, 0o640, 0o664] {
        let out_path = dir.path().join(format!("y{mode:o}.npy"));
        std::fs::write(&out_path, b"old").unwrap();
        std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run_cpu(&x, &w, path_str(&out_path));
        assert!(out.status.success(), "{}", stderr(&out));
        let got = std::fs::metadata(&out_path).unwrap().mode() & 0o7777;
        assert_eq!(got, mode, "mode {mode:o} became {got:o}");
    }
    // A new file gets the usual 0644.
    let new = dir.path().join("new.npy");
    assert!(run_cpu(&x, &w, path_str(&new)).status.success());
    assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o777, 0o644);
}

#[test]
fn a_directory_or_socket_as_output_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let socket_path = dir.path().join("sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    for (path, what) in [
        (&folder, "it is a directory"),
        (&socket_path, "it is a socket"),
    ] {
        let out = run_cpu(&x, &w, path_str(path));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("cannot write {}: {what}", path.display())),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    assert!(folder.is_dir() && std::fs::read_dir(&folder).unwrap().next().is_none());
    assert!(std::fs::symlink_metadata(&socket_path)
        .unwrap()
        .file_type()
        .is_socket());
}

#[test]
fn a_missing_output_folder_is_refused_before_the_work_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (x, _) = small_problem(dir.path());
    // The weight does not match the input: a run that got to the work would report that.
    let w = dir.path().join("w4.npy");
    io::write_npy(&w, &Tensor::full([1, 4, 1, 1], 1.0).unwrap()).unwrap();
    let output = dir.path().join("nodir").join("y.npy");
    let out = run_cpu(&x, path_str(&w), path_str(&output));
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    let folder = dir.path().join("nodir");
    assert!(
        message.contains(&format!(
            "cannot write {}: folder {} does not exist",
            output.display(),
            folder.display()
        )),
        "{message}"
    );
    assert!(
        !message.contains("channels"),
        "the work ran first: {message}"
    );
}

#[test]
fn bench_checks_every_output_before_writing_any() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ok.json");
    let out = wgconv(&[
        "bench",
        "--suite",
        "quick",
        "--device",
        "cpu",
        "--repeat",
        "1",
        "--json",
        path_str(&json),
        "--csv",
        "/nonexistent-wgconv-folder/x.csv",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write /nonexistent-wgconv-folder/x.csv: folder /nonexistent-wgconv-folder does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        !json.exists(),
        "the JSON was written before the CSV was refused"
    );
    assert!(out.stdout.is_empty(), "the benchmark ran first");
}

/// Starts a CPU run whose 784 MB output takes a moment to write, waits until its temporary
/// file is being filled, sends `signal`, and checks the exit status, the leftovers and the old
/// output.
fn signal_during_the_write(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.npy");
    io::write_npy(&one, &Tensor::full([1, 1, 1, 1], 1.0).unwrap()).unwrap();
    let output = dir.path().join("y.npy");
    std::fs::write(&output, b"the old output").unwrap();
    let one = path_str(&one);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .args(["run", "--device", "cpu", "--input", one, "--weight", one])
        .args(["--padding", "7000", "--output", path_str(&output)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let writing = loop {
        let filling = std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".wgconv-")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
        if filling {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(writing, "never saw the temporary file being written");
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{signal}: {}", stderr(&out));
    assert_eq!(
        leftovers(dir.path()),
        Vec::<String>::new(),
        "{signal} left a temporary file"
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"the old output");
}

#[test]
fn sigint_during_the_write_removes_the_temporary_file_and_exits_130() {
    signal_during_the_write("INT", 130);
}

#[test]
fn sigterm_during_the_write_removes_the_temporary_file_and_exits_143() {
    signal_during_the_write("TERM", 143);
}

#[test]
fn sighup_during_the_write_removes_the_temporary_file_and_exits_129() {
    signal_during_the_write("HUP", 129);
}

#[test]
fn exit_status_does_not_depend_on_an_unwritable_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let run = |args: &[&str]| {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_wgconv"))
            .args(args)
            .stderr(full)
            .status()
            .unwrap()
    };
    let y = dir.path().join("y.npy");
    let ok = run(&[
        "run",
        "--device",
        "cpu",
        "--input",
        &x,
        "--weight",
        &w,
        "--output",
        path_str(&y),
    ]);
    assert_eq!(ok.code(), Some(0));
    assert!(y.exists());
    let failed = run(&[
        "run",
        "--device",
        "cpu",
        "--input",
        &x,
        "--weight",
        "missing.npy",
        "--output",
        "z.npy",
    ]);
    assert_eq!(failed.code(), Some(1));
    let usage = run(&["run", "--no-such-flag"]);
    assert_eq!(usage.code(), Some(2));
}

/// `run DEVICE_ARGS` of a `[1, 1, 1, 1]` input with padding 30000 (60001 x 60001 outputs,
/// 14.4 GB of f32) under an address space of `limit_kib`: refused at once, naming both sizes,
/// with exit 1 (not an abort, not the OOM killer) and no file left.
fn a_14_gb_output_is_refused(device_args: &[&str], limit_kib: u64) {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.npy");
    io::write_npy(&one, &Tensor::full([1, 1, 1, 1], 1.0).unwrap()).unwrap();
    let output = dir.path().join("y.npy");
    let one = path_str(&one);
    let mut args = vec!["run"];
    args.extend(device_args);
    args.extend(["--input", one, "--weight", one, "--padding", "30000"]);
    args.extend(["--output", path_str(&output)]);
    let out = wgconv_limited(limit_kib, &args);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{:?}: {message}", out.status);
    assert!(
        message.contains(
            "the output [1, 1, 60001, 60001] needs 14.4 GB (14400480004 bytes) of host memory, but only"
        ),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(!output.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_cpu_output_larger_than_memory_is_an_error_naming_both_sizes_not_an_abort() {
    a_14_gb_output_is_refused(&["--device", "cpu"], 4 << 20);
}

#[test]
fn a_gpu_output_larger_than_memory_is_refused_before_any_gpu_work() {
    // 8 GiB leaves room for the software adapter's driver. Without the check Linux's overcommit
    // lets the run compute for minutes and then kills it; with it, nothing reaches the GPU.
    a_14_gb_output_is_refused(&[], 8 << 20);
}

#[test]
fn run_on_the_cpu_peaks_at_the_output_plus_a_constant() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.npy");
    io::write_npy(&one, &Tensor::full([1, 1, 1, 1], 1.0).unwrap()).unwrap();
    let output = dir.path().join("y.npy");
    let one = path_str(&one);
    // 14001 x 14001 outputs, 784 MB; the process may map 320 MiB more than that, so an output
    // held twice (an f64 copy, or a clone to write it) cannot fit.
    let output_kib = 14001u64 * 14001 * 4 / 1024;
    let out = wgconv_limited(
        output_kib + (320 << 10),
        &[
            "run",
            "--device",
            "cpu",
            "--input",
            one,
            "--weight",
            one,
            "--padding",
            "7000",
            "--output",
            path_str(&output),
        ],
    );
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    let y = io::read_npy(&output).unwrap();
    assert_eq!(y.shape(), [1, 1, 14001, 14001]);
    assert_eq!(y.data()[7000 * 14001 + 7000], 1.0);
    assert_eq!(y.data().iter().filter(|&&v| v != 0.0).count(), 1);
}

#[test]
fn train_edge_that_diverges_says_so_and_exits_1() {
    let out = wgconv(&["train-edge", "--lr", "1e38"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("wgconv: error: training diverged at step")
            && message.contains("with learning rate 1e38: the loss is NaN"),
        "{message}"
    );
}

#[test]
fn a_power_preference_wgpu_does_not_know_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .arg("info")
        .env("WGPU_POWER_PREF", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains(r#"WGPU_POWER_PREF="bogus" is not understood; expected low, high or none"#),
        "{}",
        stderr(&out)
    );
    for good in ["low", "HIGH", "none"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wgconv"))
            .arg("info")
            .env("WGPU_POWER_PREF", good)
            .output()
            .unwrap();
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
}

/// Unmounts the file system at its path when dropped, pass or fail.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_file_system_is_named_with_the_os_error_not_the_temporary_name() {
    let dir = tempfile::tempdir().unwrap();
    let (x, w) = small_problem(dir.path());
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "wgconv-test"])
        .arg(&ro)
        .status()
        .expect("mount runs");
    assert!(
        mounted.success(),
        "mounting a read-only tmpfs failed (the tests run as root)"
    );
    let _guard = Mounted(ro.clone());
    let output = ro.join("y.npy");
    let out = run_cpu(&x, &w, path_str(&output));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "wgconv: error: cannot write {}: Read-only file system (os error 30)",
            output.display()
        )
    );
}
