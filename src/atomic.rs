//! Writing outputs so that a failure never leaves a partial file behind, and a path never turns
//! into something it was not.
//!
//! What happens depends on what the output path names (after following its symlinks):
//!
//! - **nothing yet, or a regular file**: the bytes go to a temporary file `.wgconv-*.tmp` in the
//!   same folder, which is flushed, synced and renamed over the file only when complete, so a
//!   reader sees the old file or the whole new one. An existing file keeps its permissions (and,
//!   where the OS allows, its owner and group). A file with more than one hard link is written
//!   in place once the temporary file is complete, so every name keeps seeing the same file.
//! - **a symlink**: its final target is replaced as above; the link stays a link.
//! - **a device node, a FIFO, `-`, `/dev/stdout`, `/dev/stderr` or `/dev/fd/N`**: written straight
//!   through (no temporary file, nothing renamed): `--output /dev/null` discards the output.
//! - **a directory, a socket, a missing folder**: an [`Error::Io`] naming the path, before any
//!   work is done when the caller checks with [`check_writable`] first.
//!
//! Temporary files are registered while they exist, so a program that catches SIGINT, SIGTERM or
//! SIGHUP can remove them with [`abandon_pending_writes`] before it exits (the `wgconv` tool does;
//! SIGKILL cannot be caught, and leaves the temporary file behind).

use std::fs::{File, Metadata};
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Temporary files that exist now; locked while a file is renamed into place, so a signal
/// handler that takes the lock sees either the temporary file or the finished output.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Symlinks followed before giving up, as Linux's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

/// Where the bytes for an output path go.
#[derive(Debug)]
enum Target {
    /// The process's standard output (`-`, `/dev/stdout`, `/dev/fd/1`).
    Stdout,
    /// The process's standard error (`/dev/stderr`, `/dev/fd/2`).
    Stderr,
    /// A device node, FIFO or other descriptor path: opened and written as it is.
    Stream(PathBuf),
    /// A regular file, or a path that does not exist yet: a temporary file renamed over it.
    Replace {
        path: PathBuf,
        existing: Option<Metadata>,
    },
}

/// Writes `path` through `write`, as the [module docs](self) describe for what `path` names.
///
/// # Errors
/// [`Error::Io`] naming `path` when it cannot be written (missing folder, a directory or socket,
/// a read-only file system, a full disk); whatever `write` returns.
pub fn write_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let io_err = |source| Error::io("write", path, source);
    match resolve(path)? {
        Target::Stdout => write_through(path, &mut std::io::stdout().lock(), write),
        Target::Stderr => write_through(path, &mut std::io::stderr().lock(), write),
        Target::Stream(p) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&p)
                .map_err(io_err)?;
            write_through(path, &mut BufWriter::new(file), write)
        }
        Target::Replace {
            path: target,
            existing,
        } => {
            let tmp = PendingFile::create(path, &target, existing.as_ref())?;
            tmp.with_file(|file| -> Result<()> {
                let mut writer = BufWriter::new(file);
                write(&mut writer)?;
                writer.flush().map_err(io_err)?;
                drop(writer);
                file.sync_all().map_err(io_err)
            })
            .transpose()?;
            tmp.commit(path, &target, existing.as_ref())
        }
    }
}

/// Straight through: `write`'s bytes into `out`, then a flush; nothing is renamed.
fn write_through(
    path: &Path,
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    write(out)?;
    out.flush()
        .map_err(|source| Error::io("write", path, source))
}

/// Checks that `path` can be written as [`write_with`] would write it, before the work that
/// produces its bytes: its folder exists and takes a new file (a temporary file is created and
/// removed), or it names something written straight through.
///
/// # Errors
/// As [`write_with`], without writing anything.
pub fn check_writable(path: &Path) -> Result<()> {
    if let Target::Replace {
        path: target,
        existing,
    } = resolve(path)?
    {
        drop(PendingFile::create(path, &target, existing.as_ref())?);
    }
    Ok(())
}

/// Removes every temporary file that an unfinished write left, and keeps any write from
/// renaming into place from now on: for a signal handler that exits the process next.
/// Returns how many files it removed.
pub fn abandon_pending_writes() -> usize {
    let pending = lock_pending();
    let removed = pending
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count();
    // Hold the lock until the process exits: no rename may follow the removal.
    std::mem::forget(pending);
    removed
}

/// What `named` leads to: follows symlinks one at a time (so a dangling link still names the
/// file to create) and sorts the end by kind.
fn resolve(named: &Path) -> Result<Target> {
    let refuse = |message: String| {
        Error::io(
            "write",
            named,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
        )
    };
    if named.as_os_str() == "-" {
        return Ok(Target::Stdout);
    }
    let mut path = named.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        if let Some(fd) = descriptor_number(&path) {
            return Ok(match fd {
                1 => Target::Stdout,
                2 => Target::Stderr,
                _ => Target::Stream(path),
            });
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                check_folder(named, &path)?;
                return Ok(Target::Replace {
                    path,
                    existing: None,
                });
            }
            Err(e) => return Err(Error::io("write", named, e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = std::fs::read_link(&path).map_err(|e| Error::io("write", named, e))?;
            path = match path.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_file() {
            return Ok(Target::Replace {
                path,
                existing: Some(meta),
            });
        }
        if kind.is_dir() {
            return Err(refuse("it is a directory; name a file in it".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
                return Ok(Target::Stream(path));
            }
        }
        let what = crate::files::not_regular(&meta).unwrap_or("not a regular file");
        return Err(refuse(format!("it is {what}, which cannot hold an output")));
    }
    Err(refuse(format!(
        "more than {MAX_SYMLINKS} symlinks in a row (a loop?)"
    )))
}

/// The descriptor `N` when `path` is `/dev/stdout`, `/dev/stderr` or a descriptor in this
/// process's table however it is spelled (`/dev/fd/N`, `/proc/self/fd/N`, `/proc/<pid>/fd/N`,
/// `/proc/thread-self/fd/N`): those are written through the descriptor, never replaced.
fn descriptor_number(path: &Path) -> Option<u32> {
    match path.to_str()? {
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => {}
    }
    let fd = path.file_name()?.to_str()?.parse::<u32>().ok()?;
    let dir = std::fs::canonicalize(path.parent()?).ok()?;
    let own = std::fs::canonicalize("/proc/self/fd").ok()?;
    let own_tasks = own.parent()?.join("task");
    let is_own_table = dir == own || (dir.starts_with(&own_tasks) && dir.ends_with("fd"));
    is_own_table.then_some(fd)
}

/// Refuses a new file whose folder does not exist or is not a folder, naming both.
fn check_folder(named: &Path, target: &Path) -> Result<()> {
    let dir = folder_of(target);
    let problem = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => format!("{} is not a folder", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("folder {} does not exist", dir.display())
        }
        Err(e) => format!("folder {}: {e}", dir.display()),
    };
    Err(Error::io(
        "write",
        named,
        std::io::Error::new(std::io::ErrorKind::NotFound, problem),
    ))
}

/// The folder a file lives in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A registered temporary file beside the target; removed when dropped uncommitted.
struct PendingFile {
    /// `None` once committed.
    tmp: Option<tempfile::NamedTempFile>,
}

impl PendingFile {
    /// Creates the temporary file with the permissions (and owner) the output will have.
    fn create(named: &Path, target: &Path, existing: Option<&Metadata>) -> Result<Self> {
        let io_err = |source| Error::io("write", named, source);
        let mut builder = tempfile::Builder::new();
        builder.prefix(".wgconv-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        // Registered under the lock it is created under, so no signal finds it unlisted.
        let mut pending = lock_pending();
        // tempfile's error names the random temporary name, which never existed; name the target.
        let tmp = builder
            .tempfile_in(folder_of(target))
            .map_err(|e| io_err(without_temporary_name(e)))?;
        pending.push(tmp.path().to_path_buf());
        drop(pending);
        let file = PendingFile { tmp: Some(tmp) };
        if let (Some(meta), Some(tmp)) = (existing, &file.tmp) {
            take_over(tmp.as_file(), meta).map_err(io_err)?;
        }
        Ok(file)
    }

    /// Runs `f` on the open temporary file.
    fn with_file<T>(&self, f: impl FnOnce(&File) -> T) -> Option<T> {
        self.tmp.as_ref().map(|tmp| f(tmp.as_file()))
    }

    /// Puts the complete temporary file in place of `target`: renamed over it, or, for a file
    /// with several hard links, copied into it so the links stay one file.
    fn commit(mut self, named: &Path, target: &Path, existing: Option<&Metadata>) -> Result<()> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        // Under the lock: a signal handler sees the temporary file or the finished output.
        let mut pending = lock_pending();
        let tmp_path = tmp.path().to_path_buf();
        pending.retain(|p| p != &tmp_path);
        let result = if hard_links(existing) > 1 {
            // The temporary file is removed when `tmp` drops, after the copy.
            copy_into(tmp.as_file(), target)
        } else {
            // A failed rename hands the file back, and dropping it removes it.
            tmp.persist(target).map(drop).map_err(|e| e.error)
        };
        drop(pending);
        result.map_err(|source| Error::io("write", named, source))
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let mut pending = lock_pending();
            let path = tmp.path().to_path_buf();
            pending.retain(|p| p != &path);
            // Removed while the lock is held.
            drop(tmp);
        }
    }
}

/// tempfile's error with the OS error kept and the random temporary name (which the user never
/// named, and which never came to exist) dropped: `Read-only file system (os error 30)`.
fn without_temporary_name(e: std::io::Error) -> std::io::Error {
    let code = e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.source())
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::raw_os_error)
    });
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => {
            let text = e.to_string();
            let text = text
                .split(" at path ")
                .next()
                .unwrap_or_default()
                .to_string();
            std::io::Error::new(e.kind(), text)
        }
    }
}

/// The registry of temporary files, whatever a panicking holder left.
fn lock_pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives a temporary file the existing output's permissions and, where allowed, its owner.
fn take_over(file: &File, meta: &Metadata) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // Only root may give a file away; for anyone else the new file is theirs, as with any
        // program that replaces a file.
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
    }
    #[cfg(not(unix))]
    file.set_permissions(meta.permissions())
}

/// The hard-link count of an existing output (1 where the OS does not say).
fn hard_links(existing: Option<&Metadata>) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        existing.map_or(1, MetadataExt::nlink)
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        1
    }
}

/// Copies the complete temporary file into `target` in place (truncated first), synced.
fn copy_into(mut tmp: &File, target: &Path) -> std::io::Result<()> {
    tmp.rewind()?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(target)?;
    std::io::copy(&mut tmp, &mut out)?;
    out.sync_all()
}

/// On SIGINT, SIGTERM or SIGHUP: remove the temporary file of an unfinished output write (and
/// the private runtime folder, if one was made) and exit with 128 + the signal's number (130,
/// 143, 129), as a shell reports a death by signal. For the `wgconv` tool (feature `cli`).
/// SIGKILL cannot be caught; it leaves the `.wgconv-*.tmp` file behind (the old output is intact).
#[cfg(all(unix, feature = "cli"))]
pub fn clean_up_on_signals(runtime_dir: Option<std::path::PathBuf>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        // Without the handler the signals keep their default action, which leaves nothing
        // worse than a temporary file behind.
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            abandon_pending_writes();
            if let Some(dir) = &runtime_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            // `_exit`: no atexit handlers or library destructors run under GPU threads still
            // at work (stdout is line-buffered, so whole lines are already out).
            signal_hook::low_level::exit(128 + signal);
        }
    });
}

/// Elsewhere the signals keep their default action.
#[cfg(all(not(unix), feature = "cli"))]
pub fn clean_up_on_signals(_runtime_dir: Option<std::path::PathBuf>) {}
