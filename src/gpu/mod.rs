//! The GPU path, one way down: [`plan`] decides (kernels, dispatches, pieces) on the host;
//! [`engine`] records what was planned on its [`device`] with the [`pipelines`] it caches; the
//! operations come by family: [`forward`], [`conv1d`], [`conv3d`], [`transposed`], [`transposed_nd`], [`true_conv`], [`backward`], [`training`].

pub mod backward;
#[cfg(target_arch = "wasm32")]
pub(crate) mod browser;
pub(crate) mod buffer;
pub mod by_rank;
pub mod codegen;
pub mod conv1d;
pub mod conv3d;
pub mod device;
pub mod engine;
pub mod forward;
pub mod info;
pub mod kernels;
pub(crate) mod pieces;
pub mod pipelines;
pub mod plan;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod polling;
pub mod profile;
pub mod tensor;
pub mod training;
pub mod transposed;
pub mod transposed_nd;
pub mod true_conv;
// Blocking and timed with `Instant`: not in the browser (the planner's choices run there).
#[cfg(not(target_arch = "wasm32"))]
pub mod tuner;
pub mod tuning;
