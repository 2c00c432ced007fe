//! The device side of an engine: adapter choice, the wgpu device and queue, error scopes, the
//! OpenGL guards, bounded waits, and reading buffers back.
//!
//! As in wgpu's compute examples: set up once, read back with `map_async` + a bounded `poll` +
//! `unmap`. Every GPU call goes through `Device::scoped`, so validation and out-of-memory
//! errors become typed errors, never panics.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::buffer::OwnedBuffer;
use crate::gpu::plan::{Algorithm, PlanLimits};
use crate::gpu::profile::DriverFamily;
use crate::gpu::tuning::Tuning;

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// How an [`Engine`](crate::Engine) picks its adapter and how long it waits for the GPU.
///
/// Fields left `None` fall back to wgpu's environment variables: `WGPU_BACKEND`
/// (e.g. `vulkan`, `gl`), `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter's
/// name) and `WGPU_POWER_PREF` (`low` or `high`; wgconv defaults to `high`).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Backends to consider; `None` reads `WGPU_BACKEND`, else all.
    pub backends: Option<wgpu::Backends>,
    /// Substring of the adapter name; `None` reads `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// Power preference; `None` reads `WGPU_POWER_PREF`, else high performance.
    pub power_preference: Option<wgpu::PowerPreference>,
    /// Longest wait for any GPU work before [`Error::Timeout`].
    pub wait_timeout: Duration,
    /// Limits to request; `None` requests everything the adapter offers.
    pub limits: Option<wgpu::Limits>,
    /// Algorithm for every convolution of this engine (`Auto` chooses per shape and adapter).
    pub algorithm: Algorithm,
    /// Longest wait for one pipeline (shader) build; past it the planner falls back to a simpler
    /// kernel for the shape, and the kernel is not built again on this engine.
    pub pipeline_timeout: Duration,
    /// Whether `Auto` uses the kernels `wgconv tune` chose, remembered on disk.
    pub tuning: Tuning,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            backends: None,
            adapter_name: None,
            power_preference: None,
            wait_timeout: Duration::from_secs(120),
            limits: None,
            algorithm: Algorithm::Auto,
            pipeline_timeout: Duration::from_secs(60),
            tuning: Tuning::Off,
        }
    }
}

/// What wgpu tells about an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend, e.g. Vulkan or Gl.
    pub backend: wgpu::Backend,
    /// Discrete, integrated, CPU, ...
    pub device_type: wgpu::DeviceType,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// PCI vendor id (or a Khronos vendor id for software drivers).
    pub vendor: u32,
}

impl AdapterSummary {
    /// The driver family the planner's profile is chosen by.
    pub fn family(&self) -> DriverFamily {
        DriverFamily::detect(&self.name, &self.driver, self.vendor)
    }
}

impl From<wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name,
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver,
            driver_info: info.driver_info,
            vendor: info.vendor,
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}",
            self.name, self.backend, self.device_type
        )?;
        let driver = format!("{} {}", self.driver, self.driver_info);
        if !driver.trim().is_empty() {
            write!(f, ", driver {}", driver.trim())?;
        }
        write!(f, ")")
    }
}

fn backends_from(options: &EngineOptions) -> wgpu::Backends {
    options
        .backends
        .unwrap_or_else(|| wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()))
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// One wgpu backend by name (`vulkan`/`vk`, `gl`/`gles`/`opengl`, `metal`/`mtl`,
/// `dx12`/`d3d12`, any case).
///
/// # Errors
/// A message naming the unknown backend and the known ones (nothing is skipped silently).
pub fn parse_backend(s: &str) -> std::result::Result<wgpu::Backends, String> {
    match s.trim().to_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        _ => Err(format!(
            "unknown backend '{s}'; choose one of vulkan, gl, metal, dx12"
        )),
    }
}

/// Every adapter wgpu sees on `backends` (`None`: `WGPU_BACKEND`, else all).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    let backends = backends_from(&EngineOptions {
        backends,
        ..EngineOptions::default()
    });
    let instance = new_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| AdapterSummary::from(a.get_info()))
        .collect()
}

/// The wgpu device and queue of one engine and the rules for using them.
pub(crate) struct Device {
    id: u64,
    // Kept alive for the adapter's sake.
    _instance: wgpu::Instance,
    adapter: AdapterSummary,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: PlanLimits,
    lost: Arc<Mutex<Option<String>>>,
    wait_timeout: Duration,
    pipeline_timeout: Duration,
    // In the browser error scopes resolve later, as promises: their pops wait here and are
    // awaited by the next wait or readback (see `Device::settle_scopes`).
    #[cfg(target_arch = "wasm32")]
    pending_scopes: Mutex<Vec<crate::gpu::browser::PendingScope>>,
    // On OpenGL, wgpu-hal holds one context lock per call and panics when another thread waits
    // for it longer than a few seconds (a long kernel, a large shader compile). wgconv takes this
    // lock first, so threads queue here, without a deadline, instead.
    gl_serial: Option<Arc<Mutex<()>>>,
}

/// How a call waits for the GPU: on the calling thread (the blocking API drives the async one
/// this way), or on a helper thread so that the caller's executor is never blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// In the browser only the async API exists: nothing blocks there.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) enum Wait {
    /// Poll on this thread, within the engine's bound.
    Block,
    /// Poll on a helper thread and await its result.
    Async,
}

impl Device {
    /// Picks the adapter `options` ask for and opens a device with its limits.
    pub(crate) async fn open(options: &EngineOptions) -> Result<Device> {
        // 1. Instance and adapter, honouring WGPU_BACKEND / WGPU_ADAPTER_NAME / WGPU_POWER_PREF.
        let backends = backends_from(options);
        let instance = new_instance(backends);
        let adapter = pick_adapter(&instance, backends, options).await?;
        #[allow(unused_mut)]
        let mut info = adapter.get_info();
        #[cfg(target_arch = "wasm32")]
        crate::gpu::browser::name_adapter(&mut info, options.power_preference).await;
        let compute = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
        if !compute || adapter.limits().max_compute_workgroups_per_dimension == 0 {
            return Err(Error::RequestDevice {
                adapter: info.name,
                message: "the adapter has no compute shaders (OpenGL ES 3.1 / OpenGL 4.3 or Vulkan needed)".into(),
            });
        }
        let summary = AdapterSummary::from(info.clone());
        log::info!("wgconv: using adapter {summary}");
        // Subgroup broadcasts let the register-tiled kernel load each weight once per subgroup;
        // the generator needs the subgroup size fixed at compile time.
        let subgroup_size = (adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size);

        // 2. Device with the adapter's own limits (or the caller's), so large tensors fit.
        let required_limits = options.limits.clone().unwrap_or_else(|| adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgconv"),
                required_features: if subgroup_size.is_some() {
                    wgpu::Features::SUBGROUP
                } else {
                    wgpu::Features::empty()
                },
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: summary.name.clone(),
                message: e.to_string(),
            })?;

        // 3. Loss and uncaptured errors are recorded, never panics.
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lost_flag.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(format!("{reason:?}: {message}"));
        });
        device.on_uncaptured_error(Arc::new(|e| {
            log::error!("wgconv: uncaptured wgpu error: {e}")
        }));

        // Plans keep to the limits asked for even where the device grants more (WebGPU raises
        // any limit below its defaults to the default).
        let granted = device.limits();
        let planned = (options.limits.clone()).map_or(granted.clone(), |asked| {
            asked.or_worse_values_from(&granted)
        });
        let mut limits = PlanLimits::new(&planned, summary.device_type, summary.family());
        limits.subgroup_size = subgroup_size;
        let gl_serial = (summary.backend == wgpu::Backend::Gl).then(|| Arc::new(Mutex::new(())));
        Ok(Device {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            _instance: instance,
            adapter: summary,
            device,
            queue,
            limits,
            lost,
            wait_timeout: options.wait_timeout,
            pipeline_timeout: options.pipeline_timeout,
            #[cfg(target_arch = "wasm32")]
            pending_scopes: Mutex::new(Vec::new()),
            gl_serial,
        })
    }

    /// The id its engine's tensors carry.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    pub(crate) fn limits(&self) -> PlanLimits {
        self.limits
    }

    /// The wgpu device itself.
    pub(crate) fn wgpu(&self) -> &wgpu::Device {
        &self.device
    }

    pub(crate) fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// The bound on one pipeline build.
    pub(crate) fn pipeline_timeout(&self) -> Duration {
        self.pipeline_timeout
    }

    /// Serializes device access on OpenGL (see `gl_serial`); a no-op elsewhere.
    fn serial(&self) -> Option<MutexGuard<'_, ()>> {
        self.gl_serial
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// [`Error::DeviceLost`] once the device is lost.
    pub(crate) fn ensure_alive(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(reason) => Err(Error::DeviceLost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch into errors.
    pub(crate) fn scoped<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.ensure_alive()?;
        let _serial = self.serial();
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        #[cfg(target_arch = "wasm32")]
        {
            // The browser answers later: the next wait or readback reports what they caught.
            self.pending_scopes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((
                    during.to_string(),
                    Box::pin(validation.pop()),
                    Box::pin(oom.pop()),
                ));
            Ok(value)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Native wgpu resolves scopes synchronously, so these futures are ready at once.
            let validation = pollster::block_on(validation.pop());
            let oom = pollster::block_on(oom.pop());
            self.scope_result(during, validation, oom)?;
            Ok(value)
        }
    }

    /// Turns what one call's error scopes caught into its error.
    fn scope_result(
        &self,
        during: &str,
        validation: Option<wgpu::Error>,
        oom: Option<wgpu::Error>,
    ) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        let gl_oom =
            self.gl_serial.is_some() && crate::gpu::polling::gl_out_of_memory(&self.device);
        // No OpenGL in the browser.
        #[cfg(target_arch = "wasm32")]
        let gl_oom = false;
        if gl_oom {
            return Err(Error::OutOfMemory {
                during: during.to_string(),
            });
        }
        if validation.is_some() || oom.is_some() {
            // A lost device shows first as invalid objects; a poll delivers the loss callback,
            // so the caller gets DeviceLost rather than a confusing validation error.
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        self.ensure_alive()?;
        if oom.is_some() {
            return Err(Error::OutOfMemory {
                during: during.to_string(),
            });
        }
        if let Some(e) = validation {
            return Err(Error::Validation {
                during: during.to_string(),
                message: e.to_string(),
            });
        }
        Ok(())
    }

    /// Awaits the error scopes of every call since the last settlement (in the browser, where
    /// they resolve as promises) and returns the first error they caught.
    #[cfg(target_arch = "wasm32")]
    async fn settle_scopes(&self) -> Result<()> {
        let pending = std::mem::take(
            &mut *self
                .pending_scopes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut first = Ok(());
        for (during, validation, oom) in pending {
            let (validation, oom) = (validation.await, oom.await);
            let result = self.scope_result(&during, validation, oom);
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// A buffer of `bytes` (at least 4: zero-sized bindings are invalid), created zeroed
    /// (wgpu's guarantee); call inside [`Device::scoped`] or [`Device::submit`].
    pub(crate) fn buffer(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> OwnedBuffer {
        OwnedBuffer::new(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage,
            mapped_at_creation: false,
        }))
    }

    /// Records commands with `f` into one encoder and submits them, inside the error scopes.
    pub(crate) fn submit<T>(
        &self,
        during: &str,
        f: impl FnOnce(&mut wgpu::CommandEncoder) -> T,
    ) -> Result<(T, wgpu::SubmissionIndex)> {
        self.scoped(during, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(during),
                });
            let value = f(&mut encoder);
            (value, self.queue.submit([encoder.finish()]))
        })
    }

    /// Writes `data` at the start of `buffer`.
    pub(crate) fn write(&self, during: &str, buffer: &wgpu::Buffer, data: &[f32]) -> Result<()> {
        self.scoped(during, || {
            self.queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(data));
        })
    }

    /// The first `len` f32 values of `buffer`, copied back once the GPU is done with it.
    pub(crate) async fn read(
        &self,
        buffer: &wgpu::Buffer,
        len: usize,
        wait: Wait,
    ) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = len as u64 * 4;
        let (tx, rx) = flume::bounded(1);
        let (staging, submission) = self.scoped("reading back a tensor", || {
            let staging = self.buffer(
                "wgconv readback",
                bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgconv readback"),
                });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
            let submission = self.queue.submit([encoder.finish()]);
            staging.map_async(wgpu::MapMode::Read, .., move |result| {
                // The receiver may be gone if the caller gave up; nothing to do then.
                let _ = tx.send(result);
            });
            (staging, submission)
        })?;
        self.wait(Some(&submission), "download", wait).await?;
        #[cfg(target_arch = "wasm32")]
        let mapped = rx.recv_async().await.map_err(|_| Error::Readback {
            message: "the buffer mapping was dropped".into(),
        })?;
        #[cfg(not(target_arch = "wasm32"))]
        let mapped = self.mapping_result(&rx)?;
        self.finish_readback(staging, mapped)
    }

    /// The mapping callback's result, polling (without blocking) until it arrives.
    #[cfg(not(target_arch = "wasm32"))]
    fn mapping_result(
        &self,
        rx: &flume::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    ) -> Result<std::result::Result<(), wgpu::BufferAsyncError>> {
        // The submission is done, so the mapping callback is due. Another thread's poll may be
        // the one running it right now, so keep polling (without blocking) until it arrives,
        // within the engine's wait bound.
        let deadline = std::time::Instant::now().checked_add(self.wait_timeout);
        let mapped = loop {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(result) => break result,
                Err(flume::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Readback {
                        message: "the buffer mapping was dropped".into(),
                    })
                }
                Err(flume::RecvTimeoutError::Timeout) => {
                    self.ensure_alive()?;
                    if deadline.is_some_and(|d| std::time::Instant::now() > d) {
                        return Err(Error::Timeout {
                            during: "mapping a readback buffer".into(),
                            waited_ms: self.wait_timeout.as_millis(),
                            bound: "wait bound",
                        });
                    }
                    let _serial = self.serial();
                    let _ = self.device.poll(wgpu::PollType::Poll);
                }
            }
        };
        Ok(mapped)
    }

    fn finish_readback(
        &self,
        staging: OwnedBuffer,
        mapped: std::result::Result<(), wgpu::BufferAsyncError>,
    ) -> Result<Vec<f32>> {
        mapped.map_err(|e| Error::Readback {
            message: e.to_string(),
        })?;
        let _serial = self.serial();
        let data = {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Readback {
                message: e.to_string(),
            })?;
            bytemuck::pod_collect_to_vec::<u8, f32>(&view)
        };
        staging.unmap();
        // Freed while the context is held (on OpenGL freeing a buffer takes it too).
        drop(staging);
        drop(_serial);
        Ok(data)
    }

    /// Waits for all work submitted so far, then reports what the error scopes since the last
    /// wait caught. The browser bounds GPU work itself (a stuck device is lost), so the engine's
    /// wait bound does not apply there.
    #[cfg(target_arch = "wasm32")]
    pub(crate) async fn wait(
        &self,
        _submission: Option<&wgpu::SubmissionIndex>,
        during: &str,
        _wait: Wait,
    ) -> Result<()> {
        self.ensure_alive()?;
        let (tx, rx) = flume::bounded(1);
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        rx.recv_async().await.map_err(|_| Error::Readback {
            message: format!("the browser dropped the wait for {during}"),
        })?;
        self.settle_scopes().await?;
        self.ensure_alive()
    }

    /// Waits for `submission` (`None`: all work submitted so far) within the engine's bound.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) async fn wait(
        &self,
        submission: Option<&wgpu::SubmissionIndex>,
        during: &str,
        wait: Wait,
    ) -> Result<()> {
        self.ensure_alive()?;
        let result = match wait {
            Wait::Block => crate::gpu::polling::wait_sliced(
                &self.device,
                self.gl_serial.as_deref(),
                submission,
                self.wait_timeout,
            ),
            Wait::Async => {
                let submission = match submission {
                    Some(s) => s.clone(),
                    // An empty submission marks "everything so far".
                    None => {
                        let _serial = self.serial();
                        self.queue.submit([])
                    }
                };
                self.wait_on_thread(submission).await?
            }
        };
        self.ensure_alive()?;
        match result {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(Error::Timeout {
                during: during.to_string(),
                waited_ms: self.wait_timeout.as_millis(),
                bound: "wait bound",
            }),
            Err(e) => Err(Error::Readback {
                message: e.to_string(),
            }),
        }
    }

    /// wgpu only makes progress when polled; a helper thread does the blocking poll so the
    /// caller's executor is never blocked by the wait itself.
    #[cfg(not(target_arch = "wasm32"))]
    async fn wait_on_thread(
        &self,
        submission: wgpu::SubmissionIndex,
    ) -> Result<std::result::Result<wgpu::PollStatus, wgpu::PollError>> {
        let (tx, rx) = flume::bounded(1);
        let device = self.device.clone();
        let timeout = self.wait_timeout;
        let gl_serial = self.gl_serial.clone();
        std::thread::Builder::new()
            .name("wgconv-poll".into())
            .spawn(move || {
                let result = crate::gpu::polling::wait_sliced(
                    &device,
                    gl_serial.as_deref(),
                    Some(&submission),
                    timeout,
                );
                let _ = tx.send(result);
            })
            .map_err(|e| Error::Readback {
                message: format!("could not start the poll thread: {e}"),
            })?;
        rx.recv_async().await.map_err(|_| Error::Readback {
            message: "the poll thread ended without a result".into(),
        })
    }
}

async fn pick_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    options: &EngineOptions,
) -> Result<wgpu::Adapter> {
    let name = options
        .adapter_name
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .filter(|n| !n.is_empty());
    // Read first: a misspelt preference is refused even where an adapter name makes it moot.
    let power_preference = match options.power_preference {
        Some(preference) => preference,
        None => power_preference_from_env()?,
    };
    let adapters = instance.enumerate_adapters(backends).await;
    let seen = adapters
        .iter()
        .map(|a| AdapterSummary::from(a.get_info()).to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(name) = name {
        // Not wgpu::util::initialize_adapter_from_env: it panics when nothing matches.
        let wanted = name.to_lowercase();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .ok_or(Error::NoAdapter {
                request: format!("backends {backends:?}, name containing '{name}'"),
                seen,
            });
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter {
            request: format!("backends {backends:?}: {e}"),
            seen,
        })
}

/// `WGPU_POWER_PREF` as wgpu reads it (`low`, `high`, `none`, any case), high performance when
/// unset or empty; a value wgpu would silently ignore is refused instead.
fn power_preference_from_env() -> Result<wgpu::PowerPreference> {
    match std::env::var("WGPU_POWER_PREF") {
        Ok(value) if !value.trim().is_empty() => {
            wgpu::PowerPreference::from_env().ok_or(Error::Environment {
                name: "WGPU_POWER_PREF",
                value,
                expected: "low, high or none",
            })
        }
        _ => Ok(wgpu::PowerPreference::HighPerformance),
    }
}
