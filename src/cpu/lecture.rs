//! The worked functions of *Dive into Deep Learning*'s convolution chapter, in Rust.
//!
//! They are written the way the lecture writes them (window sums, stacking, a matrix product), so a
//! reader can follow the book side by side; tests check them against the general reference.
//!
//! ```
//! use ndarray::array;
//! use wgconv::cpu::lecture::corr2d;
//! let x = array![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]];
//! let k = array![[0.0, 1.0], [2.0, 3.0]];
//! assert_eq!(corr2d(x.view(), k.view()).unwrap(), array![[19.0, 25.0], [37.0, 43.0]]);
//! ```

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayView4, Axis};

use crate::error::{Error, Result};

/// 2D cross-correlation: `Y[i, j] = sum(X[i..i+h, j..j+w] * K)` for a `h x w` kernel `K`.
///
/// # Errors
/// [`Error::KernelTooLarge`] when `K` is larger than `X`; [`Error::EmptyDimension`] for an empty `K`.
pub fn corr2d(x: ArrayView2<f32>, k: ArrayView2<f32>) -> Result<Array2<f32>> {
    let (h, w) = k.dim();
    if h == 0 || w == 0 {
        return Err(Error::EmptyDimension {
            what: "weight",
            shape: vec![h, w],
        });
    }
    let (xh, xw) = x.dim();
    if h > xh || w > xw {
        return Err(Error::KernelTooLarge {
            padded: vec![xh, xw],
            kernel: vec![h, w],
        });
    }
    let mut y = Array2::zeros((xh - h + 1, xw - w + 1));
    for ((i, j), out) in y.indexed_iter_mut() {
        *out = (&x.slice(s![i..i + h, j..j + w]) * &k).sum();
    }
    Ok(y)
}

/// Multiple input channels: cross-correlate each channel of `X` `[c, h, w]` with the matching
/// channel of `K` `[c, kh, kw]` and add the results.
///
/// # Errors
/// [`Error::ChannelMismatch`] when `X` and `K` have different channel counts; errors of [`corr2d`].
pub fn corr2d_multi_in(x: ArrayView3<f32>, k: ArrayView3<f32>) -> Result<Array2<f32>> {
    let (c, kh, kw) = k.dim();
    if x.dim().0 != c {
        return Err(Error::ChannelMismatch {
            groups: 1,
            weight: vec![1, c, kh, kw],
            input: x.shape().to_vec(),
            expected: c,
            got: x.dim().0,
        });
    }
    let mut channels = x.outer_iter().zip(k.outer_iter());
    let Some((x0, k0)) = channels.next() else {
        return Err(Error::EmptyDimension {
            what: "input",
            shape: x.shape().to_vec(),
        });
    };
    let mut sum = corr2d(x0, k0)?;
    for (xc, kc) in channels {
        sum += &corr2d(xc, kc)?;
    }
    Ok(sum)
}

/// Multiple output channels: one [`corr2d_multi_in`] per kernel in `K` `[co, ci, kh, kw]`,
/// stacked into `[co, h', w']`.
///
/// # Errors
/// As [`corr2d_multi_in`].
pub fn corr2d_multi_in_out(x: ArrayView3<f32>, k: ArrayView4<f32>) -> Result<Array3<f32>> {
    let mut planes = k.outer_iter().map(|ko| corr2d_multi_in(x, ko));
    let Some(first) = planes.next() else {
        return Err(Error::EmptyDimension {
            what: "weight",
            shape: k.shape().to_vec(),
        });
    };
    let first = first?;
    let mut y = Array3::zeros((k.dim().0, first.nrows(), first.ncols()));
    y.index_axis_mut(Axis(0), 0).assign(&first);
    for (o, plane) in planes.enumerate() {
        y.index_axis_mut(Axis(0), o + 1).assign(&plane?);
    }
    Ok(y)
}

/// A 1x1 convolution as a fully connected layer over channels: reshape `X` `[ci, h, w]` to
/// `[ci, h*w]` and `K` `[co, ci, 1, 1]` to `[co, ci]`, then `Y = K X`, reshaped to `[co, h, w]`.
///
/// # Errors
/// [`Error::NotPointwise`] when the kernel is not 1x1; [`Error::ChannelMismatch`] as above.
pub fn corr2d_multi_in_out_1x1(x: ArrayView3<f32>, k: ArrayView4<f32>) -> Result<Array3<f32>> {
    let (ci, h, w) = x.dim();
    let (co, kci, kh, kw) = k.dim();
    if (kh, kw) != (1, 1) {
        return Err(Error::NotPointwise {
            weight: k.shape().to_vec(),
        });
    }
    if kci != ci {
        return Err(Error::ChannelMismatch {
            groups: 1,
            weight: k.shape().to_vec(),
            input: x.shape().to_vec(),
            expected: kci,
            got: ci,
        });
    }
    let x2 = x.to_shape((ci, h * w)).map_err(|_| Error::SizeOverflow {
        what: "reshaped input".into(),
    })?;
    let k2 = k.to_shape((co, ci)).map_err(|_| Error::SizeOverflow {
        what: "reshaped kernel".into(),
    })?;
    let y = k2.dot(&x2);
    y.into_shape_with_order((co, h, w))
        .map_err(|_| Error::SizeOverflow {
            what: "reshaped output".into(),
        })
}
