//! `GpuTensor`: an f32 tensor living in a GPU storage buffer of one [`Engine`](crate::Engine).

use crate::gpu::buffer::OwnedBuffer;
use crate::spec::Shaped;

/// Shared ownership of a tensor's buffer: `Arc` natively (tensors are `Send + Sync`); in the
/// browser, where wgpu's buffers are neither, `Rc`.
#[cfg(not(target_arch = "wasm32"))]
type Shared<T> = std::sync::Arc<T>;
#[cfg(target_arch = "wasm32")]
type Shared<T> = std::rc::Rc<T>;

impl Shaped for GpuTensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}

/// A C-order f32 tensor in GPU memory, created by an [`Engine`](crate::Engine) and usable only with it.
///
/// Keep weights and activations here to chain convolutions without host round trips.
#[derive(Debug)]
pub struct GpuTensor {
    // Shared only with the views wgconv makes of it for one call (a conv1d's input seen as a
    // conv2d's of height 1), so the buffer lives until the last of them is dropped.
    buffer: Shared<OwnedBuffer>,
    shape: Vec<usize>,
    len: usize,
    engine_id: u64,
}

impl GpuTensor {
    pub(crate) fn new(buffer: OwnedBuffer, shape: Vec<usize>, len: usize, engine_id: u64) -> Self {
        GpuTensor {
            buffer: Shared::new(buffer),
            shape,
            len,
            engine_id,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The same elements under another shape of as many elements (`[N, C, L]` as
    /// `[N, C, 1, L]`), sharing the buffer: what the lowered calls hand to the conv2d paths.
    pub(crate) fn view(&self, shape: &[usize]) -> GpuTensor {
        // An empty tensor's other dimensions may be absurd: its product is 0 however they are.
        let len = if shape.contains(&0) {
            Some(0)
        } else {
            shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        debug_assert_eq!(len, Some(self.len));
        GpuTensor {
            buffer: Shared::clone(&self.buffer),
            shape: shape.to_vec(),
            len: self.len,
            engine_id: self.engine_id,
        }
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
    pub(crate) packed: Option<OwnedBuffer>,
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
