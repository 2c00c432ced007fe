//! The GPU engine: adapter and device selection, error scopes, the pipeline cache, dispatch and
//! bounded waits.
//!
//! Set up once (device, bind group layout, pipelines on first use), reuse per call; read back with
//! `map_async` + a bounded `poll` + `unmap`, as in wgpu's compute examples.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::kernels::Kernel;
use crate::gpu::plan::{self, Algorithm, Plan, PlanLimits, Split};
use crate::gpu::tensor::{GpuTensor, PackedWeights};
use crate::spec::{Conv2dParams, Conv2dShape};
use crate::tensor::Tensor;

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// Longest single hold of the OpenGL context while waiting (wgpu-hal gives up after 6 s).
const GL_WAIT_SLICE: Duration = Duration::from_millis(100);

/// Bytes of split pieces' temporary buffers submitted before the engine waits for the GPU to
/// catch up (see `run_split`).
const SPLIT_IN_FLIGHT_BYTES: usize = 512 << 20;

/// How an [`Engine`] picks its adapter and how long it waits for the GPU.
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
}

impl From<wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name,
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver,
            driver_info: info.driver_info,
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

/// Every adapter wgpu sees on `backends` (`None`: `WGPU_BACKEND`, else all).
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

/// Owns the wgpu device and queue, the compiled pipelines, and the rules for waiting on the GPU.
///
/// `Engine` is `Send + Sync`: share it between threads with `Arc`. Tensors it creates
/// ([`GpuTensor`]) can only be used with it.
pub struct Engine {
    id: u64,
    // Kept alive for the adapter's sake.
    _instance: wgpu::Instance,
    adapter: AdapterSummary,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: PlanLimits,
    pipeline_layout: wgpu::PipelineLayout,
    bind_group_layout: wgpu::BindGroupLayout,
    // Keyed by (kernel with its specialization, workgroup size); checked under the read lock,
    // built under the write lock.
    pipelines: RwLock<HashMap<(Kernel, u32), wgpu::ComputePipeline>>,
    // Bound in place of the bias when there is none (the shader skips it).
    pub(crate) no_bias: wgpu::Buffer,
    lost: Arc<Mutex<Option<String>>>,
    wait_timeout: Duration,
    algorithm: Algorithm,
    // On OpenGL, wgpu-hal holds one context lock per call and panics when another thread waits
    // for it longer than a few seconds (a long kernel, a large shader compile). wgconv takes this
    // lock first, so threads queue here, without a deadline, instead.
    gl_serial: Option<Arc<Mutex<()>>>,
}

/// Weights as a convolution call receives them.
#[derive(Clone, Copy)]
enum Weights<'a> {
    Plain(&'a GpuTensor),
    Packed(&'a PackedWeights),
}

impl Weights<'_> {
    fn plain(&self) -> &GpuTensor {
        match self {
            Weights::Plain(w) => w,
            Weights::Packed(p) => &p.weight,
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.id)
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the adapter chosen by the environment (see [`EngineOptions`]).
    ///
    /// # Errors
    /// [`Error::NoAdapter`] (with the install hint for software adapters) or [`Error::RequestDevice`].
    pub fn new() -> Result<Self> {
        Self::with_options(EngineOptions::default())
    }

    /// Async twin of [`Engine::new`].
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub async fn new_async() -> Result<Self> {
        Self::with_options_async(EngineOptions::default()).await
    }

    /// An engine with explicit options.
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub fn with_options(options: EngineOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// Async twin of [`Engine::with_options`].
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub async fn with_options_async(options: EngineOptions) -> Result<Self> {
        // 1. Instance and adapter, honouring WGPU_BACKEND / WGPU_ADAPTER_NAME / WGPU_POWER_PREF.
        let backends = backends_from(&options);
        let instance = new_instance(backends);
        let adapter = pick_adapter(&instance, backends, &options).await?;
        let info = adapter.get_info();
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

        // 4. One bind group layout for every convolution kernel: in, weight, bias, out, params.
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgconv conv2d"),
            entries: &[
                storage(0, true),
                storage(1, true),
                storage(2, true),
                storage(3, false),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("wgconv conv2d"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let no_bias = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgconv no-bias"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let mut limits = PlanLimits::new(&device.limits(), summary.device_type);
        limits.subgroup_size = subgroup_size;
        let gl_serial = (summary.backend == wgpu::Backend::Gl).then(|| Arc::new(Mutex::new(())));
        Ok(Engine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            _instance: instance,
            adapter: summary,
            device,
            queue,
            limits,
            pipeline_layout,
            bind_group_layout,
            pipelines: RwLock::new(HashMap::new()),
            no_bias,
            lost,
            wait_timeout: options.wait_timeout,
            algorithm: options.algorithm,
            gl_serial,
        })
    }

    /// The adapter this engine runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// This engine's id, as carried by its tensors.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The device limits plans are made against.
    pub fn limits(&self) -> PlanLimits {
        self.limits
    }

    /// The wgpu device, for callers that want to interoperate.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The longest this engine waits for GPU work.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// Serializes device access on OpenGL (see `gl_serial`); a no-op elsewhere.
    fn serial(&self) -> Option<MutexGuard<'_, ()>> {
        self.gl_serial
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn ensure_alive(&self) -> Result<()> {
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
        // Native wgpu resolves scopes synchronously, so these futures are ready at once.
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        let gl_oom = self.gl_serial.is_some() && gl_out_of_memory(&self.device);
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
        Ok(value)
    }

    pub(crate) fn check_owner(&self, what: &'static str, t: &GpuTensor) -> Result<()> {
        if t.engine_id() == self.id {
            Ok(())
        } else {
            Err(Error::ForeignTensor {
                what,
                tensor_engine: t.engine_id(),
                engine: self.id,
            })
        }
    }

    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
        workgroup_size: u32,
    ) -> Result<wgpu::ComputePipeline> {
        let key = (kernel, workgroup_size);
        if let Some(p) = self
            .pipelines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(p.clone());
        }
        let mut cache = self
            .pipelines
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let name = kernel.file_name();
        log::debug!("wgconv: building pipeline {kernel:?} with workgroup size {workgroup_size}");
        let source = kernel.source();
        // The shared-memory kernel has a fixed workgroup size; the others take it as an override.
        let constants = [("WORKGROUP_SIZE", f64::from(workgroup_size))];
        let constants: &[(&str, f64)] = if kernel == Kernel::SharedTiled {
            &[]
        } else {
            &constants
        };
        let pipeline = self.scoped(&format!("building the {name} pipeline"), || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source),
            };
            // SAFETY: every index in wgconv's shaders is in bounds by construction: flat indices
            // are guarded against the work-item count, gathers are masked or clamped to the
            // tensor (see each shader's comments), and the planner sized every buffer from the
            // validated shape and checked all index arithmetic against u32/i32 before dispatch.
            // Divisors (sizes, groups) are never zero after validation, and every loop is bounded
            // by a uniform. wgpu's injected bounds and loop checks would cost a clamp per load in
            // the innermost loops; tests/gpu_matches_cpu.rs exercises every kernel at the edges.
            let module = unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            };
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: Some(&self.pipeline_layout),
                    module: &module,
                    entry_point: Some(kernel.entry_point()),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
        })?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Allocates a GPU tensor of `shape` (contents unspecified until written).
    ///
    /// # Errors
    /// [`Error::DeviceLimit`], [`Error::OutOfMemory`], [`Error::DeviceLost`].
    pub fn alloc(&self, shape: &[usize]) -> Result<GpuTensor> {
        // Any zero dimension makes an empty tensor, wherever it stands (as for `Tensor`).
        let len = if shape.contains(&0) {
            Some(0)
        } else {
            shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        }
        .ok_or_else(|| Error::SizeOverflow {
            what: format!("element count of shape {shape:?}"),
        })?;
        let bytes = plan::check_allocation("tensor", len, &self.limits)?;
        let buffer = self.scoped("allocating a tensor", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgconv tensor"),
                // Zero-sized bindings are invalid, so empty tensors get a token buffer.
                size: bytes.max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuTensor::new(buffer, shape.to_vec(), len, self.id))
    }

    /// A new tensor of the convolution's output shape (validating the shapes on the way).
    fn alloc_output(
        &self,
        input: &GpuTensor,
        weight_shape: &[usize],
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        let shape = Conv2dShape::new(
            input.shape(),
            weight_shape,
            bias.map(GpuTensor::shape),
            params,
        )?;
        self.alloc(&shape.output_shape())
    }

    /// Copies a host tensor to the GPU.
    ///
    /// # Errors
    /// As [`Engine::alloc`].
    pub fn upload(&self, tensor: &Tensor) -> Result<GpuTensor> {
        let gpu = self.alloc(tensor.shape())?;
        if !tensor.is_empty() {
            self.scoped("uploading a tensor", || {
                self.queue
                    .write_buffer(gpu.buffer(), 0, bytemuck::cast_slice(tensor.data()));
            })?;
        }
        Ok(gpu)
    }

    /// Overwrites a GPU tensor with host data of the same shape.
    ///
    /// # Errors
    /// [`Error::OutputShape`] when the shapes differ; [`Error::ForeignTensor`]; [`Error::DeviceLost`].
    pub fn write(&self, target: &mut GpuTensor, tensor: &Tensor) -> Result<()> {
        self.check_owner("target", target)?;
        if target.shape() != tensor.shape() {
            return Err(Error::OutputShape {
                expected: tensor.shape().to_vec(),
                got: target.shape().to_vec(),
            });
        }
        if !tensor.is_empty() {
            self.scoped("writing a tensor", || {
                self.queue
                    .write_buffer(target.buffer(), 0, bytemuck::cast_slice(tensor.data()));
            })?;
        }
        Ok(())
    }

    /// Copies a GPU tensor back to the host, waiting at most the engine's wait bound.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::DeviceLost`], [`Error::Readback`], [`Error::ForeignTensor`].
    pub fn download(&self, tensor: &GpuTensor) -> Result<Tensor> {
        let Some(readback) = self.start_readback(tensor)? else {
            return Tensor::new(tensor.shape().to_vec(), Vec::new());
        };
        self.wait(&readback.submission, "download")?;
        self.finish_readback(readback)
    }

    /// Async twin of [`Engine::download`].
    ///
    /// # Errors
    /// As [`Engine::download`].
    pub async fn download_async(&self, tensor: &GpuTensor) -> Result<Tensor> {
        let Some(readback) = self.start_readback(tensor)? else {
            return Tensor::new(tensor.shape().to_vec(), Vec::new());
        };
        self.wait_async(&readback.submission, "download").await?;
        self.finish_readback(readback)
    }

    fn start_readback(&self, tensor: &GpuTensor) -> Result<Option<Readback>> {
        self.check_owner("tensor", tensor)?;
        if tensor.is_empty() {
            return Ok(None);
        }
        let bytes = tensor.len() as u64 * 4;
        let (tx, rx) = flume::bounded(1);
        let (staging, submission) = self.scoped("reading back a tensor", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgconv readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgconv readback"),
                });
            encoder.copy_buffer_to_buffer(tensor.buffer(), 0, &staging, 0, bytes);
            let submission = self.queue.submit([encoder.finish()]);
            staging.map_async(wgpu::MapMode::Read, .., move |result| {
                // The receiver may be gone if the caller gave up; nothing to do then.
                let _ = tx.send(result);
            });
            (staging, submission)
        })?;
        Ok(Some(Readback {
            staging,
            submission,
            rx,
            shape: tensor.shape().to_vec(),
        }))
    }

    fn finish_readback(&self, readback: Readback) -> Result<Tensor> {
        // The submission is done, so the mapping callback is due. Another thread's poll may be
        // the one running it right now, so keep polling (without blocking) until it arrives,
        // within the engine's wait bound.
        let deadline = std::time::Instant::now().checked_add(self.wait_timeout);
        let mapped = loop {
            match readback.rx.recv_timeout(Duration::from_millis(1)) {
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
                        });
                    }
                    let _serial = self.serial();
                    let _ = self.device.poll(wgpu::PollType::Poll);
                }
            }
        };
        mapped.map_err(|e| Error::Readback {
            message: e.to_string(),
        })?;
        let _serial = self.serial();
        let data = {
            let view = readback
                .staging
                .get_mapped_range(..)
                .map_err(|e| Error::Readback {
                    message: e.to_string(),
                })?;
            bytemuck::pod_collect_to_vec::<u8, f32>(&view)
        };
        readback.staging.unmap();
        // Freed while the context is held (on OpenGL freeing a buffer takes it too).
        drop(readback.staging);
        drop(_serial);
        Tensor::new(readback.shape, data)
    }

    fn wait(&self, submission: &wgpu::SubmissionIndex, during: &str) -> Result<()> {
        self.wait_for(Some(submission), during)
    }

    /// Waits for `submission` (or all work) within the engine's bound (see [`wait_sliced`]).
    fn wait_for(&self, submission: Option<&wgpu::SubmissionIndex>, during: &str) -> Result<()> {
        self.ensure_alive()?;
        let result = wait_sliced(
            &self.device,
            self.gl_serial.as_deref(),
            submission,
            self.wait_timeout,
        );
        self.poll_result(result, during)
    }

    async fn wait_async(&self, submission: &wgpu::SubmissionIndex, during: &str) -> Result<()> {
        self.ensure_alive()?;
        // wgpu only makes progress when polled; a helper thread does the blocking poll so the
        // caller's executor is never blocked by the wait itself.
        let (tx, rx) = flume::bounded(1);
        let device = self.device.clone();
        let submission = submission.clone();
        let timeout = self.wait_timeout;
        let gl_serial = self.gl_serial.clone();
        std::thread::Builder::new()
            .name("wgconv-poll".into())
            .spawn(move || {
                let result = wait_sliced(&device, gl_serial.as_deref(), Some(&submission), timeout);
                let _ = tx.send(result);
            })
            .map_err(|e| Error::Readback {
                message: format!("could not start the poll thread: {e}"),
            })?;
        let result = rx.recv_async().await.map_err(|_| Error::Readback {
            message: "the poll thread ended without a result".into(),
        })?;
        self.poll_result(result, during)
    }

    fn poll_result(
        &self,
        result: std::result::Result<wgpu::PollStatus, wgpu::PollError>,
        during: &str,
    ) -> Result<()> {
        self.ensure_alive()?;
        match result {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(Error::Timeout {
                during: during.to_string(),
                waited_ms: self.wait_timeout.as_millis(),
            }),
            Err(e) => Err(Error::Readback {
                message: e.to_string(),
            }),
        }
    }

    /// Waits until all submitted GPU work has finished, at most the engine's wait bound.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::DeviceLost`].
    pub fn synchronize(&self) -> Result<()> {
        self.wait_for(None, "synchronize")
    }

    /// Async twin of [`Engine::synchronize`].
    ///
    /// # Errors
    /// As [`Engine::synchronize`].
    pub async fn synchronize_async(&self) -> Result<()> {
        let submission = {
            let _serial = self.serial();
            self.queue.submit([])
        };
        self.wait_async(&submission, "synchronize").await
    }

    /// Convolution of GPU tensors into a new GPU tensor `[N, O, P, Q]`; returns once the work is
    /// submitted (download or [`Engine::synchronize`] to wait for it).
    ///
    /// # Errors
    /// Every shape or parameter error of [`Conv2dShape::new`], the plan's size errors
    /// ([`Error::TooLarge`], [`Error::DeviceLimit`]), [`Error::ForeignTensor`], GPU errors.
    pub fn conv2d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        let mut output = self.alloc_output(input, weight.shape(), bias, params)?;
        self.run(
            input,
            Weights::Plain(weight),
            bias,
            params,
            &mut output,
            self.algorithm,
        )?;
        Ok(output)
    }

    /// Convolution of GPU tensors written into `output`, which must have the output's shape.
    ///
    /// # Errors
    /// As [`Engine::conv2d_gpu`], and [`Error::OutputShape`].
    pub fn conv2d_into(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.run(
            input,
            Weights::Plain(weight),
            bias,
            params,
            output,
            self.algorithm,
        )
    }

    /// As [`Engine::conv2d_into`] with an explicit algorithm instead of the engine's.
    ///
    /// # Errors
    /// As [`Engine::conv2d_into`], and [`Error::UnsupportedAlgorithm`].
    pub fn conv2d_into_with(
        &self,
        algorithm: Algorithm,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        self.run(
            input,
            Weights::Plain(weight),
            bias,
            params,
            output,
            algorithm,
        )
    }

    /// Packs `weight` (`[O, C/groups, kh, kw]`) for convolutions with `groups` groups, once.
    ///
    /// # Errors
    /// Shape errors ([`Error::OutChannelsNotDivisible`], ...), size errors, GPU errors.
    pub fn pack_weights(&self, weight: GpuTensor, groups: usize) -> Result<PackedWeights> {
        self.check_owner("weight", &weight)?;
        let shape = packing_shape(weight.shape(), groups)?;
        // Weights too large for one binding are kept unpacked: convolutions over them are split
        // and pack each piece's weights as they go.
        let (plan, len) = match plan::pack_plan(&shape, &self.limits) {
            Ok(p) => p,
            Err(Error::DeviceLimit { .. } | Error::TooLarge { .. }) => {
                return Ok(PackedWeights {
                    weight,
                    packed: None,
                    groups,
                })
            }
            Err(e) => return Err(e),
        };
        let pipeline = self.pipeline(plan.kernel, plan.workgroup_size)?;
        let packed = self.scoped("packing weights", || {
            let packed = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgconv packed weights"),
                size: (len as u64 * 4).max(16),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("pack"),
                });
            self.encode(
                &mut encoder,
                &pipeline,
                &plan,
                [weight.buffer(), weight.buffer(), &self.no_bias, &packed],
            );
            self.queue.submit([encoder.finish()]);
            packed
        })?;
        Ok(PackedWeights {
            weight,
            packed: Some(packed),
            groups,
        })
    }

    /// Convolution with weights packed by [`Engine::pack_weights`], written into `output`.
    ///
    /// # Errors
    /// As [`Engine::conv2d_into`], and [`Error::PackedGroups`] when `params.groups` differs from
    /// the packing's.
    pub fn conv2d_packed_into(
        &self,
        input: &GpuTensor,
        weights: &PackedWeights,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
    ) -> Result<()> {
        if params.groups != weights.groups {
            return Err(Error::PackedGroups {
                packed: weights.groups,
                requested: params.groups,
            });
        }
        self.run(
            input,
            Weights::Packed(weights),
            bias,
            params,
            output,
            self.algorithm,
        )
    }

    /// Convolution with packed weights into a new GPU tensor.
    ///
    /// # Errors
    /// As [`Engine::conv2d_packed_into`].
    pub fn conv2d_packed(
        &self,
        input: &GpuTensor,
        weights: &PackedWeights,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
    ) -> Result<GpuTensor> {
        let mut output = self.alloc_output(input, weights.shape(), bias, params)?;
        self.conv2d_packed_into(input, weights, bias, params, &mut output)?;
        Ok(output)
    }

    /// The plan this engine makes for `shape` (which kernel, which tiles).
    ///
    /// # Errors
    /// As [`plan::plan`].
    pub fn plan(&self, shape: &Conv2dShape) -> Result<Plan> {
        plan::plan(shape, &self.limits, self.algorithm)
    }

    /// Whether this engine runs `shape` in one dispatch (`None`) or split into pieces that fit
    /// its device's limits (`Some`, see [`plan::schedule`]).
    ///
    /// # Errors
    /// As [`plan::schedule`]: when not even the smallest piece fits.
    pub fn schedule(&self, shape: &Conv2dShape) -> Result<Option<Split>> {
        plan::schedule(shape, &self.limits, self.algorithm)
    }

    fn run(
        &self,
        input: &GpuTensor,
        weights: Weights<'_>,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        output: &mut GpuTensor,
        algorithm: Algorithm,
    ) -> Result<()> {
        // 1. Validate ownership and shapes, then plan on the host.
        self.check_owner("input", input)?;
        self.check_owner("weight", weights.plain())?;
        if let Some(b) = bias {
            self.check_owner("bias", b)?;
        }
        self.check_owner("output", output)?;
        let weight = weights.plain();
        let shape = Conv2dShape::new(
            input.shape(),
            weight.shape(),
            bias.map(GpuTensor::shape),
            params,
        )?;
        if output.shape() != shape.output_shape() {
            return Err(Error::OutputShape {
                expected: shape.output_shape().to_vec(),
                got: output.shape().to_vec(),
            });
        }
        if shape.output_len() == 0 {
            return Ok(());
        }
        let packed = match weights {
            Weights::Packed(p) => p.packed.as_ref(),
            Weights::Plain(_) => None,
        };
        if let Some(split) = plan::schedule(&shape, &self.limits, algorithm)? {
            return self.run_split(&shape, &split, input, weight, bias, output, algorithm);
        }
        let prepared = self.prepare(&shape, algorithm, packed.is_some())?;

        // 2. Bind, dispatch, submit.
        let kernel = prepared.plan.kernel.file_name();
        self.scoped(&format!("dispatching {kernel}"), || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(kernel),
                });
            let bias_buffer = bias.map_or(&self.no_bias, GpuTensor::buffer);
            let _temp = self.record(
                &mut encoder,
                &prepared,
                [
                    input.buffer(),
                    weight.buffer(),
                    bias_buffer,
                    output.buffer(),
                ],
                packed,
            );
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Plans `shape` and fetches its pipelines, with the weight packing's when the kernel reads
    /// packed weights and `have_packed` is false.
    fn prepare(
        &self,
        shape: &Conv2dShape,
        algorithm: Algorithm,
        have_packed: bool,
    ) -> Result<Prepared> {
        let plan = plan::plan(shape, &self.limits, algorithm)?;
        let pipeline = self.pipeline(plan.kernel, plan.workgroup_size)?;
        let pack = if plan.kernel.reads_packed_weights() && !have_packed {
            let (pack_plan, len) = plan::pack_plan(shape, &self.limits)?;
            let pack_pipeline = self.pipeline(pack_plan.kernel, pack_plan.workgroup_size)?;
            Some((pack_pipeline, pack_plan, len))
        } else {
            None
        };
        Ok(Prepared {
            plan,
            pipeline,
            pack,
        })
    }

    /// Records a prepared convolution on `[input, weight (OIHW), bias, output]`, packing the
    /// weights first when it needs packed ones and `packed` has none. Returns the per-call packed
    /// buffer, if any, to keep until submission.
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        prepared: &Prepared,
        [input, weight, bias, output]: [&wgpu::Buffer; 4],
        packed: Option<&wgpu::Buffer>,
    ) -> Option<wgpu::Buffer> {
        let temp_packed = prepared.pack.as_ref().map(|(pipeline, pack_plan, len)| {
            let temp = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgconv packed weights (per call)"),
                size: (*len as u64 * 4).max(16),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            self.encode(
                encoder,
                pipeline,
                pack_plan,
                [weight, weight, &self.no_bias, &temp],
            );
            temp
        });
        let weight = match (prepared.plan.kernel.reads_packed_weights(), &temp_packed) {
            (true, Some(temp)) => temp,
            (true, None) => packed.unwrap_or(weight),
            (false, _) => weight,
        };
        self.encode(
            encoder,
            &prepared.pipeline,
            &prepared.plan,
            [input, weight, bias, output],
        );
        temp_packed
    }

    /// Runs a convolution too large for one dispatch piece by piece: each piece's input (with its
    /// halo), weights and bias are copied into buffers of their own, convolved, and its output
    /// copied into place. One submission per piece, so temporaries are freed as the GPU goes;
    /// after every [`SPLIT_IN_FLIGHT_BYTES`] of them the call waits for the GPU, so a huge
    /// problem's call returns when all but its last pieces are done.
    #[allow(clippy::too_many_arguments)]
    fn run_split(
        &self,
        shape: &Conv2dShape,
        split: &Split,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        output: &GpuTensor,
        algorithm: Algorithm,
    ) -> Result<()> {
        log::debug!("wgconv: splitting {shape:?} into pieces of {split:?}");
        let bytes = |elements: usize| elements as u64 * 4;
        let mut in_flight = 0usize;
        for piece in plan::pieces(shape, split)? {
            let prepared = self.prepare(&piece.shape, algorithm, false)?;
            let submission = self.scoped("dispatching a piece of a split convolution", || {
                let temp = |label, elements: usize| {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        // Created zeroed (wgpu's guarantee), which the all-padding zero row needs.
                        size: bytes(elements).max(4),
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                };
                let mut encoder =
                    self.device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("wgconv split piece"),
                        });
                // 1. The piece's input rows (with halo), weight rows and bias entries.
                let x = temp("wgconv piece input", piece.shape.input_len());
                copy(&mut encoder, input.buffer(), &x, &piece.input_runs(shape));
                let w_range = piece.weight_range(shape);
                let w = temp("wgconv piece weight", w_range.len());
                let w_run = plan::CopyRun {
                    src: w_range.start,
                    dst: 0,
                    len: w_range.len(),
                };
                copy(&mut encoder, weight.buffer(), &w, &[w_run]);
                let b = bias.map(|bias| {
                    let b = temp("wgconv piece bias", piece.out_channels.len());
                    let run = plan::CopyRun {
                        src: piece.out_channels.start,
                        dst: 0,
                        len: piece.out_channels.len(),
                    };
                    copy(&mut encoder, bias.buffer(), &b, &[run]);
                    b
                });
                // 2. The piece's convolution, then its output into place.
                let y = temp("wgconv piece output", piece.shape.output_len());
                let b_buffer = b.as_ref().unwrap_or(&self.no_bias);
                let _temp = self.record(&mut encoder, &prepared, [&x, &w, b_buffer, &y], None);
                copy(&mut encoder, &y, output.buffer(), &piece.output_runs(shape));
                self.queue.submit([encoder.finish()])
            })?;
            // Temporaries are freed when their piece is done; waiting now and then bounds how
            // many are alive at once.
            in_flight += 4 * (piece.shape.input_len() + piece.shape.weight_len())
                + 4 * piece.shape.output_len();
            if in_flight > SPLIT_IN_FLIGHT_BYTES {
                self.wait(&submission, "a piece of a split convolution")?;
                in_flight = 0;
            }
        }
        Ok(())
    }

    /// Records one dispatch of `plan` with `buffers` at bindings 0-3 and the plan's uniforms at 4.
    pub(crate) fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        plan: &Plan,
        buffers: [&wgpu::Buffer; 4],
    ) {
        let uniforms = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgconv params"),
                contents: bytemuck::bytes_of(&plan.uniforms),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: 4,
            resource: uniforms.as_entire_binding(),
        });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(plan.kernel.file_name()),
            layout: &self.bind_group_layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(plan.kernel.file_name()),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        let (x, y, z) = plan.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// One-shot convolution: host tensors in, host tensor `[N, O, P, Q]` out. Problems whose
    /// tensors exceed the device's `max_buffer_size` are cut into pieces on the host (see
    /// [`plan::Split`]); problems beyond one binding or dispatch are split on the device.
    ///
    /// # Errors
    /// As [`Engine::conv2d_gpu`] and [`Engine::download`].
    pub fn conv2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &Conv2dParams,
    ) -> Result<Tensor> {
        let shape = Conv2dShape::new(
            input.shape(),
            weight.shape(),
            bias.map(Tensor::shape),
            params,
        )?;
        let Some(pieces) = self.host_pieces(&shape)? else {
            return match self.conv2d_submit(&shape, input, weight, bias, params)? {
                Submitted::Empty(t) => Ok(t),
                Submitted::Running(output) => self.download(&output),
            };
        };
        let mut output = crate::memory::try_vec(shape.output_len(), 0.0, || {
            format!("the output {:?}", shape.output_shape())
        })?;
        for piece in &pieces {
            let (x, w, b) = piece_tensors(&shape, piece, input, weight, bias)?;
            let y = match self.conv2d_submit(&piece.shape, &x, &w, b.as_ref(), &piece.params())? {
                Submitted::Empty(t) => t,
                Submitted::Running(y) => self.download(&y)?,
            };
            place(&shape, piece, &y, &mut output);
        }
        Tensor::new(shape.output_shape(), output)
    }

    /// Async twin of [`Engine::conv2d`].
    ///
    /// # Errors
    /// As [`Engine::conv2d`].
    pub async fn conv2d_async(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &Conv2dParams,
    ) -> Result<Tensor> {
        let shape = Conv2dShape::new(
            input.shape(),
            weight.shape(),
            bias.map(Tensor::shape),
            params,
        )?;
        let Some(pieces) = self.host_pieces(&shape)? else {
            return match self.conv2d_submit(&shape, input, weight, bias, params)? {
                Submitted::Empty(t) => Ok(t),
                Submitted::Running(output) => self.download_async(&output).await,
            };
        };
        let mut output = crate::memory::try_vec(shape.output_len(), 0.0, || {
            format!("the output {:?}", shape.output_shape())
        })?;
        for piece in &pieces {
            let (x, w, b) = piece_tensors(&shape, piece, input, weight, bias)?;
            let y = match self.conv2d_submit(&piece.shape, &x, &w, b.as_ref(), &piece.params())? {
                Submitted::Empty(t) => t,
                Submitted::Running(y) => self.download_async(&y).await?,
            };
            place(&shape, piece, &y, &mut output);
        }
        Tensor::new(shape.output_shape(), output)
    }

    /// The host-side pieces of a problem with a tensor over `max_buffer_size` or an output over
    /// [`HOST_PIECE_OUTPUT_BYTES`], or `None` when it runs whole.
    fn host_pieces(&self, shape: &Conv2dShape) -> Result<Option<Vec<plan::Piece>>> {
        let fits = |s: &Conv2dShape| {
            [s.input_len(), s.weight_len(), s.output_len()]
                .iter()
                .all(|&len| plan::check_allocation("tensor", len, &self.limits).is_ok())
                && s.output_len() as u64 * 4 <= HOST_PIECE_OUTPUT_BYTES
        };
        if fits(shape) || shape.output_len() == 0 {
            return Ok(None);
        }
        match plan::choose_split(shape, &self.limits, fits) {
            Some(split) => plan::pieces(shape, &split).map(Some),
            None => {
                // Not even one output row fits: name the tensor that does not.
                plan::check_allocation("input", shape.input_len(), &self.limits)?;
                plan::check_allocation("weight", shape.weight_len(), &self.limits)?;
                plan::check_allocation("output", shape.output_len(), &self.limits)?;
                Ok(None)
            }
        }
    }

    /// Validates, schedules (so an impossible problem fails before any upload), uploads and
    /// submits a problem whose tensors each fit one buffer.
    fn conv2d_submit(
        &self,
        shape: &Conv2dShape,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &Conv2dParams,
    ) -> Result<Submitted> {
        if shape.output_len() == 0 {
            return Ok(Submitted::Empty(Tensor::new(
                shape.output_shape(),
                Vec::new(),
            )?));
        }
        plan::schedule(shape, &self.limits, self.algorithm)?;
        let input = self.upload(input)?;
        let weight = self.upload(weight)?;
        let bias = bias.map(|b| self.upload(b)).transpose()?;
        Ok(Submitted::Running(self.conv2d_gpu(
            &input,
            &weight,
            bias.as_ref(),
            params,
        )?))
    }
}

/// The most output bytes the one-shot [`Engine::conv2d`] computes in one piece. Each piece's
/// output lives three times at once (GPU buffer, readback buffer, downloaded piece), and on a
/// software adapter all three are host memory; pieces this size keep the peak at the whole
/// host output plus a bounded amount (`wgconv run`: output + input + weight + about 1 GB).
const HOST_PIECE_OUTPUT_BYTES: u64 = 256 << 20;

/// A piece's input (rows with halo, or one zero row), weights and bias, cut from host tensors.
fn piece_tensors(
    whole: &Conv2dShape,
    piece: &plan::Piece,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let mut x = crate::memory::try_vec(piece.shape.input_len(), 0.0, || {
        format!("a piece of the input, {:?}", piece.shape.input_shape())
    })?;
    for r in piece.input_runs(whole) {
        x[r.dst..r.dst + r.len].copy_from_slice(&input.data()[r.src..r.src + r.len]);
    }
    let x = Tensor::new(piece.shape.input_shape(), x)?;
    let w = Tensor::new(
        piece.shape.weight_shape(),
        weight.data()[piece.weight_range(whole)].to_vec(),
    )?;
    let b = bias
        .map(|b| {
            Tensor::new(
                [piece.out_channels.len()],
                b.data()[piece.out_channels.clone()].to_vec(),
            )
        })
        .transpose()?;
    Ok((x, w, b))
}

/// Copies a piece's output into the whole output.
fn place(whole: &Conv2dShape, piece: &plan::Piece, y: &Tensor, output: &mut [f32]) {
    for r in piece.output_runs(whole) {
        output[r.dst..r.dst + r.len].copy_from_slice(&y.data()[r.src..r.src + r.len]);
    }
}

/// The shape whose packing plan packs `weight` for `groups` groups: an input exactly the size of
/// the kernel, so every weight shape that can convolve anything is accepted.
fn packing_shape(weight: &[usize], groups: usize) -> Result<Conv2dShape> {
    let &[o, cg, kh, kw] = weight else {
        return Err(Error::WeightRank {
            shape: weight.to_vec(),
        });
    };
    let channels = cg.checked_mul(groups).ok_or_else(|| Error::SizeOverflow {
        what: "C/groups * groups".into(),
    })?;
    let params = Conv2dParams::default().with_groups(groups);
    Conv2dShape::new(&[1, channels, kh, kw], &[o, cg, kh, kw], None, &params)
}

/// Waits for `submission` (or all work) for at most `timeout`. On OpenGL (`gl_serial` given) the
/// wait is cut into slices of [`GL_WAIT_SLICE`], taking the engine's GL lock for each, so other
/// threads (and async callers) get the context between slices and none waits long for it.
fn wait_sliced(
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
fn gl_out_of_memory(device: &wgpu::Device) -> bool {
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
fn gl_out_of_memory(_device: &wgpu::Device) -> bool {
    false
}

/// Records `runs` (in f32 elements) as buffer-to-buffer copies.
fn copy(
    encoder: &mut wgpu::CommandEncoder,
    from: &wgpu::Buffer,
    to: &wgpu::Buffer,
    runs: &[plan::CopyRun],
) {
    let bytes = |elements: usize| elements as u64 * 4;
    for r in runs {
        encoder.copy_buffer_to_buffer(from, bytes(r.src), to, bytes(r.dst), bytes(r.len));
    }
}

/// A planned convolution with its pipelines (see [`Engine::prepare`]).
struct Prepared {
    plan: Plan,
    pipeline: wgpu::ComputePipeline,
    pack: Option<(wgpu::ComputePipeline, Plan, usize)>,
}

enum Submitted {
    Empty(Tensor),
    Running(GpuTensor),
}

struct Readback {
    staging: wgpu::Buffer,
    submission: wgpu::SubmissionIndex,
    rx: flume::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    shape: Vec<usize>,
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
