//! `.npy` files made to hurt the reader: a header length of 4 GiB, garbage and deeply nested
//! headers, a consistent header whose data does not fit in memory, a FIFO instead of a file.
//! Each is a typed error on one short line (from the CLI: exit status 1, no signal, no output
//! file), never a hang, an abort or a read of gigabytes. Also: every float32 byte order and
//! Fortran order numpy writes reads right, and what `write_npy` writes has numpy's layout and
//! reads back bit for bit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wgconv::{io, Error, Tensor};

// ------------------------------------------------------------------------------------ helpers

/// The bytes of a `.npy` file of format `version` (1, 2 or 3) with this header dict text and raw
/// data, the header padded as numpy pads it.
fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.as_bytes().to_vec();
    while !(prefix + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend(u16::try_from(header.len()).unwrap().to_le_bytes());
    } else {
        bytes.extend(u32::try_from(header.len()).unwrap().to_le_bytes());
    }
    bytes.extend(header);
    bytes.extend(data);
    bytes
}

/// A version 1.0 header dict as numpy writes it.
fn dict(descr: &str, fortran_order: bool, shape: &str) -> String {
    let order = if fortran_order { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A `[1, 1, 1, 1]` weight of one, for CLI runs that must fail on their input.
fn weight(dir: &Path) -> PathBuf {
    let path = dir.join("w.npy");
    io::write_npy(&path, &Tensor::full([1, 1, 1, 1], 1.0).unwrap()).unwrap();
    path
}

/// `wgconv run --device cpu --input INPUT --weight W --output y.npy` through `sh -c`, under
/// `ulimit -v LIMIT_KIB` when given.
fn run_cli(dir: &Path, input: &Path, limit_kib: Option<u64>) -> Output {
    let w = weight(dir);
    let y = dir.join("y.npy");
    let limit = limit_kib.map_or(String::new(), |kib| format!("ulimit -v {kib} && "));
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{limit}exec \"$0\" run --device cpu --input \"$1\" --weight \"$2\" --output \"$3\""
        ))
        .arg(env!("CARGO_BIN_EXE_wgconv"))
        .args([input, &w, &y])
        .output()
        .expect("sh runs")
}

/// Asserts the CLI failed with exit status 1 (not a signal) and exactly one line on stderr, its
/// error, and wrote no output; returns that line.
fn one_error_line(dir: &Path, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}: {stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected on stderr: {stderr}");
    assert!(lines[0].starts_with("wgconv: error: "), "{stderr}");
    assert!(!dir.join("y.npy").exists(), "an output was written");
    lines[0].to_string()
}

/// The message of an `Error::Npy` about `path` (the text after the path).
fn npy_message(path: &Path) -> String {
    match io::read_npy(path) {
        Err(Error::Npy { path: p, message }) => {
            assert_eq!(p, path);
            assert!(
                message.starts_with("not a readable float32 .npy file: "),
                "{message}"
            );
            message
        }
        other => panic!("{}: expected Error::Npy, got {other:?}", path.display()),
    }
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

// ----------------------------------------------------------------------------- hostile headers

#[test]
fn a_header_length_over_numpys_limit_is_refused_before_the_header_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A version 2.0 preamble claiming a header of u32::MAX bytes, over a sparse file that holds
    // them: a reader that believes the length reads 4 GiB.
    let path = dir.path().join("long_header.npy");
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(12 + u64::from(u32::MAX) + 64)
        .unwrap();
    // The CLI under a 1 GiB address-space limit: reading the header would abort it.
    let out = run_cli(dir.path(), &path, Some(1 << 20));
    let line = one_error_line(dir.path(), &out);
    // The library, in this process, once the CLI showed it does not read the 4 GiB.
    let message = npy_message(&path);
    assert_eq!(
        message,
        "not a readable float32 .npy file: its header length field says 4294967295 bytes, over \
         numpy's limit of 10000 bytes (max_header_size)"
    );
    assert!(line.ends_with(&message), "{line}");
    // A header of exactly 10000 bytes is still read.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(10_000u32.to_le_bytes());
    bytes.extend(format!("{:<9999}\n", dict("<f4", false, "(2,)")).as_bytes());
    bytes.extend(le_bytes(&[1.0, 2.0]));
    let path = write_file(dir.path(), "at_limit.npy", &bytes);
    assert_eq!(io::read_npy(&path).unwrap().data(), [1.0, 2.0]);
    // One byte more is refused.
    bytes[8..12].copy_from_slice(&10_001u32.to_le_bytes());
    bytes.insert(12, b' ');
    let path = write_file(dir.path(), "over_limit.npy", &bytes);
    assert!(
        npy_message(&path).contains("says 10001 bytes, over numpy's limit of 10000 bytes"),
        "{}",
        npy_message(&path)
    );
}

#[test]
fn garbage_and_deeply_nested_headers_are_one_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let nested = "(".repeat(5000);
    let cases: Vec<(&str, Vec<u8>, &str)> =
        vec![
        (
            "not_npy.npy",
            b"this is not numpy at all".to_vec(),
            "error parsing header: it does not start with the .npy magic string \\x93NUMPY \
             (its first bytes are b\"this is \")",
        ),
        (
            "garbage.npy",
            npy_bytes(1, "\u{1}\u{ff} garbage {{{ ]]] \n\n\n 'descr'", &[0; 8]),
            "error parsing header: expected '{' opening the header's dict at byte 0 of the \
             header, found \"\\x01\\xc3\\xbf garbage {{{ ]]] \"...",
        ),
        (
            "nested_shape.npy",
            npy_bytes(
                1,
                &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {nested}"),
                &[],
            ),
            "error parsing header: expected a non-negative integer in the shape at byte 51 of \
             the header, found \"((((((((((((((((((((\"...",
        ),
        (
            "nested_descr.npy",
            npy_bytes(1, &format!("{{'descr': {}", "[".repeat(5000)), &[]),
            "error parsing header: expected a 'descr' list closed before the end of the header \
             at byte 10 of the header, found \"[[[[[[[[[[[[[[[[[[[[\"...",
        ),
        (
            "nested_whole.npy",
            npy_bytes(3, &nested, &[]),
            "error parsing header: expected '{' opening the header's dict at byte 0 of the \
             header, found \"((((((((((((((((((((\"...",
        ),
        (
            "newline_in_string.npy",
            npy_bytes(1, "{'descr': '<f4\n', 'fortran_order': False, 'shape': (2,), }", &[]),
            "error parsing header: expected a string closed on its line at byte 10 of the header, \
             found \"'<f4\\n', 'fortran_ord\"...",
        ),
    ];
    let w = weight(dir.path());
    for (name, bytes, want) in cases {
        let path = write_file(dir.path(), name, &bytes);
        let message = npy_message(&path);
        assert_eq!(message, format!("not a readable float32 .npy file: {want}"));
        assert!(message.len() < 300 && !message.contains('\n'), "{message}");
        // The CLI prints the same, one line.
        let out = Command::new(env!("CARGO_BIN_EXE_wgconv"))
            .args(["run", "--device", "cpu", "--input"])
            .args([&path, Path::new("--weight"), &w])
            .args(["--output", dir.path().join("y.npy").to_str().unwrap()])
            .output()
            .unwrap();
        let line = one_error_line(dir.path(), &out);
        assert_eq!(
            line,
            format!("wgconv: error: {}: {message}", path.display())
        );
    }
}

#[test]
fn headers_that_numpy_refuses_are_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }",
            "the shape (3) is not a tuple; a 1-dimensional shape is written (3,)",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, }",
            "the header has no 'shape' key",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
            "expected True or False for 'fortran_order' at byte 34 of the header, found \
             \"0, 'shape': (2,), }\"",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
            "unknown key 'extra' (a .npy header has the keys 'descr', 'fortran_order' and 'shape')",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            "the shape's dimension 99999999999999999999999 does not fit in 64 bits",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } trailing",
            "expected the end of the header after its dict at byte 58 of the header, found \
             \"trailing\"",
        ),
    ];
    for (i, (header, want)) in cases.into_iter().enumerate() {
        let path = write_file(
            dir.path(),
            &format!("case{i}.npy"),
            &npy_bytes(1, header, &[0; 8]),
        );
        assert_eq!(
            npy_message(&path),
            format!("not a readable float32 .npy file: error parsing header: {want}")
        );
    }
    // A structured dtype is named as one.
    let path = write_file(
        dir.path(),
        "structured.npy",
        &npy_bytes(
            1,
            "{'descr': [('a', '<f4'), ('b', '<i8', (2,))], 'fortran_order': False, 'shape': (1,), }",
            &[0; 20],
        ),
    );
    assert_eq!(
        npy_message(&path),
        "not a readable float32 .npy file: it holds a structured dtype [('a', '<f4'), ('b', \
         '<i8', (2,))], not float32 ('<f4'); convert it with `a.astype(numpy.float32)`"
    );
    // An unknown version.
    let mut bytes = npy_bytes(1, &dict("<f4", false, "(2,)"), &[0; 8]);
    bytes[6] = 4;
    let path = write_file(dir.path(), "v4.npy", &bytes);
    assert_eq!(
        npy_message(&path),
        "not a readable float32 .npy file: error parsing header: unknown .npy format version \
         4.0 (wgconv reads 1.0, 2.0 and 3.0)"
    );
}

// ----------------------------------------------------------------- byte orders, Fortran order

#[test]
fn native_order_descrs_read_as_float32() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.5f32, -2.0, 3.25, f32::MIN_POSITIVE];
    let native: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    for (name, descr) in [("eq.npy", "=f4"), ("pipe.npy", "|f4"), ("bare.npy", "f4")] {
        let path = write_file(
            dir.path(),
            name,
            &npy_bytes(1, &dict(descr, false, "(2, 2)"), &native),
        );
        let t = io::read_npy(&path).unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(t.shape(), [2, 2], "{descr}");
        assert_eq!(t.data(), values, "{descr}");
    }
}

#[test]
fn big_endian_and_fortran_order_files_read_with_the_right_values() {
    let dir = tempfile::tempdir().unwrap();
    // C order, big-endian.
    let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
    let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = write_file(
        dir.path(),
        "be.npy",
        &npy_bytes(1, &dict(">f4", false, "(2, 3)"), &be),
    );
    let t = io::read_npy(&path).unwrap();
    assert_eq!((t.shape(), t.data()), (&[2, 3][..], &values[..]));

    // Fortran order, ranks 0 to 4, both byte orders: element [i0, i1, ...] holds a value that
    // names its index, written with the first index varying fastest.
    for shape in [
        vec![],
        vec![5],
        vec![2, 3],
        vec![3, 1, 4],
        vec![2, 3, 4, 5],
        vec![3, 0, 2],
    ] {
        let len: usize = shape.iter().product();
        let c_value = |c: usize| c as f32 * 0.5 + 1.0;
        // The C offsets in Fortran order: the first index fastest.
        let mut fortran_values = Vec::with_capacity(len);
        for f in 0..len {
            let (mut rest, mut c, mut stride) = (f, 0, 1);
            let mut c_strides = vec![0; shape.len()];
            for k in (0..shape.len()).rev() {
                c_strides[k] = stride;
                stride *= shape[k];
            }
            for (k, &d) in shape.iter().enumerate() {
                c += (rest % d) * c_strides[k];
                rest /= d;
            }
            fortran_values.push(c_value(c));
        }
        let want: Vec<f32> = (0..len).map(c_value).collect();
        let text: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape_text = match shape.len() {
            1 => format!("({},)", text[0]),
            _ => format!("({})", text.join(", ")),
        };
        for (descr, bytes) in [
            ("<f4", le_bytes(&fortran_values)),
            (
                ">f4",
                fortran_values
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
            ),
        ] {
            let path = write_file(
                dir.path(),
                "fortran.npy",
                &npy_bytes(1, &dict(descr, true, &shape_text), &bytes),
            );
            let t = io::read_npy(&path).unwrap_or_else(|e| panic!("{shape:?} {descr}: {e}"));
            assert_eq!(t.shape(), &shape[..], "{descr}");
            assert_eq!(t.data(), want, "{shape:?} {descr}");
        }
    }
}

// ------------------------------------------------------------------------ memory and the OS

#[test]
fn a_consistent_header_too_big_for_memory_is_a_host_memory_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    // 7.5e9 floats, 30 GB, over a sparse file of exactly that length: no disk used.
    let path = dir.path().join("big.npy");
    let header = npy_bytes(1, &dict("<f4", false, "(1, 1, 75000, 100000)"), &[]);
    std::fs::write(&path, &header).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(header.len() as u64 + 30_000_000_000)
        .unwrap();
    let out = run_cli(dir.path(), &path, Some(4 << 20));
    let line = one_error_line(dir.path(), &out);
    assert!(
        line.starts_with(&format!(
            "wgconv: error: the float32 data of {} (shape [1, 1, 75000, 100000]) needs 30.0 GB \
             (30000000000 bytes) of host memory, but ",
            path.display()
        )),
        "{line}"
    );
}

#[test]
fn a_fifo_as_input_is_refused_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.npy");
    common::mkfifo(&fifo);
    // The CLI, which must not wait for a writer.
    let w = weight(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .args(["run", "--device", "cpu", "--input"])
        .args([&fifo, Path::new("--weight"), &w])
        .args(["--output", dir.path().join("y.npy").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("wgconv run --input FIFO still runs after 20 s: it waits on the FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let line = one_error_line(dir.path(), &out);
    assert_eq!(
        line,
        format!(
            "wgconv: error: cannot read {}: it is a FIFO (named pipe), not a regular file",
            fifo.display()
        )
    );
    // The library, in a thread so that a reader that waits for a writer fails instead of hanging.
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || sender.send(io::read_npy(&path).map(|_| ())));
    let e = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("read_npy(FIFO) still waits after 20 s")
        .unwrap_err();
    assert!(matches!(e, Error::Io { action: "read", .. }), "{e:?}");
    assert_eq!(e.to_string(), line.trim_start_matches("wgconv: error: "));
}

// ------------------------------------------------------------------------------------ writing

#[test]
fn write_then_read_round_trips_every_rank_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let specials = [
        -0.0f32,
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        f32::MIN_POSITIVE / 8.0,
        f32::MAX,
    ];
    for shape in [vec![0], vec![], vec![3], vec![2, 3, 4, 5], vec![4, 0, 3]] {
        let t = Tensor::from_fn(shape.clone(), |i| {
            specials.get(i).copied().unwrap_or(i as f32 * -0.25)
        })
        .unwrap();
        let path = dir.path().join("t.npy");
        io::write_npy(&path, &t).unwrap();
        let back = io::read_npy(&path).unwrap();
        assert_eq!(back.shape(), &shape[..]);
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&t), "{shape:?}");
    }
}

#[test]
fn written_headers_are_laid_out_as_numpy_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    for (shape, tuple) in [
        (vec![2, 3], "(2, 3)"),
        (vec![3], "(3,)"),
        (vec![], "()"),
        (vec![0], "(0,)"),
    ] {
        let t = Tensor::full(shape.clone(), 1.0).unwrap();
        let path = dir.path().join("t.npy");
        io::write_npy(&path, &t).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{shape:?}");
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        let data_start = 10 + header_len;
        assert_eq!(data_start % 64, 0, "{shape:?}");
        assert_eq!(bytes.len(), data_start + 4 * t.len(), "{shape:?}");
        let header = std::str::from_utf8(&bytes[10..data_start]).unwrap();
        let want = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
        assert!(header.ends_with('\n'), "{header:?}");
        assert_eq!(
            header
                .trim_end_matches(' ')
                .trim_end_matches('\n')
                .trim_end(),
            want
        );
        assert_eq!(&bytes[data_start..], le_bytes(t.data()), "{shape:?}");
    }
    // A header over 65535 bytes needs format 2.0 (u32 length), as numpy writes it.
    let t = Tensor::new(vec![1; 30_000], vec![7.0]).unwrap();
    let path = dir.path().join("long.npy");
    io::write_npy(&path, &t).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x02\x00");
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert!(header_len > 65_535, "{header_len}");
    assert_eq!((12 + header_len) % 64, 0);
    assert_eq!(bytes[12 + header_len - 1], b'\n');
    assert_eq!(&bytes[12 + header_len..], 7.0f32.to_le_bytes());
}
