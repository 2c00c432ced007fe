//! `GpuTensor`: an f32 tensor living in a GPU storage buffer of one [`Engine`](crate::Engine).

use crate::error::Result;
use crate::spec::{Conv2dParams, Conv2dShape, ConvTranspose2dParams, ConvTranspose2dShape};
use crate::tensor::Tensor;

/// A tensor on either side, for the shape checks the GPU calls share.
pub(crate) trait Shaped {
    fn dims(&self) -> &[usize];
}

impl Shaped for Tensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}

impl Shaped for GpuTensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}

/// Parameters that validate a (transposed) convolution of tensors into its shape.
pub(crate) trait ConvParams {
    /// The validated problem.
    type Shape;
    /// The problem of `input` by `weight` (and `bias`) with these parameters.
    fn shape_of<T: Shaped>(&self, input: &T, weight: &T, bias: Option<&T>) -> Result<Self::Shape>;
}

impl ConvParams for Conv2dParams {
    type Shape = Conv2dShape;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<Conv2dShape> {
        Conv2dShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}

impl ConvParams for ConvTranspose2dParams {
    type Shape = ConvTranspose2dShape;
    fn shape_of<T: Shaped>(&self, x: &T, w: &T, b: Option<&T>) -> Result<ConvTranspose2dShape> {
        ConvTranspose2dShape::new(x.dims(), w.dims(), b.map(T::dims), self)
    }
}

/// A C-order f32 tensor in GPU memory, created by an [`Engine`](crate::Engine) and usable only with it.
///
/// Keep weights and activations here to chain convolutions without host round trips.
#[derive(Debug)]
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
    len: usize,
    engine_id: u64,
}

impl GpuTensor {
    pub(crate) fn new(buffer: wgpu::Buffer, shape: Vec<usize>, len: usize, engine_id: u64) -> Self {
        GpuTensor {
            buffer,
            shape,
            len,
            engine_id,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Id of the engine that owns it.
    pub fn engine_id(&self) -> u64 {
        self.engine_id
    }

    /// The underlying storage buffer (at least 4 bytes, even when empty).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// Convolution weights packed once into the layout the implicit-GEMM kernels read, so repeated
/// inference pays the transform once. Keeps the OIHW tensor too, for the kernels that read it
/// (weights too large for one storage binding stay unpacked; convolutions over them are split).
#[derive(Debug)]
pub struct PackedWeights {
    pub(crate) weight: GpuTensor,
    pub(crate) packed: Option<wgpu::Buffer>,
    pub(crate) groups: usize,
}

impl PackedWeights {
    /// The OIHW weight shape `[O, C/groups, kh, kw]`.
    pub fn shape(&self) -> &[usize] {
        self.weight.shape()
    }

    /// The groups the weights were packed for.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The OIHW weights.
    pub fn weight(&self) -> &GpuTensor {
        &self.weight
    }

    /// Id of the engine that owns them.
    pub fn engine_id(&self) -> u64 {
        self.weight.engine_id()
    }
}
