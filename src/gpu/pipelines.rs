//! The pipeline cache and the bind group layouts, one per family of kernels ([`Bindings`]).
//!
//! As candle-metal-kernels: pipelines keyed by (kernel with its specialization, workgroup size),
//! checked under a read lock, built under the write lock; each build runs on a worker thread
//! within the engine's pipeline-build bound.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::device::Device;
use crate::gpu::kernels::{Bindings, Kernel};
use crate::gpu::plan::Plan;

/// Compiled pipelines of one device, and the layouts they are bound with: per family its storage
/// buffers (see [`Bindings::storage`]) and the uniform block (`ConvUniforms`) at binding 4.
pub(crate) struct PipelineCache {
    layouts: HashMap<Bindings, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    // Built pipelines (the engine remembers the builds that failed, in its tuning cache).
    pipelines: RwLock<HashMap<(Kernel, u32), wgpu::ComputePipeline>>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    slow_builds: SlowBuilds,
}

impl PipelineCache {
    /// An empty cache with the layout of every family.
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = |family: Bindings| {
            let mut entries: Vec<_> = family
                .storage()
                .iter()
                .map(|&(binding, read_only)| {
                    entry(binding, wgpu::BufferBindingType::Storage { read_only })
                })
                .collect();
            entries.push(entry(4, wgpu::BufferBindingType::Uniform));
            let label = Some("wgconv");
            let bind_group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label,
                entries: &entries,
            });
            let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label,
                bind_group_layouts: &[Some(&bind_group)],
                immediate_size: 0,
            });
            (family, (bind_group, pipeline))
        };
        PipelineCache {
            layouts: Bindings::ALL.into_iter().map(layout).collect(),
            pipelines: RwLock::new(HashMap::new()),
            slow_builds: SlowBuilds::from_env(),
        }
    }

    fn layout(&self, family: Bindings) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        // Every family's layout is built in `new`.
        &self.layouts[&family]
    }

    /// The pipeline of `kernel` with `workgroup_size` if it is built already.
    pub(crate) fn cached(
        &self,
        kernel: Kernel,
        workgroup_size: u32,
    ) -> Option<wgpu::ComputePipeline> {
        self.pipelines
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(kernel, workgroup_size))
            .cloned()
    }

    /// The pipeline of `kernel` with `workgroup_size`, built on first use on a worker thread
    /// within `limit`, so that a driver stuck compiling cannot take the caller with it.
    ///
    /// # Errors
    /// [`Error::Timeout`] past `limit`; the shader's validation error, out-of-memory or device
    /// loss while building it.
    pub(crate) fn get(
        &self,
        device: &Arc<Device>,
        kernel: Kernel,
        workgroup_size: u32,
        limit: Duration,
    ) -> Result<wgpu::ComputePipeline> {
        let key = (kernel, workgroup_size);
        if let Some(p) = self.cached(kernel, workgroup_size) {
            return Ok(p);
        }
        let mut cache = self
            .pipelines
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        log::debug!(
            "wgconv: building pipeline {} with workgroup size {workgroup_size}",
            kernel.name()
        );
        #[cfg(target_arch = "wasm32")]
        let result = {
            // The browser compiles off the page's thread by itself; there is no thread to
            // start, and a build error is reported by the next wait (see `Device::scoped`).
            let _ = limit;
            self.build_here(device, kernel, workgroup_size)
        };
        #[cfg(not(target_arch = "wasm32"))]
        let result = self.build_bounded(device, kernel, workgroup_size, limit);
        if let Ok(pipeline) = &result {
            cache.insert(key, pipeline.clone());
        }
        result
    }

    /// Builds `kernel` on this thread, unbounded.
    fn build_here(
        &self,
        device: &Device,
        kernel: Kernel,
        workgroup_size: u32,
    ) -> Result<wgpu::ComputePipeline> {
        build(
            device,
            &self.layout(kernel.bindings()).1,
            kernel,
            workgroup_size,
        )
    }

    /// Builds `kernel` on a worker thread, waiting at most `limit` for it.
    #[cfg(not(target_arch = "wasm32"))]
    fn build_bounded(
        &self,
        device: &Arc<Device>,
        kernel: Kernel,
        workgroup_size: u32,
        limit: Duration,
    ) -> Result<wgpu::ComputePipeline> {
        let layout = self.layout(kernel.bindings()).1.clone();
        let (sender, receiver) = flume::bounded(1);
        let worker_device = Arc::clone(device);
        let delay = self.slow_builds.delay_for(kernel);
        let started = Instant::now();
        let spawned = std::thread::Builder::new()
            .name(format!("wgconv build {}", kernel.name()))
            .spawn(move || {
                if let Some(delay) = delay {
                    std::thread::sleep(delay);
                }
                // The receiver may be gone (the caller gave up): nothing to do then.
                let _ = sender.send(build(&worker_device, &layout, kernel, workgroup_size));
            });
        let result = match spawned {
            Ok(worker) => match receiver.recv_timeout(limit) {
                Ok(built) => {
                    // Joined, so the thread has ended (its thread-local driver state torn down,
                    // as libglvnd's EGL does at thread exit) before the caller goes on: a thread
                    // left ending while the process exits has crashed the GL driver at exit
                    // (a double free in its thread state; wgpu #4285). It has sent its result, so
                    // the join is immediate.
                    let _ = worker.join();
                    built
                }
                Err(_) => Err(Error::Timeout {
                    during: format!("building the {} pipeline", kernel.name()),
                    waited_ms: limit.as_millis(),
                    bound: "pipeline-build bound",
                }),
            },
            // No thread to spare: build here, unbounded, rather than fail.
            Err(_) => self.build_here(device, kernel, workgroup_size),
        };
        match &result {
            Ok(_) => log::debug!(
                "wgconv: built {} in {} ms",
                kernel.name(),
                started.elapsed().as_millis()
            ),
            Err(e) => log::warn!("wgconv: the {} pipeline did not build: {e}", kernel.name()),
        }
        result
    }

    /// Records one dispatch of `plan` with `buffers` at its family's storage bindings (see
    /// [`Bindings::storage`]) and the plan's uniforms at 4.
    pub(crate) fn encode(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        plan: &Plan,
        buffers: &[&wgpu::Buffer],
    ) {
        let family = plan.kernel.bindings();
        debug_assert_eq!(buffers.len(), family.storage().len(), "{family:?} buffers");
        // A plain buffer, not an OwnedBuffer: it is dropped here, before the submission that
        // uses it (a hundred bytes or so; the browser's garbage collector frees it).
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgconv params"),
            contents: bytemuck::bytes_of(&plan.uniforms),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries: Vec<wgpu::BindGroupEntry> = family
            .storage()
            .iter()
            .zip(buffers)
            .map(|(&(binding, _), b)| wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: 4,
            resource: uniforms.as_entire_binding(),
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(plan.kernel.file_name()),
            layout: &self.layout(family).0,
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
}

/// Compiles `kernel`'s shader and pipeline with `workgroup_size` inside the device's error scopes.
fn build(
    device: &Device,
    layout: &wgpu::PipelineLayout,
    kernel: Kernel,
    workgroup_size: u32,
) -> Result<wgpu::ComputePipeline> {
    let name = kernel.file_name();
    let source = kernel.source();
    // The shared-memory kernel has a fixed workgroup size; the others take it as an override.
    let constants = [("WORKGROUP_SIZE", f64::from(workgroup_size))];
    let constants: &[(&str, f64)] = if kernel == Kernel::SharedTiled {
        &[]
    } else {
        &constants
    };
    device.scoped(&format!("building the {} pipeline", kernel.name()), || {
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
            device
                .wgpu()
                .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
        device
            .wgpu()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(layout),
                module: &module,
                entry_point: Some(kernel.entry_point()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
    })
}

/// Builds slowed down on purpose, to test the build bound and the fallback without a driver that
/// hangs: `WGCONV_SLOW_PIPELINES=<kernel name prefix>:<milliseconds>[,...]` (a test hook; the
/// variable is read once per engine).
#[derive(Clone, Debug, Default)]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
struct SlowBuilds(Vec<(String, Duration)>);

impl SlowBuilds {
    fn from_env() -> Self {
        let spec = std::env::var("WGCONV_SLOW_PIPELINES").unwrap_or_default();
        SlowBuilds(
            spec.split(',')
                .filter_map(|item| {
                    let (prefix, ms) = item.trim().rsplit_once(':')?;
                    Some((prefix.to_string(), Duration::from_millis(ms.parse().ok()?)))
                })
                .collect(),
        )
    }

    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    fn delay_for(&self, kernel: Kernel) -> Option<Duration> {
        let name = kernel.name();
        self.0
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|&(_, delay)| delay)
    }
}

/// Whether `e` is a pipeline that did not build (ran past its bound, or the driver refused it),
/// as opposed to a problem of the device or of the call: the planner may fall back then.
pub(crate) fn is_build_failure(e: &Error) -> bool {
    match e {
        Error::Timeout { during, .. }
        | Error::Validation { during, .. }
        | Error::OutOfMemory { during } => during.starts_with("building the "),
        Error::PipelineBuild { .. } => true,
        _ => false,
    }
}
