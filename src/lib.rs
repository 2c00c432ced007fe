#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "ndarray")]
pub mod array;
pub mod atomic;
pub mod bench;
pub mod cpu;
pub mod error;
pub mod files;
#[cfg(feature = "image")]
pub mod filter;
pub mod gpu;
#[cfg(feature = "ndarray")]
pub mod io;
pub mod layer;
pub mod memory;
pub mod report;
pub mod spec;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::backward::Conv2dGrads;
pub use gpu::engine::{list_adapters, AdapterSummary, Engine, EngineOptions};
pub use gpu::plan::Algorithm;
pub use gpu::tensor::{GpuTensor, PackedWeights};
pub use spec::{
    conv_output_len, output_shape, Conv2dParams, Conv2dShape, ConvTranspose2dParams,
    ConvTranspose2dShape, IntoPair, Padding,
};
pub use tensor::Tensor;
