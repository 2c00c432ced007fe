//! `ndarray` in and out: `ArrayView4`/`Array4` for the one-shot call and for GPU tensors.
//!
//! Views of any layout are accepted: a transposed or sliced view is copied in logical order, so
//! the result is what the view means, never a reinterpretation of its memory.
//!
//! ```
//! use ndarray::Array4;
//! use wgconv::{Conv2dParams, Engine};
//! # fn main() -> wgconv::Result<()> {
//! let engine = Engine::new()?;
//! let x = Array4::<f32>::ones((1, 3, 8, 8));
//! let w = Array4::<f32>::ones((4, 3, 3, 3));
//! let y = engine.conv2d_array(x.view(), w.view(), None, &Conv2dParams::default().with_padding(1))?;
//! assert_eq!(y.dim(), (1, 4, 8, 8));
//! assert_eq!(y[[0, 0, 4, 4]], 27.0);
//! # Ok(())
//! # }
//! ```

use ndarray::{Array4, ArrayBase, ArrayView1, ArrayView4, Data, Dimension, Ix4};

use crate::error::{Error, Result};
use crate::gpu::engine::{blocking_and_async, Engine};
use crate::gpu::tensor::GpuTensor;
use crate::spec::Conv2dParams;
use crate::tensor::Tensor;

fn to_array4(t: Tensor) -> Result<Array4<f32>> {
    let shape = t.shape().to_vec();
    t.into_ndarray()
        .into_dimensionality::<Ix4>()
        .map_err(|_| Error::InputRank {
            op: "conv2d",
            expected: "4D (batched)".into(),
            shape,
        })
}

impl Engine {
    blocking_and_async! {
        /// One-shot convolution of `ndarray` views: `[N, C, H, W]` with `[O, C/groups, kh, kw]`
        /// (and bias `[O]`) to `[N, O, P, Q]`.
        ///
        /// # Errors
        /// As [`Engine::conv2d`].
        self.conv2d_array, conv2d_array_async(
            input: ArrayView4<'_, f32>,
            weight: ArrayView4<'_, f32>,
            bias: Option<ArrayView1<'_, f32>>,
            params: &Conv2dParams
        ) -> Array4<f32>,
        |wait| {
            let (x, w) = (Tensor::from_ndarray(&input), Tensor::from_ndarray(&weight));
            let bias = bias.map(|b| Tensor::from_ndarray(&b));
            to_array4(self.conv2d_with(&x, &w, bias.as_ref(), None, params, wait).await?)
        }
    }

    /// Uploads an array or view of any layout and dimension.
    ///
    /// # Errors
    /// As [`Engine::upload`].
    pub fn upload_array<S: Data<Elem = f32>, D: Dimension>(
        &self,
        array: &ArrayBase<S, D>,
    ) -> Result<GpuTensor> {
        self.upload(&Tensor::from_ndarray(array))
    }

    /// Downloads a 4D GPU tensor as an `Array4`.
    ///
    /// # Errors
    /// As [`Engine::download`], and [`Error::InputRank`] when the tensor is not 4D.
    pub fn download_array4(&self, tensor: &GpuTensor) -> Result<Array4<f32>> {
        to_array4(self.download(tensor)?)
    }
}
