//! `.npy` files: float32, C order, read whole and written atomically.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::npy::header::{Header, ReadHeaderError};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Reads a float32 `.npy` file (any shape, C or Fortran order) into a C-order [`Tensor`].
///
/// The header is checked before any data is read: the dtype must be float32 and the file must
/// hold exactly the bytes its shape needs, so a corrupt header can neither be misread nor make
/// the reader ask for more memory than the file holds.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened or read; [`Error::Npy`] when it is not a float32
/// `.npy` file (the message names the dtype it holds instead) or is truncated or corrupt.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let io_err = |source| Error::io("read", path, source);
    let npy_err = |message: String| Error::Npy {
        path: path.to_path_buf(),
        message: format!("not a readable float32 .npy file: {message}"),
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::new(file);
    let header = match Header::from_reader(&mut reader) {
        Ok(header) => header,
        Err(ReadHeaderError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(npy_err(format!(
                "the file ends inside the .npy header ({file_len} bytes in all)"
            )))
        }
        Err(ReadHeaderError::Io(e)) => return Err(io_err(e)),
        Err(e) => return Err(npy_err(e.to_string())),
    };
    let descr = header.type_descriptor.as_string().map(String::as_str);
    if !matches!(descr, Some("<f4" | ">f4")) {
        let descr = header.type_descriptor.to_string();
        return Err(npy_err(format!(
            "it holds {} ({descr}), not float32 ('<f4'); convert it with `a.astype(numpy.float32)`",
            dtype_name(&descr)
        )));
    }
    let shape = &header.shape;
    let data_start = reader.stream_position().map_err(io_err)?;
    let data_bytes = file_len.saturating_sub(data_start);
    // ndarray's rule: the non-zero dimensions' bytes fit in an isize even when the array is
    // empty; ndarray-npy unwraps its own shape check, so `(0, 2**62, 5)` would panic there.
    let needed = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&b| b <= isize::MAX as u64)
        .map(|b| if shape.contains(&0) { 0 } else { b });
    match needed {
        Some(bytes) if bytes == data_bytes => {}
        Some(bytes) => {
            return Err(npy_err(format!(
                "its header says shape {shape:?}, {bytes} bytes of float32 data, but {data_bytes} bytes follow the header{}",
                if data_bytes < bytes { " (truncated?)" } else { "" }
            )))
        }
        None => {
            return Err(npy_err(format!(
                "its header says shape {shape:?}, more bytes than this host can address"
            )))
        }
    }
    // The header is sound and the data complete: let ndarray-npy read it from the start.
    reader.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let array = ArrayD::<f32>::read_npy(reader).map_err(|e| npy_err(e.to_string()))?;
    Ok(Tensor::from_ndarray(&array))
}

/// numpy's name for a dtype descriptor such as `'<f8'` (`float64`), or the descriptor itself.
fn dtype_name(text: &str) -> String {
    let code = text
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '=', '|']);
    let (kind, size) = code.split_at(code.len().min(1));
    let bits = size.parse::<u32>().ok().map(|bytes| bytes * 8);
    match (kind, bits) {
        ("f", Some(bits)) => format!("float{bits}"),
        ("i", Some(bits)) => format!("int{bits}"),
        ("u", Some(bits)) => format!("uint{bits}"),
        ("c", Some(bits)) => format!("complex{bits}"),
        ("b", Some(8)) => "bool".to_string(),
        _ => format!("dtype {text}"),
    }
}

/// Writes `tensor` as a float32 `.npy` file. The data goes to a temporary file in the same folder
/// that is renamed over `path` only when complete, so a failure never leaves a partial file.
///
/// # Errors
/// [`Error::Io`] when the folder is not writable or the rename fails; [`Error::Npy`] when encoding fails.
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let array = tensor.clone().into_ndarray();
    crate::atomic::write_with(path, |writer| {
        array.write_npy(writer).map_err(|e| Error::Npy {
            path: path.to_path_buf(),
            message: format!("could not encode .npy: {e}"),
        })
    })
}
