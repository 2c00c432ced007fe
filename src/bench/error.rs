//! What the bench reports as errors, and the one way it writes a file.

use std::path::{Path, PathBuf};

/// What can go wrong reading a suite, running it or writing its results, each naming the file
/// or the values involved. File system failures are the crate's [`Error::Io`](crate::error::Error::Io),
/// carried in [`BenchError::Wgconv`] as they came.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A suite file line does not follow `name C H W -> K RxS [stride S] [pad P]`.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The suite file.
        path: PathBuf,
        /// 1-based line number; 0 when the problem concerns the whole file.
        line: usize,
        /// What is wrong, with the offending text and what was expected.
        message: String,
    },

    /// The chart could not be drawn.
    #[error("{}: cannot draw the chart: {message}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The chart's file name does not end in `.svg` (any case): the chart is SVG, whatever the
    /// name says.
    #[error("{}: the chart is SVG, so its name must end in .svg", path.display())]
    NotSvg {
        /// The file named.
        path: PathBuf,
    },

    /// A wgconv error: reading or writing a file ([`Error::Io`](crate::error::Error::Io)), a shape, the
    /// GPU.
    #[error(transparent)]
    Wgconv(#[from] crate::error::Error),
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a reader
/// sees the old file or the whole new one and a failure leaves nothing behind.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    crate::atomic::write_with(path, |w| {
        w.write_all(bytes)
            .map_err(|source| crate::error::Error::io("write", path, source))
    })?;
    Ok(())
}
