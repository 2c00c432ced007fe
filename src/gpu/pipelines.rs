//! The pipeline cache and the bind group layouts, one per family of kernels ([`Bindings`]).
//!
//! As candle-metal-kernels: pipelines keyed by (kernel with its specialization, workgroup size),
//! checked under a read lock, built under the write lock.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use wgpu::util::DeviceExt;

use crate::error::Result;
use crate::gpu::device::Device;
use crate::gpu::kernels::{Bindings, Kernel};
use crate::gpu::plan::Plan;

/// Compiled pipelines of one device, and the layouts they are bound with: per family its storage
/// buffers (see [`Bindings::storage`]) and the uniform block (`ConvUniforms`) at binding 4.
pub(crate) struct PipelineCache {
    layouts: HashMap<Bindings, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: RwLock<HashMap<(Kernel, u32), wgpu::ComputePipeline>>,
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
        }
    }

    fn layout(&self, family: Bindings) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        // Every family's layout is built in `new`.
        &self.layouts[&family]
    }

    /// The pipeline of `kernel` with `workgroup_size`, built on first use.
    ///
    /// # Errors
    /// The shader's validation error, out-of-memory or device loss while building it.
    pub(crate) fn get(
        &self,
        device: &Device,
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
        log::debug!(
            "wgconv: building pipeline {} with workgroup size {workgroup_size}",
            kernel.name()
        );
        let source = kernel.source();
        // The shared-memory kernel has a fixed workgroup size; the others take it as an override.
        let constants = [("WORKGROUP_SIZE", f64::from(workgroup_size))];
        let constants: &[(&str, f64)] = if kernel == Kernel::SharedTiled {
            &[]
        } else {
            &constants
        };
        let pipeline = device.scoped(&format!("building the {name} pipeline"), || {
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
                    layout: Some(&self.layout(kernel.bindings()).1),
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
