//! Every class of bad input in `docs/errors.md` that `tests/errors.rs`, `tests/cli.rs` and
//! `tests/report.rs` do not already pin: a typed error, a message naming the offending values, no
//! panic, and from the CLI the documented exit status, one error line and no output file. The
//! last test keeps the table honest: every row names a test that exists.

mod common;

use std::path::{Path, PathBuf};

use wgconv::bench::{parse_suite_str, BenchError};
use wgconv::{io, Conv2dParams, Conv2dShape, Engine, EngineOptions, Error, Padding, Tensor};

use common::{engine, files_in, ones, wgconv};

// ------------------------------------------------------------------------------------ helpers

/// Writes a float32 `.npy` of ones and returns its path as text.
fn npy_of_ones(dir: &Path, name: &str, shape: &[usize]) -> String {
    let path = dir.join(name);
    io::write_npy(&path, &ones(shape)).unwrap();
    path.to_str().unwrap().to_string()
}

/// The bytes of a version 1.0 `.npy` file with this dtype, shape text and raw data, header padded
/// as numpy pads it, so a test can say anything a corrupt or foreign file might say.
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}").into_bytes();
    // magic (6) + version (2) + header length (2) + header, ending in '\n' at a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    bytes
}

/// Runs the CLI expecting failure with `code` (1: an error from the library, 2: a bad command
/// line, as `wgconv --help` documents). Asserts no panic and exactly one error line
/// (`wgconv: error: ...` for 1, clap's `error: ...` for 2); returns that line and all of stderr.
fn cli_fails_with_stderr(code: i32, args: &[&str]) -> (String, String) {
    let out = wgconv(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let prefix = if code == 1 {
        "wgconv: error: "
    } else {
        "error: "
    };
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one error line expected in {stderr}"
    );
    (lines[0].to_string(), stderr)
}

/// [`cli_fails_with_stderr`]'s error line.
fn cli_fails(code: i32, args: &[&str]) -> String {
    cli_fails_with_stderr(code, args).0
}

/// As [`cli_fails`] with status 1, for failures before any GPU work: the error line is all of
/// stderr.
fn cli_fails_alone(args: &[&str]) -> String {
    let (line, stderr) = cli_fails_with_stderr(1, args);
    assert_eq!(
        stderr,
        format!("{line}\n"),
        "{args:?}: stderr holds more than the error"
    );
    line
}

// --------------------------------------------------------------------------- sizes and devices

#[test]
fn sizes_overflowing_usize_are_size_overflow_errors_naming_the_values() {
    let p = Conv2dParams::default();
    // A tensor whose byte size overflows the host's usize.
    let e = Conv2dShape::new(&[1, 1, 1 << 62, 8], &[1, 1, 1, 1], None, &p).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the input byte size (4 bytes x [1, 1, 4611686018427387904, 8]) overflows this host's address space"
    );
    // Padding that overflows the padded input size.
    let e = Conv2dShape::new(
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
        &p.with_padding(Padding::uniform(usize::MAX)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!(
            "padded input size (H 8 + padding {0} + {0}",
            usize::MAX
        )),
        "{e}"
    );
    // weight[1] * groups overflowing.
    let big = usize::MAX;
    let e =
        Conv2dShape::new(&[1, big, 1, 1], &[big, 2, 1, 1], None, &p.with_groups(big)).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("weight[1] * groups = 2 * {big}")),
        "{e}"
    );
    // A host tensor and a GPU tensor whose element count overflows.
    let e = Tensor::new([big, 2], Vec::new()).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("the element count of shape [{big}, 2] overflows this host's address space")
    );
    let e = engine().alloc(&[big, 2]).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("[{big}, 2]")), "{e}");
}

#[test]
fn a_tensor_over_max_buffer_size_is_a_device_limit_error() {
    let limits = wgpu::Limits {
        max_buffer_size: 1 << 16,
        max_storage_buffer_binding_size: 1 << 16,
        ..wgpu::Limits::downlevel_defaults()
    };
    let small = Engine::with_options(EngineOptions {
        limits: Some(limits),
        ..EngineOptions::default()
    })
    .expect("an engine with a 64 KiB max_buffer_size");
    // 129 * 128 floats = 66048 bytes, one row over the limit.
    let too_big = ones(&[1, 1, 129, 128]);
    for e in [
        small.alloc(too_big.shape()).unwrap_err(),
        small.upload(&too_big).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                Error::DeviceLimit {
                    bytes: 66_048,
                    limit: 65_536,
                    limit_name: "max_buffer_size",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "tensor needs 66048 bytes, more than the device's max_buffer_size of 65536 bytes"
        );
    }
    // One row less fits.
    let fits = small.upload(&ones(&[1, 1, 128, 128])).unwrap();
    assert_eq!(small.download(&fits).unwrap().data()[16_383], 1.0);
}

#[test]
fn a_tensor_from_another_engine_is_refused_naming_both_engines() {
    let other = Engine::new().expect("a second engine");
    let foreign = other.upload(&ones(&[1, 1, 4, 4])).unwrap();
    let own_x = engine().upload(&ones(&[1, 1, 4, 4])).unwrap();
    let own_w = engine().upload(&ones(&[1, 1, 3, 3])).unwrap();
    let p = Conv2dParams::default();
    let foreign_w = other.upload(&ones(&[1, 1, 3, 3])).unwrap();
    for (what, e) in [
        (
            "input",
            engine().conv2d_gpu(&foreign, &own_w, None, &p).unwrap_err(),
        ),
        (
            "weight",
            engine()
                .conv2d_gpu(&own_x, &foreign_w, None, &p)
                .unwrap_err(),
        ),
        ("tensor", engine().download(&foreign).unwrap_err()),
    ] {
        assert!(
            matches!(
                e,
                Error::ForeignTensor { what: w, tensor_engine, engine: callee }
                    if w == what && tensor_engine == other.id() && callee == engine().id()
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{what} belongs to engine #{}, but was passed to engine #{}; download it and upload it to this engine",
                other.id(),
                engine().id()
            )
        );
    }
}

#[test]
fn packed_weights_used_with_other_groups_name_both_groups() {
    let packed = engine()
        .pack_weights(engine().upload(&ones(&[4, 1, 3, 3])).unwrap(), 2)
        .unwrap();
    let x = engine().upload(&ones(&[1, 2, 6, 6])).unwrap();
    let mut out = engine().alloc(&[1, 4, 4, 4]).unwrap();
    let before = engine().download(&out).unwrap();
    let e = engine()
        .conv2d_into(&x, &packed, None, &Conv2dParams::default(), &mut out)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::PackedGroups {
                packed: 2,
                requested: 1
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "weights were packed for groups=2, but the convolution asks for groups=1"
    );
    // Refused before any dispatch: the output is as it was.
    assert_eq!(engine().download(&out).unwrap(), before);
}

// -------------------------------------------------------------------------------------- files

#[test]
fn float64_and_integer_npy_files_are_refused_naming_their_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "f8.npy",
            npy_bytes("<f8", "(2,)", &[0; 16]),
            "float64 ('<f8')",
        ),
        (
            "f2.npy",
            npy_bytes("<f2", "(2,)", &[0; 4]),
            "float16 ('<f2')",
        ),
        (
            "i8.npy",
            npy_bytes("<i8", "(2,)", &[0; 16]),
            "int64 ('<i8')",
        ),
        ("u1.npy", npy_bytes("|u1", "(2,)", &[0; 2]), "uint8 ('|u1')"),
    ];
    for (name, bytes, dtype) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = io::read_npy(&path).unwrap_err();
        assert!(
            matches!(e, Error::Npy { path: ref p, .. } if p == &path),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not a readable float32 .npy file: it holds {dtype}, not float32 ('<f4'); \
                 convert it with `a.astype(numpy.float32)`",
                path.display()
            )
        );
    }
    // numpy's own float64 (its default dtype), as ndarray-npy writes it, reads the same.
    let path = dir.path().join("numpy_default.npy");
    ndarray_npy::write_npy(&path, &ndarray::Array2::<f64>::zeros((2, 2))).unwrap();
    let e = io::read_npy(&path).unwrap_err();
    assert!(e.to_string().contains("it holds float64 ('<f8')"), "{e}");
}

#[test]
fn truncated_garbage_or_lying_npy_files_are_refused_before_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, bytes: Vec<u8>, message: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = io::read_npy(&path).unwrap_err();
        assert!(
            matches!(e, Error::Npy { path: ref p, .. } if p == &path),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not a readable float32 .npy file: {message}",
                path.display()
            ),
            "{name}"
        );
    };
    // Data cut short, and bytes after the data.
    check(
        "truncated.npy",
        npy_bytes("<f4", "(1, 1, 4, 4)", &[0; 60]),
        "its header says shape [1, 1, 4, 4], 64 bytes of float32 data, but 60 bytes follow the header (truncated?)",
    );
    check(
        "padded.npy",
        npy_bytes("<f4", "(2, 2)", &[0; 20]),
        "its header says shape [2, 2], 16 bytes of float32 data, but 20 bytes follow the header",
    );
    // A header that claims 4 TiB (or more than the host can address) over 16 bytes of data is
    // refused without asking for the memory.
    check(
        "huge.npy",
        npy_bytes("<f4", "(1099511627776,)", &[0; 16]),
        "its header says shape [1099511627776], 4398046511104 bytes of float32 data, but 16 bytes follow the header (truncated?)",
    );
    check(
        "overflowing.npy",
        npy_bytes("<f4", "(4611686018427387904, 4)", &[0; 16]),
        "its header says shape [4611686018427387904, 4], more bytes than this host can address",
    );
    // Not .npy at all, and a header cut short.
    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"this is not numpy at all").unwrap();
    let e = io::read_npy(&garbage).unwrap_err();
    assert!(matches!(e, Error::Npy { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: not a readable float32 .npy file: error parsing header",
            garbage.display()
        )),
        "{e}"
    );
    let whole = npy_bytes("<f4", "(2,)", &[0; 8]);
    check(
        "cut_header.npy",
        whole[..40].to_vec(),
        "the file ends inside the .npy header (40 bytes in all)",
    );
    // The CLI says the same on one line, and writes nothing.
    let w = npy_of_ones(dir.path(), "w.npy", &[1, 1, 1, 1]);
    let y = dir.path().join("y.npy");
    let truncated = dir.path().join("truncated.npy");
    let line = cli_fails_alone(&[
        "run",
        "--input",
        truncated.to_str().unwrap(),
        "--weight",
        &w,
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(
        line.contains(
            "truncated.npy: not a readable float32 .npy file: its header says shape [1, 1, 4, 4]"
        ),
        "{line}"
    );
    assert!(!y.exists());
}

#[test]
fn a_missing_input_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.npy");
    let e = io::read_npy(&missing).unwrap_err();
    assert!(
        matches!(e, Error::Io { ref path, ref source, action: "read" }
            if path == &missing && source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    // The same for the input, the weight and the bias on the command line; nothing is written.
    let x = npy_of_ones(dir.path(), "x.npy", &[1, 1, 4, 4]);
    let w = npy_of_ones(dir.path(), "w.npy", &[1, 1, 3, 3]);
    let y = dir.path().join("y.npy");
    let before = files_in(dir.path());
    let missing = missing.to_str().unwrap();
    for files in [
        ["--input", missing, "--weight", &w],
        ["--input", &x, "--weight", missing],
        ["--weight", &w, "--bias", missing],
    ] {
        let mut args = vec!["run", "--output", y.to_str().unwrap()];
        if files[0] != "--input" {
            args.extend(["--input", &x]);
        }
        args.extend(files);
        let line = cli_fails_alone(&args);
        assert_eq!(
            line,
            format!("wgconv: error: cannot read {missing}: No such file or directory (os error 2)")
        );
    }
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn an_unwritable_output_path_fails_naming_it_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    // The library: a folder that does not exist.
    let nowhere = dir.path().join("no/such/folder/y.npy");
    let e = io::write_npy(&nowhere, &ones(&[1, 1, 2, 2])).unwrap_err();
    assert!(
        matches!(e, Error::Io { ref path, ref source, action: "write" }
            if path == &nowhere && source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "cannot write {}: folder {} does not exist",
            nowhere.display(),
            nowhere.parent().unwrap().display()
        )
    );
    // The CLI: an output path that is an existing folder is refused before the convolution
    // runs, and neither the folder nor its parent gains a file (no temporary left).
    let x = npy_of_ones(dir.path(), "x.npy", &[1, 1, 4, 4]);
    let w = npy_of_ones(dir.path(), "w.npy", &[1, 1, 3, 3]);
    let folder = dir.path().join("out.npy");
    std::fs::create_dir(&folder).unwrap();
    let before = files_in(dir.path());
    let line = cli_fails(
        1,
        &[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--device",
            "cpu",
            "--output",
            folder.to_str().unwrap(),
        ],
    );
    assert!(
        line == format!(
            "wgconv: error: cannot write {}: it is a directory; name a file in it",
            folder.display()
        ),
        "{line}"
    );
    assert_eq!(files_in(dir.path()), before);
    assert!(folder.is_dir() && files_in(&folder).is_empty());
    // An existing output survives a failed run byte for byte.
    let y = dir.path().join("y.npy");
    std::fs::write(&y, b"previous result").unwrap();
    let bad_w = npy_of_ones(dir.path(), "bad_w.npy", &[1, 2, 3, 3]);
    let line = cli_fails_alone(&[
        "run",
        "--input",
        &x,
        "--weight",
        &bad_w,
        "--device",
        "cpu",
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(
        line.contains("to have 2 channels, but got 1 channels"),
        "{line}"
    );
    assert_eq!(std::fs::read(&y).unwrap(), b"previous result");
}

// ----------------------------------------------------------------------------------- the CLI

#[test]
fn cli_npy_files_of_the_wrong_rank_are_refused_naming_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_of_ones(dir.path(), "x.npy", &[1, 1, 8, 8]);
    let x2d = npy_of_ones(dir.path(), "x2d.npy", &[8, 8]);
    let w = npy_of_ones(dir.path(), "w.npy", &[1, 1, 3, 3]);
    let w2d = npy_of_ones(dir.path(), "w2d.npy", &[3, 3]);
    let b2d = npy_of_ones(dir.path(), "b2d.npy", &[1, 1]);
    let y = dir.path().join("y.npy");
    let y = y.to_str().unwrap();
    let before = files_in(dir.path());
    for (args, message) in [
        (
            ["--input", &x, "--weight", &w2d],
            "expected 3D weight [O, C/groups, k] (conv1d), 4D weight [O, C/groups, kh, kw] (conv2d) or 5D weight [O, C/groups, kd, kh, kw] (conv3d) to wgconv run, but got weight of size [3, 3]",
        ),
        (
            ["--input", &x2d, "--weight", &w],
            "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [8, 8]",
        ),
    ] {
        for device in ["cpu", "gpu"] {
            let mut all = vec!["run", "--device", device, "--output", y];
            all.extend(args);
            let line = cli_fails(1, &all);
            assert_eq!(line, format!("wgconv: error: {message}"), "{device}");
        }
    }
    let line = cli_fails_alone(&[
        "run", "--device", "cpu", "--input", &x, "--weight", &w, "--bias", &b2d, "--output", y,
    ]);
    assert!(
        line.ends_with("expected bias to be 1-dimensional with 1 elements, but got bias of size [1, 1] instead"),
        "{line}"
    );
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn cli_filter_kernel_file_of_the_wrong_shape_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("in.png");
    wgconv::filter::write_image(&image, &wgconv::filter::sample_image()).unwrap();
    let k = npy_of_ones(dir.path(), "k.npy", &[2, 3, 3]);
    let out = dir.path().join("out.png");
    let before = files_in(dir.path());
    let line = cli_fails_alone(&[
        "filter",
        "--input",
        image.to_str().unwrap(),
        "--kernel-file",
        &k,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        line,
        format!(
            "wgconv: error: {k}: a filter kernel must have shape [kh, kw] or [1, 1, kh, kw], got [2, 3, 3]"
        )
    );
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn cli_filter_refuses_a_non_image_input_and_an_unknown_output_extension() {
    let dir = tempfile::tempdir().unwrap();
    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, b"plain text, not a PNG").unwrap();
    let image = dir.path().join("in.png");
    wgconv::filter::write_image(&image, &wgconv::filter::sample_image()).unwrap();
    let out = dir.path().join("out.png");
    let bmp = dir.path().join("out.bmp");
    let before = files_in(dir.path());
    let line = cli_fails_alone(&[
        "filter",
        "--input",
        not_image.to_str().unwrap(),
        "--kernel",
        "edges",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        line.starts_with(&format!(
            "wgconv: error: {}: not a readable PNG or JPEG image: ",
            not_image.display()
        )),
        "{line}"
    );
    let line = cli_fails(
        1,
        &[
            "filter",
            "--input",
            image.to_str().unwrap(),
            "--kernel",
            "edges",
            "--output",
            bmp.to_str().unwrap(),
        ],
    );
    assert_eq!(
        line,
        format!(
            "wgconv: error: {}: the output must end in .png, .jpg or .jpeg",
            bmp.display()
        )
    );
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn cli_zero_stride_dilation_or_groups_exit_1_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_of_ones(dir.path(), "x.npy", &[1, 2, 5, 5]);
    let w = npy_of_ones(dir.path(), "w.npy", &[2, 2, 3, 3]);
    let y = dir.path().join("y.npy");
    let before = files_in(dir.path());
    for (flag, value, message) in [
        (
            "--stride",
            "1,0",
            "non-positive stride is not supported: got stride=(1, 0)",
        ),
        (
            "--dilation",
            "0,1",
            "non-positive dilation is not supported: got dilation=(0, 1)",
        ),
        (
            "--groups",
            "0",
            "non-positive groups is not supported: got groups=0",
        ),
    ] {
        let line = cli_fails_alone(&[
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--device",
            "cpu",
            "--output",
            y.to_str().unwrap(),
            flag,
            value,
        ]);
        assert_eq!(line, format!("wgconv: error: {message}"));
    }
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn cli_negative_nan_inf_fractional_or_zero_count_numbers_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_of_ones(dir.path(), "x.npy", &[1, 1, 5, 5]);
    let w = npy_of_ones(dir.path(), "w.npy", &[1, 1, 3, 3]);
    let y = dir.path().join("y.npy");
    let y = y.to_str().unwrap();
    let before = files_in(dir.path());
    let run = ["run", "--input", &x, "--weight", &w, "--output", y];
    for (option, message) in [
        (
            "--stride=-1",
            "invalid value '-1' for '--stride <S|S,..>': '-1' is not a non-negative integer",
        ),
        (
            "--stride=1.5",
            "invalid value '1.5' for '--stride <S|S,..>': '1.5' is not a non-negative integer",
        ),
        (
            "--padding=nan",
            "invalid value 'nan' for '--padding <P|P,..|B,A,..|same|valid>': 'nan' is not a non-negative integer",
        ),
        (
            "--padding=1,2,3,4,5,6,7",
            "invalid value '1,2,3,4,5,6,7' for '--padding <P|P,..|B,A,..|same|valid>': expected one number, one per axis, two per axis (before,after), 'same' or 'valid', got 7 numbers",
        ),
        (
            "--dilation=inf",
            "invalid value 'inf' for '--dilation <D|D,..>': 'inf' is not a non-negative integer",
        ),
        (
            "--dilation=1,2,3,4",
            "invalid value '1,2,3,4' for '--dilation <D|D,..>': expected one number, or one per axis (at most 3), got 4 numbers",
        ),
        (
            "--groups=-2",
            "invalid value '-2' for '--groups <GROUPS>': invalid digit found in string",
        ),
    ] {
        let mut args = run.to_vec();
        args.push(option);
        assert_eq!(cli_fails(2, &args), format!("error: {message}"), "{option}");
    }
    // Without '=', clap reads a negative number as an unknown flag; still a usage error naming it.
    let mut args = run.to_vec();
    args.extend(["--stride", "-1"]);
    assert!(cli_fails(2, &args).contains("'-1'"));
    assert_eq!(files_in(dir.path()), before);
    // `bench` counts: a zero or negative batch or repeat count is refused, not quietly changed.
    for (option, message) in [
        (
            "--repeat=0",
            "invalid value '0' for '--repeat <REPEAT>': '0' is not a positive integer",
        ),
        (
            "--batch=0",
            "invalid value '0' for '--batch <BATCH>': '0' is not a positive integer",
        ),
        (
            "--batch=-1",
            "invalid value '-1' for '--batch <BATCH>': '-1' is not a positive integer",
        ),
        (
            "--repeat=nan",
            "invalid value 'nan' for '--repeat <REPEAT>': 'nan' is not a positive integer",
        ),
    ] {
        let line = cli_fails(2, &["bench", "--suite", "quick", option]);
        assert_eq!(line, format!("error: {message}"), "{option}");
    }
}

#[test]
fn cli_unknown_filter_or_backend_names_are_usage_errors_listing_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("in.png");
    wgconv::filter::write_image(&image, &wgconv::filter::sample_image()).unwrap();
    let out = dir.path().join("out.png");
    let line = cli_fails(
        2,
        &[
            "filter",
            "--input",
            image.to_str().unwrap(),
            "--kernel",
            "blur",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        line,
        "error: invalid value 'blur' for '--kernel <KERNEL>': unknown kernel 'blur'; \
         choose one of sobel-x, sobel-y, edges, box, gaussian, sharpen, laplacian"
    );
    assert!(!out.exists());
    let json = dir.path().join("bench.json");
    let line = cli_fails(
        2,
        &[
            "bench",
            "--suite",
            "quick",
            "--backend",
            "vulkan,foo",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(
        line,
        "error: invalid value 'foo' for '--backend <BACKEND>': unknown backend 'foo'; \
         choose one of vulkan, gl, metal, dx12"
    );
    assert!(!json.exists());
}

#[test]
fn suite_nan_inf_negative_or_fractional_numbers_are_parse_errors_quoting_them() {
    let path = PathBuf::from("numbers.suite");
    for (line, message) in [
        (
            "c nan 8 8 -> 4 3x3",
            "expected C (input channels) to be a positive integer, but got 'nan'",
        ),
        (
            "c 3 inf 8 -> 4 3x3",
            "expected H (input height) to be a positive integer, but got 'inf'",
        ),
        (
            "c 3 8 -8 -> 4 3x3",
            "expected W (input width) to be a positive integer, but got '-8'",
        ),
        (
            "c 3 8 8 -> 2.5 3x3",
            "expected K (output channels) to be a positive integer, but got '2.5'",
        ),
        (
            "c 3 8 8 -> 4 3xNaN",
            "expected kernel width S in '3xNaN' to be a positive integer, but got 'NaN'",
        ),
        (
            "c 3 8 8 -> 4 3x3 stride -1",
            "expected stride to be a positive integer, but got '-1'",
        ),
        (
            "c 3 8 8 -> 4 3x3 pad inf",
            "expected pad to be a non-negative integer, but got 'inf'",
        ),
        (
            "c 3 8 8 -> 4 3x3 pad 0.5",
            "expected pad to be a non-negative integer, but got '0.5'",
        ),
    ] {
        let e = parse_suite_str(&format!("# numbers\n{line}\n"), &path).unwrap_err();
        assert!(matches!(e, BenchError::Parse { line: 2, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("numbers.suite:2: {message}, in `{line}`")
        );
    }
    // From the CLI: exit 1, the file and line, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.suite");
    std::fs::write(&suite, "ok 3 8 8 -> 4 3x3\nc 3 8 8 -> 4 3x3 stride nan\n").unwrap();
    let csv = dir.path().join("out.csv");
    let line = cli_fails_alone(&[
        "bench",
        "--suite",
        suite.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(
        line,
        format!(
            "wgconv: error: {}:2: expected stride to be a positive integer, but got 'nan', in `c 3 8 8 -> 4 3x3 stride nan`",
            suite.display()
        )
    );
    assert!(!csv.exists());
}

// ------------------------------------------------------------------------------ the doc table

/// Splits a Markdown table row into its cells, keeping escaped `\|` inside a cell.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

#[test]
fn every_row_of_the_error_table_names_a_real_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/errors.md")).unwrap();
    let table: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| class"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(
        table.len() > 2,
        "no table starting with `| class` in docs/errors.md"
    );
    let header = cells(table[0]);
    assert_eq!(
        header,
        ["class", "example input", "error", "example message", "test"],
        "table header"
    );
    let rows = &table[2..];
    assert!(rows.len() >= 15, "only {} rows in the table", rows.len());
    for row in rows {
        let cells = cells(row);
        assert_eq!(cells.len(), 5, "row with {} cells: {row}", cells.len());
        let tests: Vec<&str> = cells[4]
            .split(|c: char| c.is_whitespace() || c == ',' || c == '`' || c == ';')
            .filter(|t| t.contains(".rs::"))
            .collect();
        assert!(!tests.is_empty(), "row names no test: {row}");
        for test in tests {
            let (file, name) = test.split_once("::").unwrap();
            let source = std::fs::read_to_string(root.join("tests").join(file))
                .unwrap_or_else(|e| panic!("{test}: tests/{file}: {e}"));
            assert!(
                source.contains(&format!("#[test]\nfn {name}(")),
                "{test}: no test `fn {name}(` in tests/{file}"
            );
        }
    }
}
