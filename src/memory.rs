//! Host memory whose size comes from user input: checked before it is asked for.
//!
//! On Linux the allocator rarely says no (overcommit): an absurd `Vec` is granted and the process
//! is killed by the OOM killer when it touches the pages, or the allocation aborts the process.
//! So every host allocation whose size a user controls goes through [`try_vec`]: a need above
//! what the machine can give (`MemAvailable` in `/proc/meminfo`, or what is left under the
//! process's cgroup limit, whichever is smaller) is refused with [`Error::HostMemory`] naming
//! both sizes, and a refusal by the allocator itself (an address-space limit) is the same error
//! instead of an abort.

pub use crate::error::bytes_text;
use crate::error::{Error, Result};

/// Needs below this many bytes skip the `/proc` look-up: reading it costs more than they do,
/// and the allocator's own refusal still turns into an error.
const CHECK_ABOVE_BYTES: u64 = 64 << 20;

/// A `Vec` of `len` copies of `value`, or [`Error::HostMemory`] naming `what()` and both sizes.
///
/// # Errors
/// [`Error::HostMemory`] when `len` elements exceed the available memory or the allocator
/// refuses them; [`Error::SizeOverflow`] when their byte size overflows.
pub fn try_vec<T: Clone>(len: usize, value: T, what: impl Fn() -> String) -> Result<Vec<T>> {
    let mut v = try_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// An empty `Vec` with room for `len` elements, checked as [`try_vec`] checks.
///
/// # Errors
/// As [`try_vec`].
pub fn try_with_capacity<T>(len: usize, what: impl Fn() -> String) -> Result<Vec<T>> {
    let bytes = (len as u64)
        .checked_mul(std::mem::size_of::<T>() as u64)
        .filter(|&b| b <= isize::MAX as u64)
        .ok_or_else(|| Error::SizeOverflow {
            what: format!("{} ({len} elements)", what()),
        })?;
    check_available(bytes, &what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::HostMemory {
        what: what(),
        bytes,
        available: None,
    })?;
    Ok(v)
}

/// Refuses a need of `bytes` that exceeds the host's available memory.
///
/// # Errors
/// [`Error::HostMemory`] naming `what()`, the need and what is available.
pub fn check_available(bytes: u64, what: &impl Fn() -> String) -> Result<()> {
    if bytes < CHECK_ABOVE_BYTES {
        return Ok(());
    }
    match available_bytes() {
        Some(available) if bytes > available => Err(Error::HostMemory {
            what: what(),
            bytes,
            available: Some(available),
        }),
        _ => Ok(()),
    }
}

/// Bytes the process can still allocate and touch: the smallest of `MemAvailable`, the room left
/// under its cgroup's memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`) and the room
/// left under its address-space limit (`ulimit -v`); `None` where none can be read (not Linux).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let mem_available = meminfo.as_deref().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("MemAvailable:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib.saturating_mul(1024))
    });
    [mem_available, cgroup_room(), address_space_room()]
        .into_iter()
        .flatten()
        .min()
}

/// The room left under the soft address-space limit (`ulimit -v`, `prlimit --as`), when set.
fn address_space_room() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let vm_size_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(soft.saturating_sub(vm_size_kib.saturating_mul(1024)))
}

/// The room left under the process's cgroup memory limit, when it has one.
fn cgroup_room() -> Option<u64> {
    let read_u64 =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2: one line `0::/path`.
    if let Some(rel) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup{}", rel.trim_end_matches('/'));
        if let (Some(max), Some(current)) = (
            read_u64(&format!("{dir}/memory.max")),
            read_u64(&format!("{dir}/memory.current")),
        ) {
            return Some(max.saturating_sub(current));
        }
    }
    // cgroup v1: the memory controller's own hierarchy ("unlimited" is a huge number there).
    let limit = read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    let usage = read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes")?;
    Some(limit.saturating_sub(usage))
}
