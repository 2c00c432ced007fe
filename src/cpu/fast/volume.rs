//! The fair CPU baseline's 3D convolution without its activation: the depth folded into a 2D
//! problem that the caller's 2D convolution (the GEMM of [`conv3d`](super::conv3d)) computes.

use crate::error::{Error, Result};
use crate::spec::{Conv2dParams, Conv3dParams, ConvParams as _};
use crate::tensor::Tensor;

/// [`conv3d`](super::conv3d) without its activation, with `conv2d` for the folded problem.
pub(super) fn conv3d_linear(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: &Conv3dParams,
    conv2d: impl Fn(&Tensor, &Tensor, Option<&Tensor>, &Conv2dParams) -> Result<Tensor>,
) -> Result<Tensor> {
    let s = params.shape_of(input, weight, bias)?;
    let folded = s.folded().ok_or_else(|| Error::SizeOverflow {
        what: format!("the folded 2D problem of {:?}", s.input_shape()),
    })?;
    let ([d, h, w], [od, p, q], kd) = (s.input, s.output, s.kernel[0]);
    let (c, o, cg) = (s.in_channels, s.out_channels, s.in_channels / s.groups);
    let (plane, taps) = (h * w, s.kernel[1] * s.kernel[2]);
    let mut xf = crate::memory::try_vec(folded.input_len(), 0.0f32, || {
        format!("the depth-folded input {:?}", folded.input_shape())
    })?;
    for (index, out) in xf.chunks_mut(plane.max(1)).enumerate() {
        // Plane `index` of [N*OD, KD*C, H, W] is (image m, folded channel cf).
        let (m, cf) = (index / (kd * c), index % (kd * c));
        let (n, od_at) = (m / od, m % od);
        let (g, a, ci) = (cf / (kd * cg), (cf / cg) % kd, cf % cg);
        let padded = (od_at * s.stride[0] + a * s.dilation[0]) as i64;
        if let Some(depth) = s.padding_mode.source(padded - s.padding[0][0] as i64, d) {
            let src = ((n * c + g * cg + ci) * d + depth) * plane;
            out.copy_from_slice(&input.data()[src..src + plane]);
        }
    }
    let mut wf = vec![0.0f32; weight.len()];
    for (index, out) in wf.chunks_mut(taps).enumerate() {
        // Kernel plane `index` of [O, KD*Cg, kh, kw] is (o, a*Cg + ci) of [O, Cg, KD, kh, kw].
        let (oc, a, ci) = (index / (kd * cg), (index / cg) % kd, index % cg);
        let src = ((oc * cg + ci) * kd + a) * taps;
        out.copy_from_slice(&weight.data()[src..src + taps]);
    }
    let yf = conv2d(
        &Tensor::new(folded.input_shape(), xf)?,
        &Tensor::new(folded.weight_shape(), wf)?,
        bias,
        &folded.params(),
    )?;
    let out_plane = p * q;
    let mut y = vec![0.0f32; yf.len()];
    for (index, out) in y.chunks_mut(out_plane.max(1)).enumerate() {
        // Plane `index` of [N, O, OD, P, Q] is plane (n*OD + od, o) of [N*OD, O, P, Q].
        let (n, oc, od_at) = (index / (o * od), (index / od) % o, index % od);
        let src = ((n * od + od_at) * o + oc) * out_plane;
        out.copy_from_slice(&yf.data()[src..src + out_plane]);
    }
    Tensor::new(s.output_shape(), y)
}
