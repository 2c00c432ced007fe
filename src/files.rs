//! Opening the files a user names as inputs: regular files only, so a FIFO with no writer, a
//! device such as `/dev/zero` or a directory is a clear error instead of a hang or an endless read.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` for reading when it names (through any symlinks) a regular file, and returns
/// the file with its length in bytes.
///
/// # Errors
/// [`Error::Io`] (action `read`) naming the path and the OS error, or what the path is instead
/// of a regular file (`it is a FIFO (named pipe), not a regular file`).
pub fn open_input(path: &Path) -> Result<(File, u64)> {
    // Look before opening: opening a FIFO for reading blocks until someone writes to it.
    let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(not_a_regular_file(path, kind));
    }
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    // The path may have been swapped between the look and the open: check what was opened.
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(not_a_regular_file(path, kind));
    }
    Ok((file, meta.len()))
}

/// What `meta` describes when it is not a regular file (`"a directory"`, `"a FIFO (named
/// pipe)"`, ...), or `None` for a regular file.
pub fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

fn not_a_regular_file(path: &Path, kind: &str) -> Error {
    Error::io(
        "read",
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {kind}, not a regular file"),
        ),
    )
}

/// Mesa's window-system probing prints `error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment.` on a headless box where it is unset; give it a private, empty one (mode 0700,
/// removed when the returned folder is dropped) before any adapter is looked for. A set value
/// is left alone. Call it while the program has one thread: it sets the environment.
pub fn private_runtime_dir() -> Option<tempfile::TempDir> {
    if !cfg!(target_os = "linux") || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("wgconv-runtime-")
        .tempdir()
        .ok()?;
    // Still one thread (before the signal thread and any adapter): setting it races nothing.
    std::env::set_var("XDG_RUNTIME_DIR", dir.path());
    Some(dir)
}
