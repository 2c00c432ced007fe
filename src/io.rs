//! `.npy` files: float32, C order, read whole and written atomically.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Reads a float32 `.npy` file (any shape, C or Fortran order) into a C-order [`Tensor`].
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Npy`] when it is not a float32 `.npy`
/// file (the message says what it is instead) or is truncated or corrupt.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let array = ArrayD::<f32>::read_npy(BufReader::new(file)).map_err(|e| Error::Npy {
        path: path.to_path_buf(),
        message: format!("not a readable float32 .npy file: {e}"),
    })?;
    Ok(Tensor::from_ndarray(&array))
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
