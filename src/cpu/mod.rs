//! Convolutions on the CPU: the independent f64 reference and the lecture's worked functions.

pub mod fast;
pub mod lecture;
pub mod reference;
