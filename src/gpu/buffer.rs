//! [`OwnedBuffer`]: a wgpu buffer that is destroyed when its owner drops it.

use std::ops::Deref;

/// A buffer wgconv created and owns: tensors, packed weights, temporaries, uniforms, readback.
///
/// Natively dropping a `wgpu::Buffer` frees it. In the browser wgpu 30 leaves a dropped buffer to
/// JavaScript's garbage collector, so GPU memory would pile up between collections; there this
/// wrapper destroys the buffer when dropped (WebGPU destroys it once the work already submitted
/// with it is done). Everything else is the buffer itself.
#[derive(Debug)]
pub(crate) struct OwnedBuffer(wgpu::Buffer);

impl OwnedBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer) -> Self {
        OwnedBuffer(buffer)
    }
}

impl Deref for OwnedBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.0
    }
}

#[cfg(target_arch = "wasm32")]
impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        self.0.destroy();
    }
}
