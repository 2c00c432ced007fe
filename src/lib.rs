#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "ndarray")]
pub mod array;
#[cfg(feature = "files")]
pub mod atomic;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cpu;
pub mod error;
#[cfg(feature = "files")]
pub mod files;
#[cfg(any(feature = "image", feature = "web"))]
pub mod filter;
pub mod gpu;
#[cfg(feature = "ndarray")]
pub mod io;
pub mod layer;
#[cfg(feature = "ndarray")]
pub mod lessons;
pub mod memory;
pub mod spec;
pub mod tensor;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

/// The wgpu this crate is built on, so `EngineOptions { backends: Some(wgconv::wgpu::Backends::VULKAN), .. }`
/// needs no dependency of its own.
pub use wgpu;

pub use error::{Error, Result};
pub use gpu::backward::Conv2dGrads;
#[cfg(not(target_arch = "wasm32"))]
pub use gpu::device::list_adapters;
pub use gpu::device::{AdapterSummary, EngineOptions};
pub use gpu::engine::Engine;
pub use gpu::forward::Weights;
pub use gpu::plan::Algorithm;
pub use gpu::tensor::{GpuTensor, PackedWeights};
pub use spec::{
    conv_output_len, output_shape, Activation, Conv1dParams, Conv2dParams, Conv2dShape,
    Conv3dParams, ConvNdParams, ConvNdShape, ConvTranspose1dParams, ConvTranspose2dParams,
    ConvTranspose2dShape, ConvTranspose3dParams, ConvTransposeNdParams, ConvTransposeNdShape,
    IntoPair, Padding, PaddingMode, PaddingNd,
};
pub use tensor::Tensor;
