//! The GPU path, one way down: [`plan`] decides (kernels, dispatches, pieces) on the host;
//! [`engine`] records what was planned on its [`device`] with the [`pipelines`] it caches; the
//! operations come by family: [`forward`], [`transposed`], [`backward`], [`training`].

pub mod backward;
pub mod codegen;
pub mod device;
pub mod engine;
pub mod forward;
pub mod info;
pub mod kernels;
pub mod pipelines;
pub mod plan;
pub mod profile;
pub mod tensor;
pub mod training;
pub mod transposed;
pub mod tuner;
pub mod tuning;
