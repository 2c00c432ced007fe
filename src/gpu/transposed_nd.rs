//! Transposed convolutions over 1 and 3 spatial axes (PyTorch's `conv_transpose1d` and
//! `conv_transpose3d`). A 1D one runs as the 2D one of height 1 (src/gpu/transposed.rs), as
//! PyTorch runs it; a 3D one as the input gradient of the convolution it transposes, through the
//! depth fold of src/gpu/conv3d.rs: input and weight folded, the folded 2D transposed convolution
//! (with its fast paths and splitting), then summed back over the depth taps, starting from the
//! bias (shaders/fold_depth.wgsl).

use crate::error::Result;
use crate::gpu::engine::{blocking_and_async, Engine};
use crate::gpu::kernels::Kernel;
use crate::gpu::plan::{self, Algorithm};
use crate::gpu::tensor::GpuTensor;
use crate::spec::{
    ConvParams as _, ConvTranspose1dParams, ConvTranspose2dShape, ConvTranspose3dParams,
};
use crate::tensor::Tensor;

impl Engine {
    /// 1D transposed convolution of GPU tensors (PyTorch's `conv_transpose1d`): input
    /// `[N, Ci, L]` (or unbatched `[Ci, L]`), weight `[Ci, Co/groups, k]`, bias `[Co]`, into a new
    /// tensor `[N, Co, L_out]` with `L_out = (L-1)*stride - 2*padding + dilation*(k-1) +
    /// output_padding + 1`.
    ///
    /// # Errors
    /// Every error of [`ConvTransposeNdShape::new`](crate::ConvTransposeNdShape::new),
    /// [`Error::ForeignTensor`](crate::Error::ForeignTensor), size and GPU errors.
    pub fn conv_transpose1d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &ConvTranspose1dParams,
    ) -> Result<GpuTensor> {
        let t = params.shape_of(input, weight, bias)?;
        let flat = t.as_transposed2d();
        let x = input.view(&flat.input_shape());
        let w = weight.view(&flat.weight_shape());
        let y = self.transposed(&flat, &x, &w, bias)?;
        Ok(y.view(&t.output_shape()))
    }

    /// 3D transposed convolution of GPU tensors (PyTorch's `conv_transpose3d`): input
    /// `[N, Ci, D, H, W]` (or unbatched), weight `[Ci, Co/groups, kd, kh, kw]`, bias `[Co]`, into a
    /// new tensor `[N, Co, OD, OH, OW]`, each length as for [`Engine::conv_transpose1d_gpu`].
    ///
    /// # Errors
    /// Every error of [`ConvTransposeNdShape::new`](crate::ConvTransposeNdShape::new),
    /// [`Error::ForeignTensor`](crate::Error::ForeignTensor), [`Error::DeviceLimit`](crate::Error::DeviceLimit)
    /// when the folded tensors of one 3D image do not fit one binding (larger batches run over
    /// pieces of whole images), size and GPU errors.
    pub fn conv_transpose3d_gpu(
        &self,
        input: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &ConvTranspose3dParams,
    ) -> Result<GpuTensor> {
        for (what, t) in [
            ("input", Some(input)),
            ("weight", Some(weight)),
            ("bias", bias),
        ] {
            if let Some(t) = t {
                self.check_owner(what, t)?;
            }
        }
        let t = params.shape_of(input, weight, bias)?;
        if t.output_len() == 0 {
            return self.alloc(&t.output_shape());
        }
        // The convolution this transposes: its input is this output, its output this input.
        let conv = t.forward();
        // Folded tensors past one binding: over pieces of whole 3D images of the batch, each
        // placed in the output (one image too large is the whole problem's DeviceLimit below).
        let (folded, images) = self.conv3d_plan(&conv, Algorithm::Auto, false)?;
        let per_piece = images / conv.output[0].max(1);
        if images < folded.batch && per_piece >= 1 {
            let mut batched_in = t.input_shape();
            let mut batched_out = t.output_shape();
            if t.unbatched {
                batched_in.insert(0, 1);
                batched_out.insert(0, 1);
            }
            let out = self.alloc(&t.output_shape())?;
            let per_image = out.len() / t.batch;
            for range in plan::split::batch_ranges(t.batch, per_piece) {
                let x = self.batch_slice(&input.view(&batched_in), &range)?;
                let y = self.conv_transpose3d_gpu(&x, weight, bias, params)?;
                self.copy_elements(&y, 0, &out, range.start * per_image, y.len())?;
            }
            return Ok(out);
        }
        let (folded, _) = self.conv3d_plan(&conv, Algorithm::Auto, true)?;
        let w = self.fold_pass(Kernel::FoldWeight, &conv, weight, &folded.weight_shape())?;
        let x = self.fold_pass(Kernel::FoldOutput, &conv, input, &folded.output_shape())?;
        // The folded problem's own output padding is in its sizes (its output is this one's
        // height and width).
        let unit = ConvTranspose2dShape::input_gradient_of(&folded);
        let y = self.transposed(&unit, &x, &w, None)?;
        self.unfold_input_grad(&conv, &y, bias, &t.output_shape())
    }

    blocking_and_async! {
        /// One-shot 1D transposed convolution: host tensors in, host tensor out.
        ///
        /// # Errors
        /// As [`Engine::conv_transpose1d_gpu`] and [`Engine::download`].
        self.conv_transpose1d, conv_transpose1d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &ConvTranspose1dParams
        ) -> Tensor,
        |wait| {
            // Validated before anything is uploaded.
            params.shape_of(input, weight, bias)?;
            let (x, w, b) = self.upload_operands(input, weight, bias)?;
            let y = self.conv_transpose1d_gpu(&x, &w, b.as_ref(), params)?;
            self.download_with(&y, wait).await
        }
    }

    blocking_and_async! {
        /// One-shot 3D transposed convolution: host tensors in, host tensor out.
        ///
        /// # Errors
        /// As [`Engine::conv_transpose3d_gpu`] and [`Engine::download`].
        self.conv_transpose3d, conv_transpose3d_async(
            input: &Tensor,
            weight: &Tensor,
            bias: Option<&Tensor>,
            params: &ConvTranspose3dParams
        ) -> Tensor,
        |wait| {
            // Validated (and the fold checked against the device) before anything is uploaded.
            let t = params.shape_of(input, weight, bias)?;
            if t.output_len() > 0 {
                self.conv3d_plan(&t.forward(), Algorithm::Auto, false)?;
            }
            let (x, w, b) = self.upload_operands(input, weight, bias)?;
            let y = self.conv_transpose3d_gpu(&x, &w, b.as_ref(), params)?;
            self.download_with(&y, wait).await
        }
    }

    /// Uploads an input, a weight and an optional bias.
    fn upload_operands(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<(GpuTensor, GpuTensor, Option<GpuTensor>)> {
        let b = bias.map(|b| self.upload(b)).transpose()?;
        Ok((self.upload(input)?, self.upload(weight)?, b))
    }
}
