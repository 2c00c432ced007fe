//! The GPU path: engine (adapter, device, pipelines, waits), tensors, planning and kernels.

pub mod backward;
pub mod codegen;
pub mod engine;
pub mod kernels;
pub mod plan;
pub mod tensor;
