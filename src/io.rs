//! `.npy` files: float32 in either byte order, C or Fortran order; read whole, written atomically.
//!
//! The format is numpy's (`numpy.lib.format`): the magic `\x93NUMPY`, the version (1.0, 2.0 or
//! 3.0), the header length (u16 LE in 1.0, u32 LE after), a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a final
//! '\n' so the data starts at a multiple of 64 bytes, then the data. Files come from anywhere, so
//! the reader trusts nothing: the header length is capped before the header is read, the header
//! is parsed by a small strict parser whose errors fit on one line, and the data's size is checked
//! against the file and the available memory before it is asked for.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// numpy's default `max_header_size`: a longer header is refused before it is read.
const MAX_HEADER_BYTES: u64 = 10_000;

/// The data starts at a multiple of this many bytes (numpy's `ARRAY_ALIGN`).
const ARRAY_ALIGN: usize = 64;

/// Elements read or written per step (1 MiB): the only memory beyond the tensor itself.
const CHUNK_ELEMENTS: usize = 1 << 18;

/// Reads a float32 `.npy` file (any shape, either byte order, C or Fortran order) into a C-order
/// [`Tensor`].
///
/// The header is checked before any data is read: at most 10 000 bytes (numpy's
/// `max_header_size`), the dtype float32 (`'<f4'`, `'>f4'`, or native `'=f4'`/`'|f4'`), and
/// exactly the bytes its shape needs in the file, so a corrupt header can neither be misread nor
/// make the reader ask for more memory than the file holds. The data is read in 1 MiB steps into
/// the tensor's own memory.
///
/// # Errors
/// [`Error::Io`] when the path is not a regular file (a FIFO, a device, a folder) or cannot be
/// opened or read; [`Error::Npy`] when it is not a float32 `.npy` file (the message names the
/// dtype it holds instead) or is truncated or corrupt; [`Error::HostMemory`] when the data does
/// not fit in the memory available.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    // Refuses FIFOs and devices before opening: opening a FIFO with no writer would block.
    let (mut file, file_len) = crate::files::open_input(path)?;
    let text = read_header_text(&mut file, file_len, path)?;
    let header = HeaderParser::new(&text)
        .dict()
        .map_err(|m| npy_error(path, m))?;
    let big_endian = header.big_endian().map_err(|m| npy_error(path, m))?;
    let shape = &header.shape;
    let data_bytes = file_len.saturating_sub(text.data_start);

    // ndarray's rule: the non-zero dimensions' bytes fit in an isize even when the array is empty.
    let needed = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(4u64, |acc, &d| acc.checked_mul(d))
        .filter(|&b| b <= isize::MAX as u64)
        .map(|b| if shape.contains(&0) { 0 } else { b });
    let bytes = match needed {
        Some(bytes) if bytes == data_bytes => bytes,
        Some(bytes) => {
            return Err(npy_error(path, format!(
                "its header says shape {shape:?}, {bytes} bytes of float32 data, but {data_bytes} bytes follow the header{}",
                if data_bytes < bytes { " (truncated?)" } else { "" }
            )))
        }
        None => {
            return Err(npy_error(
                path,
                format!("its header says shape {shape:?}, more bytes than this host can address"),
            ))
        }
    };
    // Every dimension fits in a usize: their bytes fit in an isize (checked above).
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let len = (bytes / 4) as usize;

    // Ask for the memory before touching it, so an absurd but consistent file is an error.
    let mut data = crate::memory::try_vec(len, 0.0f32, || {
        format!("the float32 data of {} (shape {dims:?})", path.display())
    })?;
    if header.fortran_order {
        read_fortran_order(&mut file, path, &dims, big_endian, &mut data)?;
    } else {
        read_c_order(&mut file, path, big_endian, &mut data)?;
    }
    Tensor::new(dims, data)
}

/// `Error::Npy` for a file that is not a readable float32 `.npy` file.
fn npy_error(path: &Path, message: String) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        message: format!("not a readable float32 .npy file: {message}"),
    }
}

/// Reads the preamble and the header text, refusing a header length over [`MAX_HEADER_BYTES`]
/// before reading it. The file is left at the first data byte.
fn read_header_text(file: &mut File, file_len: u64, path: &Path) -> Result<HeaderText> {
    let ends_inside = || {
        npy_error(
            path,
            format!("the file ends inside the .npy header ({file_len} bytes in all)"),
        )
    };
    let mut preamble = [0u8; 8];
    let got = read_up_to(file, &mut preamble).map_err(|e| Error::io("read", path, e))?;
    let seen = &preamble[..got];
    if !seen.starts_with(&MAGIC[..seen.len().min(MAGIC.len())]) {
        return Err(npy_error(
            path,
            format!(
                "error parsing header: it does not start with the .npy magic string \\x93NUMPY \
                 (its first bytes are b\"{}\")",
                seen.escape_ascii()
            ),
        ));
    }
    if got < preamble.len() {
        return Err(ends_inside());
    }
    let length_field = match (preamble[6], preamble[7]) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (major, minor) => {
            return Err(npy_error(
                path,
                format!(
                    "error parsing header: unknown .npy format version {major}.{minor} \
                     (wgconv reads 1.0, 2.0 and 3.0)"
                ),
            ))
        }
    };
    let mut length = [0u8; 4];
    match read_up_to(file, &mut length[..length_field]) {
        Ok(n) if n == length_field => {}
        Ok(_) => return Err(ends_inside()),
        Err(e) => return Err(Error::io("read", path, e)),
    }
    let header_len = u64::from(u32::from_le_bytes(length));
    if header_len > MAX_HEADER_BYTES {
        return Err(npy_error(
            path,
            format!(
                "its header length field says {header_len} bytes, over numpy's limit of \
                 {MAX_HEADER_BYTES} bytes (max_header_size)"
            ),
        ));
    }
    let data_start = 8 + length_field as u64 + header_len;
    if file_len < data_start {
        return Err(ends_inside());
    }
    let mut text = vec![0u8; header_len as usize];
    match file.read_exact(&mut text) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ends_inside()),
        Err(e) => return Err(Error::io("read", path, e)),
    }
    Ok(HeaderText { text, data_start })
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Fills `bytes` from the file; a file that ends early (shrunk since its length was read) is an
/// `Error::Npy`, any other failure an `Error::Io`.
fn read_data(file: &mut File, path: &Path, bytes: &mut [u8]) -> Result<()> {
    file.read_exact(bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            npy_error(
                path,
                "the file ends inside its data (did it shrink while being read?)".into(),
            )
        } else {
            Error::io("read", path, e)
        }
    })
}

/// Reads C-order data straight into `data`, swapping bytes where the file's order is not the host's.
fn read_c_order(file: &mut File, path: &Path, big_endian: bool, data: &mut [f32]) -> Result<()> {
    let swap = big_endian != cfg!(target_endian = "big");
    for chunk in data.chunks_mut(CHUNK_ELEMENTS) {
        read_data(file, path, bytemuck::cast_slice_mut(chunk))?;
        if swap {
            for v in chunk.iter_mut() {
                *v = f32::from_bits(v.to_bits().swap_bytes());
            }
        }
    }
    Ok(())
}

/// Reads Fortran-order data (the first index varies fastest) of shape `dims` and stores each
/// element at its C-order place in `data`.
fn read_fortran_order(
    file: &mut File,
    path: &Path,
    dims: &[usize],
    big_endian: bool,
    data: &mut [f32],
) -> Result<()> {
    // C strides: the last index varies fastest.
    let mut strides = vec![1usize; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * dims[k + 1];
    }
    let mut index = vec![0usize; dims.len()];
    let mut offset = 0usize;
    let mut buf = vec![0u8; CHUNK_ELEMENTS.min(data.len()) * 4];
    let mut remaining = data.len();
    while remaining > 0 {
        let n = remaining.min(CHUNK_ELEMENTS);
        let bytes = &mut buf[..n * 4];
        read_data(file, path, bytes)?;
        for raw in bytes.chunks_exact(4) {
            let raw = [raw[0], raw[1], raw[2], raw[3]];
            data[offset] = if big_endian {
                f32::from_be_bytes(raw)
            } else {
                f32::from_le_bytes(raw)
            };
            // Step the Fortran-order index, first dimension first, keeping its C offset.
            for k in 0..dims.len() {
                index[k] += 1;
                offset += strides[k];
                if index[k] < dims[k] {
                    break;
                }
                offset -= dims[k] * strides[k];
                index[k] = 0;
            }
        }
        remaining -= n;
    }
    Ok(())
}

/// A header's text and the offset of the first data byte.
struct HeaderText {
    text: Vec<u8>,
    data_start: u64,
}

/// What a `.npy` header says.
struct Header {
    /// The `descr` value: a dtype string, or the source text of anything else (a structured
    /// dtype's list).
    descr: Descr,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A header's `descr`: a dtype string such as `<f4`, or the source text of another value.
enum Descr {
    Text(String),
    Other(String),
}

impl Header {
    /// Whether the data is big-endian float32, or the message naming the dtype it holds instead.
    fn big_endian(&self) -> Result<bool, String> {
        let advice = "not float32 ('<f4'); convert it with `a.astype(numpy.float32)`";
        match &self.descr {
            Descr::Text(t) if t == "<f4" => Ok(false),
            Descr::Text(t) if t == ">f4" => Ok(true),
            // numpy reads '=' (and '|', "not applicable", and no sign) as the host's order.
            Descr::Text(t) if matches!(t.as_str(), "=f4" | "|f4" | "f4") => {
                Ok(cfg!(target_endian = "big"))
            }
            Descr::Text(t) => {
                let quoted = format!("'{}'", snippet(t.as_bytes(), 40));
                Err(format!(
                    "it holds {} ({quoted}), {advice}",
                    dtype_name(&quoted)
                ))
            }
            Descr::Other(source) => Err(format!(
                "it holds a structured dtype {}, {advice}",
                snippet(source.as_bytes(), 60)
            )),
        }
    }
}

/// numpy's name for a dtype descriptor such as `'<f8'` (`float64`), or the descriptor itself.
fn dtype_name(text: &str) -> String {
    let code = text
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '=', '|']);
    let mut chars = code.chars();
    let kind = chars.next().map(String::from).unwrap_or_default();
    let bits = chars
        .as_str()
        .parse::<u32>()
        .ok()
        .and_then(|bytes| bytes.checked_mul(8));
    match (kind.as_str(), bits) {
        ("f", Some(bits)) => format!("float{bits}"),
        ("i", Some(bits)) => format!("int{bits}"),
        ("u", Some(bits)) => format!("uint{bits}"),
        ("c", Some(bits)) => format!("complex{bits}"),
        ("b", Some(8)) => "bool".to_string(),
        _ => format!("dtype {text}"),
    }
}

/// At most `max` bytes of `bytes` as printable ASCII (other bytes escaped as `\n`, `\xc3`),
/// with `...` when cut.
fn snippet(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut text = String::new();
    for &b in cut {
        match b {
            b'\\' => text.push_str("\\\\"),
            b' '..=b'~' => text.push(char::from(b)),
            _ => text.extend(b.escape_ascii().map(char::from)),
        }
    }
    if cut.len() < bytes.len() {
        text.push_str("...");
    }
    text
}

/// A strict parser for the one dict literal a `.npy` header holds. It never recurses, so no
/// header can exhaust the stack, and each error is one short line naming the byte where the
/// header stops making sense.
struct HeaderParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> HeaderParser<'a> {
    fn new(header: &'a HeaderText) -> Self {
        HeaderParser {
            text: &header.text,
            pos: 0,
        }
    }

    /// `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` in any key order, then only
    /// white space.
    fn dict(mut self) -> Result<Header, String> {
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        self.skip_space();
        self.expect(b'{', "'{' opening the header's dict")?;
        self.skip_space();
        if !self.eat(b'}') {
            loop {
                let key = self.string("a key such as 'descr'")?;
                self.skip_space();
                self.expect(b':', "':' after a key")?;
                self.skip_space();
                match key.as_str() {
                    "descr" => descr = Some(self.descr()?),
                    "fortran_order" => fortran_order = Some(self.bool("True or False")?),
                    "shape" => shape = Some(self.shape()?),
                    other => {
                        return Err(format!(
                            "error parsing header: unknown key '{}' (a .npy header has the keys \
                             'descr', 'fortran_order' and 'shape')",
                            snippet(other.as_bytes(), 40)
                        ))
                    }
                }
                self.skip_space();
                if self.eat(b',') {
                    self.skip_space();
                    if self.eat(b'}') {
                        break;
                    }
                } else {
                    self.expect(b'}', "',' or '}' after a value")?;
                    break;
                }
            }
        }
        self.skip_space();
        if self.pos < self.text.len() {
            return Err(self.expected("the end of the header after its dict"));
        }
        let missing = |key| format!("error parsing header: the header has no '{key}' key");
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }

    /// A dtype string, or a structured dtype's list kept as source text.
    fn descr(&mut self) -> Result<Descr, String> {
        if self.peek() == Some(b'[') {
            let start = self.pos;
            self.skip_brackets()?;
            let source = String::from_utf8_lossy(&self.text[start..self.pos]);
            return Ok(Descr::Other(source.into_owned()));
        }
        self.string("a dtype string such as '<f4' for 'descr'")
            .map(Descr::Text)
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(2, 3)`, `(2, 3,)`.
    fn shape(&mut self) -> Result<Vec<u64>, String> {
        let start = self.pos;
        self.expect(b'(', "a tuple such as (2, 3) for 'shape'")?;
        let mut dims = Vec::new();
        let mut comma = false;
        loop {
            self.skip_space();
            if self.eat(b')') {
                break;
            }
            if !dims.is_empty() && !comma {
                self.expect(b')', "',' or ')' in the shape")?;
            }
            dims.push(self.dimension()?);
            self.skip_space();
            comma = self.eat(b',');
        }
        // `(3)` is the number 3 in Python, not a tuple: numpy refuses it too.
        if dims.len() == 1 && !comma {
            return Err(format!(
                "error parsing header: the shape {} is not a tuple; a 1-dimensional shape is \
                 written ({},)",
                snippet(&self.text[start..self.pos], 40),
                dims[0]
            ));
        }
        Ok(dims)
    }

    /// A decimal integer (Python 2's `3L` included, as numpy reads old files).
    fn dimension(&mut self) -> Result<u64, String> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.expected("a non-negative integer in the shape"));
        }
        let digits = &self.text[start..self.pos];
        self.eat(b'L');
        digits
            .iter()
            .try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or_else(|| {
                format!(
                    "error parsing header: the shape's dimension {} does not fit in 64 bits",
                    snippet(digits, 40)
                )
            })
    }

    /// Python's `True` or `False`.
    fn bool(&mut self, what: &str) -> Result<bool, String> {
        for (word, value) in [(&b"True"[..], true), (b"False", false)] {
            let rest = &self.text[self.pos..];
            let whole_word = rest
                .get(word.len())
                .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'));
            if rest.starts_with(word) && whole_word {
                self.pos += word.len();
                return Ok(value);
            }
        }
        Err(self.expected(&format!("{what} for 'fortran_order'")))
    }

    /// A Python string literal in single or double quotes; escapes other than of the quote and
    /// the backslash are kept as written (no dtype string needs them).
    fn string(&mut self, what: &str) -> Result<String, String> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.expected(what)),
        };
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                Some(b) if b == quote => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\')
                    if matches!(self.text.get(self.pos + 1), Some(b'\\' | b'\'' | b'"')) =>
                {
                    value.push(self.text[self.pos + 1]);
                    self.pos += 2;
                }
                Some(b'\n') | None => {
                    self.pos = start;
                    return Err(self.expected("a string closed on its line"));
                }
                Some(b) => {
                    value.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// Skips a bracketed value such as `[('a', '<f4'), ('b', '<i8', (2,))]`, counting depth
    /// instead of recursing.
    fn skip_brackets(&mut self) -> Result<(), String> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'[' | b'(' | b'{' => depth += 1,
                b']' | b')' | b'}' => depth -= 1,
                b'\'' | b'"' => {
                    self.string("a string")?;
                    continue;
                }
                _ => {}
            }
            self.pos += 1;
            if depth == 0 {
                return Ok(());
            }
        }
        self.pos = start;
        Err(self.expected("a 'descr' list closed before the end of the header"))
    }

    fn skip_space(&mut self) {
        while self
            .peek()
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// "expected X at byte N of the header, found "..."": one line, whatever the header holds.
    fn expected(&self, what: &str) -> String {
        // The padding after the dict is no part of what the header says.
        let rest = self.text[self.pos..].trim_ascii_end();
        let found = if rest.is_empty() {
            "its end".to_string()
        } else {
            let shown = snippet(&rest[..rest.len().min(20)], 20);
            let dots = if rest.len() > 20 { "..." } else { "" };
            format!("\"{shown}\"{dots}")
        };
        format!(
            "error parsing header: expected {what} at byte {} of the header, found {found}",
            self.pos
        )
    }
}

/// Writes `tensor` as a float32 `.npy` file that numpy reads (`'<f4'`, C order, format 1.0, or
/// 2.0 for a header over 65535 bytes). The data is streamed from the tensor in 1 MiB steps to a
/// temporary file in the same folder that is renamed over `path` only when complete, so a
/// failure never leaves a partial file.
///
/// # Errors
/// [`Error::Io`] when the folder is not writable, a write fails or the rename fails;
/// [`Error::Npy`] when the header would exceed 4 GiB (a shape of over 400 million dimensions).
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let header = npy_header(tensor.shape()).ok_or_else(|| Error::Npy {
        path: path.to_path_buf(),
        message: format!(
            "could not encode .npy: the header of a {}-dimensional shape exceeds 4 GiB",
            tensor.shape().len()
        ),
    })?;
    crate::atomic::write_with(path, |writer: &mut dyn Write| {
        let io_err = |e| Error::io("write", path, e);
        writer.write_all(&header).map_err(io_err)?;
        let mut bytes = Vec::with_capacity(CHUNK_ELEMENTS.min(tensor.len()) * 4);
        for chunk in tensor.data().chunks(CHUNK_ELEMENTS) {
            bytes.clear();
            bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            writer.write_all(&bytes).map_err(io_err)?;
        }
        Ok(())
    })
}

/// The magic, version, length and header numpy writes for a C-order `'<f4'` array of `shape`,
/// padded with spaces and ending in '\n' so the data starts at a multiple of [`ARRAY_ALIGN`];
/// `None` when the header does not fit in a u32 length.
fn npy_header(shape: &[usize]) -> Option<Vec<u8>> {
    // Python's repr of a tuple: `()`, `(3,)`, `(2, 3)`.
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Version 1.0 has a u16 length after 10 bytes; 2.0 a u32 after 12.
    let padded =
        |prefix: usize| (prefix + dict.len() + 1).div_ceil(ARRAY_ALIGN) * ARRAY_ALIGN - prefix;
    let (version, length_field) = if padded(10) <= usize::from(u16::MAX) {
        (1u8, (padded(10) as u16).to_le_bytes().to_vec())
    } else {
        (2u8, u32::try_from(padded(12)).ok()?.to_le_bytes().to_vec())
    };
    let header_len = padded(8 + length_field.len());
    let mut bytes = Vec::with_capacity(8 + length_field.len() + header_len);
    bytes.extend_from_slice(MAGIC);
    bytes.extend([version, 0]);
    bytes.extend(length_field);
    bytes.extend(dict.as_bytes());
    bytes.resize(bytes.len() + header_len - dict.len() - 1, b' ');
    bytes.push(b'\n');
    Some(bytes)
}
