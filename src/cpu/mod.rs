//! Convolutions on the CPU: the independent f64 reference and the lecture's worked functions.

#[cfg(feature = "cpu-fast")]
pub mod fast;
#[cfg(feature = "ndarray")]
pub mod lecture;
pub mod reference;
