//! Waiting on native wgpu: polls cut into slices that share the OpenGL context, and OpenGL's own
//! out-of-memory flag, which wgpu 30's GL backend does not check.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Longest single hold of the OpenGL context while waiting (wgpu-hal gives up after 6 s).
const GL_WAIT_SLICE: Duration = Duration::from_millis(100);

/// Waits for `submission` (or all work) for at most `timeout`. On OpenGL (`gl_serial` given) the
/// wait is cut into slices of [`GL_WAIT_SLICE`], taking the engine's GL lock for each, so other
/// threads (and async callers) get the context between slices and none waits long for it.
pub(crate) fn wait_sliced(
    device: &wgpu::Device,
    gl_serial: Option<&Mutex<()>>,
    submission: Option<&wgpu::SubmissionIndex>,
    timeout: Duration,
) -> std::result::Result<wgpu::PollStatus, wgpu::PollError> {
    let deadline = std::time::Instant::now().checked_add(timeout);
    loop {
        let slice = match (gl_serial, deadline) {
            (Some(_), Some(d)) => d
                .saturating_duration_since(std::time::Instant::now())
                .min(GL_WAIT_SLICE),
            (Some(_), None) => GL_WAIT_SLICE,
            (None, _) => timeout,
        };
        let serial = gl_serial.map(|m| m.lock().unwrap_or_else(PoisonError::into_inner));
        let result = device.poll(wgpu::PollType::Wait {
            submission_index: submission.cloned(),
            timeout: Some(slice),
        });
        drop(serial);
        let expired = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        match result {
            Err(wgpu::PollError::Timeout) if gl_serial.is_some() && !expired => continue,
            other => return other,
        }
    }
}

/// Whether OpenGL reported running out of memory since the last call (clearing its error flags).
///
/// wgpu 30's GL backend allocates buffer storage without checking `glGetError`, so a failed
/// allocation would leave a buffer with no storage that silently reads as zeros. The caller holds
/// the engine's GL lock, so no wgpu call runs on the context meanwhile.
#[cfg(target_os = "linux")]
pub(crate) fn gl_out_of_memory(device: &wgpu::Device) -> bool {
    use glow::HasContext;
    // SAFETY: only the context is borrowed, to read (and so clear) its error flags; no resource
    // is created, destroyed or used.
    let Some(hal) = (unsafe { device.as_hal::<wgpu::hal::api::Gles>() }) else {
        return false;
    };
    let gl = hal.context().lock();
    let mut oom = false;
    // One flag per error kind at most; the bound guards against a context that keeps reporting.
    for _ in 0..16 {
        // SAFETY: glGetError has no preconditions on a current context, which `lock` makes.
        match unsafe { gl.get_error() } {
            glow::NO_ERROR => break,
            glow::OUT_OF_MEMORY => oom = true,
            other => log::debug!("wgconv: OpenGL error {other:#x} after a wgpu call"),
        }
    }
    oom
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn gl_out_of_memory(_device: &wgpu::Device) -> bool {
    false
}
