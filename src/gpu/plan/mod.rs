//! Planning: which kernels run a call, with which dispatch, split into which pieces; all
//! computed on the host with checked arithmetic before any GPU work is recorded, so a problem the
//! shaders cannot index, or the device cannot hold, is refused with a typed error.
//!
//! - [`forward`]: kernel choice and tiles for one convolution, and the [`Execution`] of a call;
//! - [`fold`]: a 3D convolution's depth fold as buffer copies, where that is cheaper;
//! - [`split`]: cutting a problem too large for one dispatch, binding or buffer into pieces;
//! - `gpu_kernels`: the forced-only kernels for real GPUs (128x128 implicit GEMM, depthwise);
//! - [`backward`]: the strategies of the transposed convolution and the split reductions.

pub mod backward;
pub mod dispatch;
pub mod fold;
pub mod forward;
mod gpu_kernels;
pub mod split;

pub use dispatch::{
    check_allocation, check_buffer, flat, index_u32, uniforms_of, Algorithm, Plan, PlanLimits,
};
pub use forward::{choose_kernel, execution, pack_plan, plan, schedule, ConvDispatch, Execution};
pub use split::{choose_split, host_pieces, pieces, CopyRun, Piece, Split};
