//! The engine: a `Device`, its `PipelineCache`, and the calls every operation is built from
//! (tensors in and out, recording planned dispatches, waiting). The operations live by family in
//! their own files: [`forward`](super::forward), [`backward`](super::backward),
//! [`transposed`](super::transposed) and [`training`](super::training).
//!
//! Each operation has one implementation, the async one; the blocking call drives it with
//! `Wait::Block`, which polls on the caller's thread within the engine's wait bound.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::device::{AdapterSummary, Device, EngineOptions, Wait};
use crate::gpu::kernels::Kernel;
use crate::gpu::pipelines::{is_build_failure, PipelineCache};
use crate::gpu::plan::{self, Algorithm, Plan, PlanLimits};
use crate::gpu::profile::Profile;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::tuning::{AdapterKey, Op, ShapeClass, Tuning, TuningCache, Winner};
use crate::spec::Conv2dShape;
use crate::tensor::Tensor;

/// Defines an operation's blocking call and its async twin from its one implementation: either
/// `async fn $with(&self, args.., wait: Wait)`, or a body written once that uses `wait`. The
/// blocking call drives it on the caller's thread with [`Wait::Block`] (polling within the
/// engine's wait bound), the async twin with [`Wait::Async`] (a helper thread polls, so the
/// caller's executor is never blocked).
macro_rules! blocking_and_async {
    (
        $(#[$doc:meta])*
        $name:ident, $async_name:ident => $with:ident($($arg:ident: $ty:ty),*) -> $ret:ty
    ) => {
        $(#[$doc])*
        #[cfg(not(target_arch = "wasm32"))]
        pub fn $name(&self, $($arg: $ty),*) -> $crate::error::Result<$ret> {
            pollster::block_on(self.$with($($arg,)* $crate::gpu::device::Wait::Block))
        }

        #[doc = concat!("Async twin of [`Engine::", stringify!($name), "`].\n\n# Errors\nAs [`Engine::", stringify!($name), "`].")]
        pub async fn $async_name(&self, $($arg: $ty),*) -> $crate::error::Result<$ret> {
            self.$with($($arg,)* $crate::gpu::device::Wait::Async).await
        }
    };
    (
        $(#[$doc:meta])*
        $this:ident.$name:ident, $async_name:ident($($arg:ident: $ty:ty),*) -> $ret:ty,
        |$wait:ident| $body:block
    ) => {
        $(#[$doc])*
        #[cfg(not(target_arch = "wasm32"))]
        pub fn $name(&$this, $($arg: $ty),*) -> $crate::error::Result<$ret> {
            let $wait = $crate::gpu::device::Wait::Block;
            let result: $crate::error::Result<$ret> = pollster::block_on(async move $body);
            result
        }

        #[doc = concat!("Async twin of [`Engine::", stringify!($name), "`].\n\n# Errors\nAs [`Engine::", stringify!($name), "`].")]
        pub async fn $async_name(&$this, $($arg: $ty),*) -> $crate::error::Result<$ret> {
            let $wait = $crate::gpu::device::Wait::Async;
            $body
        }
    };
}
pub(crate) use blocking_and_async;

/// Owns the wgpu device and queue, the compiled pipelines, and the rules for waiting on the GPU.
///
/// `Engine` is `Send + Sync` natively: share it between threads with `Arc` (in the browser,
/// where wgpu's types are neither, it lives on the page's thread). Tensors it creates
/// ([`GpuTensor`]) can only be used with it.
pub struct Engine {
    // Shared with pipeline builds on worker threads.
    device: Arc<Device>,
    pipelines: PipelineCache,
    algorithm: Algorithm,
    // The tuned kernels and remembered build failures of this adapter (empty with tuning off).
    tuning: RwLock<TuningCache>,
    // Bound in place of the bias when there is none (the shader skips it).
    no_bias: wgpu::Buffer,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.device.id())
            .field("adapter", self.device.adapter())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the adapter chosen by the environment (see [`EngineOptions`]).
    ///
    /// # Errors
    /// [`Error::NoAdapter`] (with the install hint for software adapters) or [`Error::RequestDevice`].
    #[cfg(not(target_arch = "wasm32"))]
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
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(options: EngineOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// Async twin of [`Engine::with_options`].
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub async fn with_options_async(options: EngineOptions) -> Result<Self> {
        // In the browser wgpu's types are neither Send nor Sync (one thread there): the Arc
        // that shares the device with native build threads is a plain shared pointer.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        let device = Arc::new(Device::open(&options).await?);
        let pipelines = PipelineCache::new(device.wgpu());
        let no_bias = device.wgpu().create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgconv no-bias"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let tuning = match &options.tuning {
            Tuning::Off => TuningCache::default(),
            Tuning::Cached(dir) => TuningCache::load(dir, adapter_key(device.adapter())),
        };
        Ok(Engine {
            device,
            pipelines,
            algorithm: options.algorithm,
            tuning: RwLock::new(tuning),
            no_bias,
        })
    }

    /// The adapter this engine runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        self.device.adapter()
    }

    /// This engine's id, as carried by its tensors.
    pub fn id(&self) -> u64 {
        self.device.id()
    }

    /// The device limits plans are made against.
    pub fn limits(&self) -> PlanLimits {
        self.device.limits()
    }

    /// The wgpu device, for callers that want to interoperate.
    pub fn device(&self) -> &wgpu::Device {
        self.device.wgpu()
    }

    /// The longest this engine waits for GPU work.
    pub fn wait_timeout(&self) -> Duration {
        self.device.wait_timeout()
    }

    /// The algorithm this engine's convolutions use.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn gpu(&self) -> &Device {
        &self.device
    }

    /// The buffer bound as the bias of a convolution without one (the shader skips it).
    pub(crate) fn no_bias(&self) -> &wgpu::Buffer {
        &self.no_bias
    }

    pub(crate) fn check_owner(&self, what: &'static str, t: &GpuTensor) -> Result<()> {
        if t.engine_id() == self.id() {
            Ok(())
        } else {
            Err(Error::ForeignTensor {
                what,
                tensor_engine: t.engine_id(),
                engine: self.id(),
            })
        }
    }

    /// The planner's starting point on this adapter (see [`Profile`]).
    pub fn profile(&self) -> Profile {
        self.limits().profile
    }

    /// The tuning cache this engine reads: its adapter's winners and remembered build failures
    /// (empty with [`Tuning::Off`]).
    pub fn tuning_cache(&self) -> TuningCache {
        self.tuning
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The tuned choice for `op` on problems of `shape`'s class, if the cache has one.
    pub(crate) fn tuned(&self, op: Op, shape: &Conv2dShape) -> Option<String> {
        if !self.has_winners() {
            return None;
        }
        let class = ShapeClass::of(shape);
        let cache = self.tuning.read().unwrap_or_else(PoisonError::into_inner);
        cache.winner(op, &class).map(|w| w.choice.clone())
    }

    /// The algorithm `Auto` runs for `shape` when the cache has a winner for its class.
    pub fn tuned_algorithm(&self, shape: &Conv2dShape) -> Option<Algorithm> {
        self.tuned(Op::Forward, shape)?.parse().ok()
    }

    /// Whether the tuning cache has any winner (every call asks; most engines have none).
    pub(crate) fn has_winners(&self) -> bool {
        let cache = self.tuning.read().unwrap_or_else(PoisonError::into_inner);
        !cache.winners().is_empty()
    }

    /// Records a tuned winner in the cache (memory, and disk unless tuning is off).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn record_winner(&self, winner: Winner) {
        let mut cache = self.tuning.write().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = cache.record_winner(winner) {
            log::warn!("wgconv: could not save the tuning cache: {e}");
        }
    }

    /// The pipeline of `plan`'s kernel, built on first use within the engine's build bound. A
    /// kernel that failed to build before (on this engine, or on this adapter as the tuning cache
    /// remembers) fails at once; a new failure is remembered in the cache.
    ///
    /// # Errors
    /// As `PipelineCache::get`, and [`Error::PipelineBuild`] for a remembered failure.
    pub(crate) fn pipeline(&self, plan: &Plan) -> Result<wgpu::ComputePipeline> {
        if let Some(pipeline) = self.pipelines.cached(plan.kernel, plan.workgroup_size) {
            return Ok(pipeline);
        }
        let name = plan.kernel.name();
        if let Some((_, why)) = self
            .tuning
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .failures()
            .iter()
            .find(|(kernel, _)| *kernel == name)
        {
            return Err(Error::PipelineBuild {
                kernel: name,
                reason: why.clone(),
            });
        }
        let built = self.pipelines.get(
            &self.device,
            plan.kernel,
            plan.workgroup_size,
            self.device.pipeline_timeout(),
        );
        if let Err(e) = &built {
            if is_build_failure(e) {
                self.remember_failure(plan.kernel, e);
            }
        }
        built
    }

    /// Whether `kernel` is remembered as not building on this adapter.
    pub(crate) fn has_failed(&self, kernel: Kernel) -> bool {
        let cache = self.tuning.read().unwrap_or_else(PoisonError::into_inner);
        cache.has_failed(&kernel.name())
    }

    fn remember_failure(&self, kernel: Kernel, e: &Error) {
        let mut cache = self.tuning.write().unwrap_or_else(PoisonError::into_inner);
        if let Err(io) = cache.record_failure(&kernel.name(), &e.to_string()) {
            log::warn!("wgconv: could not save the tuning cache: {io}");
        }
    }

    /// Records one dispatch of `plan` with the storage `buffers` its kernel's family binds.
    pub(crate) fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        plan: &Plan,
        buffers: &[&wgpu::Buffer],
    ) {
        self.pipelines
            .encode(self.device.wgpu(), encoder, pipeline, plan, buffers);
    }

    /// Records `steps` (plans with their storage buffers) in one submission.
    pub(crate) fn submit_steps(
        &self,
        during: &str,
        steps: &[(Plan, &[&wgpu::Buffer])],
    ) -> Result<wgpu::SubmissionIndex> {
        let pipelines = steps
            .iter()
            .map(|(plan, _)| self.pipeline(plan))
            .collect::<Result<Vec<_>>>()?;
        let ((), submission) = self.device.submit(during, |encoder| {
            for ((plan, buffers), pipeline) in steps.iter().zip(&pipelines) {
                self.encode(encoder, pipeline, plan, buffers);
            }
        })?;
        Ok(submission)
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
        let bytes = plan::check_allocation("tensor", len, &self.limits())?;
        let buffer = self.device.scoped("allocating a tensor", || {
            self.device.buffer(
                "wgconv tensor",
                bytes,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            )
        })?;
        Ok(GpuTensor::new(buffer, shape.to_vec(), len, self.id()))
    }

    /// Copies a host tensor to the GPU.
    ///
    /// # Errors
    /// As [`Engine::alloc`].
    pub fn upload(&self, tensor: &Tensor) -> Result<GpuTensor> {
        let gpu = self.alloc(tensor.shape())?;
        if !tensor.is_empty() {
            self.device
                .write("uploading a tensor", gpu.buffer(), tensor.data())?;
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
            self.device
                .write("writing a tensor", target.buffer(), tensor.data())?;
        }
        Ok(())
    }

    blocking_and_async! {
        /// Copies a GPU tensor back to the host, waiting at most the engine's wait bound.
        ///
        /// # Errors
        /// [`Error::Timeout`], [`Error::DeviceLost`], [`Error::Readback`], [`Error::ForeignTensor`].
        download, download_async => download_with(tensor: &GpuTensor) -> Tensor
    }

    pub(crate) async fn download_with(&self, tensor: &GpuTensor, wait: Wait) -> Result<Tensor> {
        self.check_owner("tensor", tensor)?;
        let data = self
            .device
            .read(tensor.buffer(), tensor.len(), wait)
            .await?;
        Tensor::new(tensor.shape().to_vec(), data)
    }

    blocking_and_async! {
        /// Waits until all submitted GPU work has finished, at most the engine's wait bound.
        ///
        /// # Errors
        /// [`Error::Timeout`], [`Error::DeviceLost`].
        synchronize, synchronize_async => synchronize_with() -> ()
    }

    async fn synchronize_with(&self, wait: Wait) -> Result<()> {
        self.device.wait(None, "synchronize", wait).await
    }

    /// Waits for `submission` within the engine's bound, on this thread.
    ///
    /// In the browser nothing can block: the call returns at once, and the browser frees the
    /// temporaries when the work that uses them is done.
    pub(crate) fn wait_for(&self, submission: &wgpu::SubmissionIndex, during: &str) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return pollster::block_on(self.device.wait(Some(submission), during, Wait::Block));
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (submission, during);
            self.device.ensure_alive()
        }
    }

    /// Copies `len` f32 values from `from` at element `src` to `to` at element `dst`.
    pub(crate) fn copy_elements(
        &self,
        from: &GpuTensor,
        src: usize,
        to: &GpuTensor,
        dst: usize,
        len: usize,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let run = plan::CopyRun { src, dst, len };
        self.device.submit("copying a batch piece", |encoder| {
            copy(encoder, from.buffer(), to.buffer(), &[run]);
        })?;
        Ok(())
    }
}

/// Records `runs` (in f32 elements) as buffer-to-buffer copies.
pub(crate) fn copy(
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

/// The tuning cache's key for `adapter`.
fn adapter_key(adapter: &AdapterSummary) -> AdapterKey {
    AdapterKey::new(
        &adapter.name,
        &format!("{:?}", adapter.backend),
        &adapter.driver,
        &adapter.driver_info,
    )
}
