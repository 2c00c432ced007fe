//! `wgconv filter` on hostile images: a small file whose pixels would not fit in memory is
//! refused from its header, before anything is decoded, with exit status 1 and one line (never
//! a kill by the OOM killer or an abort); a FIFO is refused instead of waited on; a normal image
//! still filters.
//!
//! The memory estimate and the FIFO check are Linux's (`/proc/meminfo`, `ulimit -v`, `mkfifo`).
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wgconv::filter::{filter_memory_bytes, read_image, sample_image, write_image};

/// The address space the CLI gets in these tests: `ulimit -v 8388608` (KiB), 8 GiB.
const LIMIT_KIB: u64 = 8 << 20;

/// How long a refusal may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(20);

/// `wgconv args` under `ulimit -v 8 GiB`.
fn wgconv_under_8_gib(args: &[&str]) -> Command {
    common::wgconv_under_ulimit(LIMIT_KIB, args)
}

// ------------------------------------------------------------------ a black PNG of any size

/// CRC-32 (ISO-HDLC, as PNG chunks carry it) of `bytes`, continuing from `crc`.
fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Bits in deflate's order: fields from their least significant bit, Huffman codes from their
/// most significant one (RFC 1951, 3.1.1).
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    current: u8,
    used: u32,
}

impl Bits {
    fn bit(&mut self, bit: u32) {
        self.current |= ((bit & 1) as u8) << self.used;
        self.used += 1;
        if self.used == 8 {
            self.bytes.push(self.current);
            (self.current, self.used) = (0, 0);
        }
    }

    /// A field of `len` bits, least significant first.
    fn field(&mut self, value: u32, len: u32) {
        (0..len).for_each(|i| self.bit(value >> i));
    }

    /// A Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        (0..len).rev().for_each(|i| self.bit(code >> i));
    }

    /// `count` zero bits, whole bytes at a time.
    fn zeros(&mut self, mut count: u64) {
        while self.used != 0 && count > 0 {
            self.bit(0);
            count -= 1;
        }
        let bytes = usize::try_from(count / 8).expect("fits usize");
        self.bytes.resize(self.bytes.len() + bytes, 0);
        (0..count % 8).for_each(|_| self.bit(0));
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.bytes.push(self.current);
        }
        self.bytes
    }
}

/// The zlib stream of `len` zero bytes: one dynamic-Huffman deflate block whose literal/length
/// code holds only literal 0 (`10`), end of block (`11`) and length 258 (`0`), with the single
/// distance 1 (`0`): every 258 zeros after the first are the two bits `00`.
fn zlib_of_zeros(len: u64) -> Vec<u8> {
    assert!(len > 0);
    let mut bits = Bits::default();
    bits.field(0x78, 8); // CMF: deflate, 32 KiB window
    bits.field(0x01, 8); // FLG: no dictionary; (CMF * 256 + FLG) % 31 == 0
    bits.field(1, 1); // BFINAL
    bits.field(2, 2); // BTYPE: dynamic Huffman
    bits.field(286 - 257, 5); // HLIT: literal/length codes 0..=285
    bits.field(0, 5); // HDIST: one distance code
    bits.field(18 - 4, 4); // HCLEN: code-length codes up to symbol 1 in the order below
                           // Code-length code: symbol 18 (a run of zeros) `0`, length 1 `10`, length 2 `11`.
    for symbol in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
        let len = match symbol {
            18 => 1,
            1 | 2 => 2,
            _ => 0,
        };
        bits.field(len, 3);
    }
    let length_two = |bits: &mut Bits| bits.code(0b11, 2);
    let length_one = |bits: &mut Bits| bits.code(0b10, 2);
    let zeros_run = |bits: &mut Bits, run: u32| {
        bits.code(0b0, 1);
        bits.field(run - 11, 7);
    };
    length_two(&mut bits); // literal 0
    zeros_run(&mut bits, 138); // literals 1..=138
    zeros_run(&mut bits, 117); // literals 139..=255
    length_two(&mut bits); // end of block (256)
    zeros_run(&mut bits, 28); // lengths 257..=284
    length_one(&mut bits); // length 258 (285)
    length_one(&mut bits); // distance 1
                           // The data: one literal zero, then matches of 258 copying it, then the rest as literals.
    bits.code(0b10, 2);
    let rest = len - 1;
    bits.zeros(2 * (rest / 258));
    (0..rest % 258).for_each(|_| bits.code(0b10, 2));
    bits.code(0b11, 2);
    let mut stream = bits.finish();
    // Adler-32 of zeros: a stays 1, b adds it once per byte.
    let adler = (((len % 65521) as u32) << 16) | 1;
    stream.extend_from_slice(&adler.to_be_bytes());
    stream
}

/// Writes a valid 8-bit PNG of `width x height` black pixels, grayscale (`channels` 1) or RGB
/// (3), without ever holding its pixels: a 22000x22000 one is under half a megabyte.
fn write_black_png(path: &Path, width: u32, height: u32, channels: u8) {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(crc32(0, kind), data).to_be_bytes());
    };
    let color_type = if channels == 3 { 2 } else { 0 };
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, color_type, 0, 0, 0]);
    // Each row: filter type 0, then the pixels.
    let raw = u64::from(height) * (u64::from(width) * u64::from(channels) + 1);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_of_zeros(raw));
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

#[test]
fn black_png_writer_makes_files_the_image_crate_decodes() {
    let dir = tempfile::tempdir().unwrap();
    // Sizes with and without a remainder after the 258-byte matches.
    for (w, h, channels) in [(300, 7, 1), (259, 3, 3), (1, 1, 1), (85, 2, 3)] {
        let path = dir.path().join(format!("black_{w}x{h}x{channels}.png"));
        write_black_png(&path, w, h, channels);
        let decoded = image::open(&path).unwrap_or_else(|e| panic!("{w}x{h}x{channels}: {e}"));
        assert_eq!((decoded.width(), decoded.height()), (w, h));
        assert_eq!(decoded.color().channel_count(), channels);
        assert!(decoded.as_bytes().iter().all(|&b| b == 0));
    }
}

// -------------------------------------------------------------------------- the refusals

/// A black PNG of `width x height` given to `filter` under 8 GiB of address space: exit 1 and
/// one line naming what the run needs and what is available, from the header alone.
fn assert_refused_before_decoding(width: u32, height: u32, channels: u8, words: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.png");
    write_black_png(&input, width, height, channels);
    let len = std::fs::metadata(&input).unwrap().len();
    let color = if channels == 3 {
        image::ColorType::Rgb8
    } else {
        image::ColorType::L8
    };
    let need = filter_memory_bytes(width, height, color, image::ImageFormat::Png, len);
    assert!(
        need > LIMIT_KIB << 10,
        "the test's premise: a {width}x{height} image needs more than 8 GiB (the estimate says \
         {need} bytes); pick a larger one"
    );
    let output = dir.path().join("out.png");
    let out = common::run_with_deadline(
        wgconv_under_8_gib(&[
            "filter",
            "--input",
            input.to_str().unwrap(),
            "--kernel",
            "edges",
            "--output",
            output.to_str().unwrap(),
        ]),
        DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal instead of refusing: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let prefix = format!(
        "wgconv: error: filtering {} (a {width}x{height} {words} PNG) needs ",
        input.display()
    );
    assert!(
        stderr.starts_with(&prefix),
        "expected {prefix:?}... in {stderr:?}"
    );
    assert!(
        stderr.contains(" of host memory, but only ") && stderr.contains(" are available"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert_eq!(
        common::files_in(dir.path()),
        ["big.png"],
        "no output, no temporary file"
    );
}

#[test]
fn grayscale_png_of_22000x22000_is_refused_from_its_header_under_8_gib() {
    // The file: half a megabyte, 484 MB of pixels, under the image crate's 512 MiB.
    assert_refused_before_decoding(22000, 22000, 1, "8-bit grayscale");
}

#[test]
fn rgb_png_of_24000x24000_is_refused_from_its_header_under_8_gib() {
    // An RGB 13000x13000 image needs about 3.6 GB now that the filter goes in bands, and runs;
    // 24000x24000 needs some 10.9 GB.
    assert_refused_before_decoding(24000, 24000, 3, "8-bit RGB");
}

#[test]
fn jpeg_whose_header_claims_60000x60000_is_refused_before_decoding() {
    // A small JPEG, its frame header (SOF0) rewritten to claim 60000x60000 pixels.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jpg");
    let mut bytes = Vec::new();
    image::RgbImage::new(16, 16)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new(&mut bytes))
        .unwrap();
    // Walk the header's segments (marker, then a big-endian length) to the frame header.
    let mut sof = 2;
    while bytes[sof + 1] != 0xC0 {
        assert_eq!(bytes[sof], 0xFF, "a marker at byte {sof}");
        sof += 2 + usize::from(u16::from_be_bytes([bytes[sof + 2], bytes[sof + 3]]));
    }
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("out.png");
    let out = common::run_with_deadline(
        wgconv_under_8_gib(&[
            "filter",
            "--input",
            input.to_str().unwrap(),
            "--kernel",
            "box",
            "--output",
            output.to_str().unwrap(),
        ]),
        DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "wgconv: error: filtering {} (a 60000x60000 8-bit RGB JPEG) needs ",
            input.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("available"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(common::files_in(dir.path()), ["big.jpg"]);
}

#[test]
fn fifo_as_input_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("photo.png");
    common::mkfifo(&fifo);
    let output = dir.path().join("out.png");
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgconv"));
    command.args([
        "filter",
        "--input",
        fifo.to_str().unwrap(),
        "--kernel",
        "edges",
        "--output",
        output.to_str().unwrap(),
    ]);
    let out = common::run_with_deadline(command, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "wgconv: error: cannot read {}: it is a FIFO (named pipe), not a regular file\n",
            fifo.display()
        )
    );
    assert!(!output.exists());
}

#[test]
fn read_image_refuses_a_fifo_and_a_directory_as_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    common::mkfifo(&fifo);
    for (path, what) in [
        (fifo.as_path(), "a FIFO (named pipe)"),
        (dir.path(), "a directory"),
    ] {
        match read_image(path) {
            Err(e @ wgconv::Error::Io { action: "read", .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "cannot read {}: it is {what}, not a regular file",
                    path.display()
                )
            ),
            other => panic!("expected an Io error for {}, got {other:?}", path.display()),
        }
    }
}

// ------------------------------------------------------------------------- normal images

#[test]
fn normal_image_still_filters_and_its_estimate_is_modest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("photo.png");
    write_image(&input, &sample_image()).unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let need = filter_memory_bytes(
        128,
        128,
        image::ColorType::Rgb8,
        image::ImageFormat::Png,
        len,
    );
    assert!(
        need < 1 << 30,
        "a 128x128 image should need well under 1 GiB, the estimate says {need}"
    );
    let output = dir.path().join("edges.png");
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgconv"));
    command.args([
        "filter",
        "--input",
        input.to_str().unwrap(),
        "--kernel",
        "edges",
        "--output",
        output.to_str().unwrap(),
    ]);
    let out = common::run_with_deadline(command, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edges = read_image(&output).unwrap();
    assert_eq!(edges.dimensions(), (128, 128));
    // The house's wall against the sky is an edge.
    assert!(
        edges.get_pixel(23, 80)[0] > 50,
        "{:?}",
        edges.get_pixel(23, 80)
    );
}
