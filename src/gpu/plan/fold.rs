//! The depth fold of a 3D convolution (shaders/fold_depth.wgsl) as buffer copies, where that is
//! cheaper than a kernel: every plane of the folded input is one input plane (or, in the depth
//! padding under zeros, a plane of zeros), and every plane of the output one plane of the folded
//! output, so small counts of large planes move as copies (a memcpy on CPU adapters) instead of
//! row by row through a shader.

use crate::gpu::plan::CopyRun;
use crate::spec::{ConvNdShape, PaddingMode};

/// At most this many planes are moved as copies, each one command.
pub const MAX_COPIES: usize = 4096;

/// Planes of fewer elements go through the kernel (a copy command costs more than it moves).
pub const MIN_PLANE: usize = 256;

/// The depth that padded depth `c` of an axis of `n` reads under `mode`, `None` for a zero.
/// Twin: `pad_source` in shaders/conv_params.wgsl.
fn depth_source(c: i64, n: i64, mode: PaddingMode) -> Option<i64> {
    let read = if (0..n).contains(&c) {
        c
    } else {
        match mode {
            PaddingMode::Zeros => return None,
            PaddingMode::Reflect if c < 0 => -c,
            PaddingMode::Reflect => 2 * (n - 1) - c,
            PaddingMode::Replicate => c.clamp(0, n - 1),
            PaddingMode::Circular if c < 0 => c + n,
            PaddingMode::Circular => c - n,
        }
    };
    (0..n).contains(&read).then_some(read)
}

/// The folded input of `shape`'s folded images `images` (`n*OD + od`), in f32 elements of the
/// input and of the piece's folded input `[images, KD*C, H, W]`, as `(copies, zero planes)`:
/// plane `(m, g*KD*Cg + a*Cg + ci)` is input plane `(n, g*Cg + ci)` at depth
/// `od*sd + a*dd - front` (what the padding mode reads there), or zeros. `None` when the planes are
/// too many or too small to be worth copying.
pub fn fold_input_runs(
    shape: &ConvNdShape<3>,
    images: std::ops::Range<usize>,
) -> Option<(Vec<CopyRun>, Vec<CopyRun>)> {
    let [d_len, h, w] = shape.input;
    let plane = h * w;
    let (c, kd, groups) = (shape.in_channels, shape.kernel[0], shape.groups);
    let count = images.len().checked_mul(kd)?.checked_mul(c)?;
    if count > MAX_COPIES || plane < MIN_PLANE {
        return None;
    }
    let cg = c / groups;
    let od_len = shape.output[0];
    let (mut copies, mut zeros) = (Vec::new(), Vec::new());
    for (k, m) in images.enumerate() {
        let (n, od) = (m / od_len, m % od_len);
        for cf in 0..kd * c {
            let (g, a, ci) = (cf / (kd * cg), (cf / cg) % kd, cf % cg);
            let padded =
                (od * shape.stride[0] + a * shape.dilation[0]) as i64 - shape.padding[0][0] as i64;
            let dst = (k * kd * c + cf) * plane;
            match depth_source(padded, d_len as i64, shape.padding_mode) {
                Some(d) => {
                    let src = ((n * c + g * cg + ci) * d_len + d as usize) * plane;
                    copies.push(CopyRun {
                        src,
                        dst,
                        len: plane,
                    });
                }
                None => zeros.push(CopyRun {
                    src: 0,
                    dst,
                    len: plane,
                }),
            }
        }
    }
    Some((copies, zeros))
}

/// The output of `shape`'s folded images `images` from the piece's folded output
/// `[images, O, P, Q]`: plane `(m, o)` is output plane `(n, o)` at depth `od`. `None` when the
/// planes are too many or too small (as [`fold_input_runs`]).
pub fn unfold_output_runs(
    shape: &ConvNdShape<3>,
    images: std::ops::Range<usize>,
) -> Option<Vec<CopyRun>> {
    let [od_len, p, q] = shape.output;
    let plane = p * q;
    let o = shape.out_channels;
    if images.len().checked_mul(o)? > MAX_COPIES || plane < MIN_PLANE {
        return None;
    }
    let mut runs = Vec::new();
    for (k, m) in images.enumerate() {
        let (n, od) = (m / od_len, m % od_len);
        for oc in 0..o {
            runs.push(CopyRun {
                src: (k * o + oc) * plane,
                dst: ((n * o + oc) * od_len + od) * plane,
                len: plane,
            });
        }
    }
    Some(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_source_reads_what_each_mode_puts_in_the_padding() {
        let row = |mode| {
            (-3..7)
                .map(|c| depth_source(c, 4, mode))
                .collect::<Vec<_>>()
        };
        let some = |v: &[i64]| v.iter().map(|&d| Some(d)).collect::<Vec<_>>();
        let mut zeros = vec![None; 3];
        zeros.extend(some(&[0, 1, 2, 3]));
        zeros.extend([None; 3]);
        assert_eq!(row(PaddingMode::Zeros), zeros);
        assert_eq!(
            row(PaddingMode::Reflect),
            some(&[3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
        );
        assert_eq!(
            row(PaddingMode::Replicate),
            some(&[0, 0, 0, 0, 1, 2, 3, 3, 3, 3])
        );
        assert_eq!(
            row(PaddingMode::Circular),
            some(&[1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
        );
    }
}
