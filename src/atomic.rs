//! Writing files so that a failure never leaves a partial file behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `path` through `write`: the bytes go to a temporary file in the same folder, which is
/// flushed, synced and renamed over `path` only when `write` succeeded. The file gets the usual
/// permissions (0644 on Unix), not the temporary file's private ones.
///
/// # Errors
/// [`Error::Io`] when the folder is not writable or the rename fails; whatever `write` returns.
pub fn write_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let io_err = |source| Error::io("write", path, source);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".wgconv-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    // tempfile's error names the random temporary name, which never existed; name the target.
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        io_err(match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.kind().to_string()),
        })
    })?;
    {
        let file: &File = tmp.as_file();
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        writer.flush().map_err(io_err)?;
    }
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}
