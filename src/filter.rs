//! Classic image filters as convolutions on the GPU, so a user can see what a kernel does.
//!
//! An RGB image becomes a `[1, 3, H, W]` tensor with values in 0..=255. Smoothing and sharpening
//! kernels run per channel (a depthwise convolution, `groups = 3`); edge kernels run on the
//! luminance; `Edges` computes both Sobel derivatives as two output channels of one convolution
//! and combines them into the gradient magnitude. Padding is `same` with zeros, so the picture
//! keeps its size (and gets a dark rim from the zero border, as PyTorch would).

use std::path::Path;

use crate::error::{Error, Result};
use crate::gpu::engine::Engine;
use crate::spec::{Conv2dParams, Padding};
use crate::tensor::Tensor;

/// The built-in kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Horizontal derivative (responds to vertical edges): `[[-1,0,1],[-2,0,2],[-1,0,1]]`.
    SobelX,
    /// Vertical derivative (responds to horizontal edges): the transpose of `SobelX`.
    SobelY,
    /// Gradient magnitude `sqrt(sobel_x^2 + sobel_y^2)` of the luminance.
    Edges,
    /// 5x5 mean.
    Box,
    /// 5x5 Gaussian (binomial weights 1 4 6 4 1, normalized).
    Gaussian,
    /// `[[0,-1,0],[-1,5,-1],[0,-1,0]]`.
    Sharpen,
    /// `[[0,1,0],[1,-4,1],[0,1,0]]`.
    Laplacian,
}

impl Filter {
    /// Every built-in filter with its command-line name.
    pub const ALL: [(&'static str, Filter); 7] = [
        ("sobel-x", Filter::SobelX),
        ("sobel-y", Filter::SobelY),
        ("edges", Filter::Edges),
        ("box", Filter::Box),
        ("gaussian", Filter::Gaussian),
        ("sharpen", Filter::Sharpen),
        ("laplacian", Filter::Laplacian),
    ];

    /// The kernel as a `kh x kw` matrix (row-major), for the single-kernel filters.
    pub fn kernel(self) -> (usize, usize, Vec<f32>) {
        const SOBEL_X: [f32; 9] = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
        const SOBEL_Y: [f32; 9] = [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];
        match self {
            Filter::SobelX | Filter::Edges => (3, 3, SOBEL_X.to_vec()),
            Filter::SobelY => (3, 3, SOBEL_Y.to_vec()),
            Filter::Box => (5, 5, vec![1.0 / 25.0; 25]),
            Filter::Gaussian => {
                let b = [1.0f32, 4.0, 6.0, 4.0, 1.0];
                (
                    5,
                    5,
                    b.iter()
                        .flat_map(|r| b.iter().map(move |c| r * c / 256.0))
                        .collect(),
                )
            }
            Filter::Sharpen => (3, 3, vec![0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0]),
            Filter::Laplacian => (3, 3, vec![0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0]),
        }
    }

    /// Whether the filter measures change (shown as magnitude on the luminance) rather than
    /// reshaping colour (applied per channel).
    pub fn is_derivative(self) -> bool {
        matches!(
            self,
            Filter::SobelX | Filter::SobelY | Filter::Edges | Filter::Laplacian
        )
    }
}

/// What to apply: a built-in filter, or a user kernel `kh x kw` applied per channel.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelChoice {
    /// A built-in filter.
    Builtin(Filter),
    /// A user kernel (row-major `kh x kw`), applied to each colour channel.
    Custom {
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
        /// The weights.
        weights: Vec<f32>,
    },
}

/// An RGB image as a `[1, 3, H, W]` tensor with values in 0..=255.
pub fn image_to_tensor(image: &image::RgbImage) -> Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    Tensor::from_fn([1, 3, h, w], |i| {
        let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
        f32::from(image.get_pixel(x as u32, y as u32)[c])
    })
}

/// Applies `choice` to `image` on the GPU and returns the filtered RGB image.
///
/// # Errors
/// Shape errors (a user kernel larger than the padded image), GPU errors.
pub fn apply(
    engine: &Engine,
    image: &image::RgbImage,
    choice: &KernelChoice,
) -> Result<image::RgbImage> {
    let x = image_to_tensor(image)?;
    let (h, w) = (image.height() as usize, image.width() as usize);
    let same = Conv2dParams::default().with_padding(Padding::Same);
    let planes: Vec<Vec<f32>> = match choice {
        KernelChoice::Builtin(Filter::Edges) => {
            // Luminance in, both Sobel derivatives out (two output channels of one convolution).
            let luma = luminance(&x, h * w)?;
            let (_, _, sx) = Filter::SobelX.kernel();
            let (_, _, sy) = Filter::SobelY.kernel();
            let k = Tensor::new([2, 1, 3, 3], [sx, sy].concat())?;
            let g = engine.conv2d(&luma, &k, None, &same)?;
            let (gx, gy) = g.data().split_at(h * w);
            let magnitude: Vec<f32> = gx
                .iter()
                .zip(gy)
                .map(|(a, b)| (a * a + b * b).sqrt() / 4.0)
                .collect();
            vec![magnitude.clone(), magnitude.clone(), magnitude]
        }
        KernelChoice::Builtin(f) if f.is_derivative() => {
            let (kh, kw, weights) = f.kernel();
            let luma = luminance(&x, h * w)?;
            let y = engine.conv2d(&luma, &Tensor::new([1, 1, kh, kw], weights)?, None, &same)?;
            let plane: Vec<f32> = y.data().iter().map(|v| v.abs()).collect();
            vec![plane.clone(), plane.clone(), plane]
        }
        KernelChoice::Builtin(f) => per_channel(engine, &x, f.kernel(), h * w)?,
        KernelChoice::Custom { kh, kw, weights } => {
            per_channel(engine, &x, (*kh, *kw, weights.clone()), h * w)?
        }
    };
    let mut out = image::RgbImage::new(image.width(), image.height());
    for (i, pixel) in out.pixels_mut().enumerate() {
        for (c, plane) in planes.iter().enumerate() {
            pixel[c] = plane[i].round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// The same kernel on each colour channel: a depthwise convolution with groups = 3.
fn per_channel(
    engine: &Engine,
    x: &Tensor,
    (kh, kw, weights): (usize, usize, Vec<f32>),
    plane: usize,
) -> Result<Vec<Vec<f32>>> {
    let k = Tensor::new(
        [3, 1, kh, kw],
        [weights.clone(), weights.clone(), weights].concat(),
    )?;
    let params = Conv2dParams::default()
        .with_padding(Padding::Same)
        .with_groups(3);
    let y = engine.conv2d(x, &k, None, &params)?;
    Ok(y.data().chunks(plane).map(<[f32]>::to_vec).collect())
}

/// ITU-R BT.601 luminance as a `[1, 1, H, W]` tensor.
fn luminance(x: &Tensor, plane: usize) -> Result<Tensor> {
    let d = x.data();
    let shape = [1, 1, x.shape()[2], x.shape()[3]];
    Tensor::from_fn(shape, |i| {
        0.299 * d[i] + 0.587 * d[plane + i] + 0.114 * d[2 * plane + i]
    })
}

/// Reads a PNG or JPEG file as RGB.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Image`] when it is not a readable image.
pub fn read_image(path: &Path) -> Result<image::RgbImage> {
    let reader =
        image::ImageReader::open(path).map_err(|source| Error::io("read", path, source))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|source| Error::io("read", path, source))?;
    let decoded = reader.decode().map_err(|e| Error::Image {
        path: path.to_path_buf(),
        message: format!("not a readable PNG or JPEG image: {e}"),
    })?;
    Ok(decoded.to_rgb8())
}

/// The image format `path`'s extension asks for: PNG or JPEG. Check it before doing the work.
///
/// # Errors
/// [`Error::Image`] for any other extension.
pub fn output_format(path: &Path) -> Result<image::ImageFormat> {
    image::ImageFormat::from_path(path)
        .ok()
        .filter(|f| matches!(f, image::ImageFormat::Png | image::ImageFormat::Jpeg))
        .ok_or_else(|| Error::Image {
            path: path.to_path_buf(),
            message: "the output must end in .png, .jpg or .jpeg".into(),
        })
}

/// Writes `image` as PNG or JPEG (by extension), through a temporary file renamed into place.
///
/// # Errors
/// [`Error::Image`] for an unknown extension or an encoding failure; [`Error::Io`] when the
/// folder is not writable.
pub fn write_image(path: &Path, image: &image::RgbImage) -> Result<()> {
    let format = output_format(path)?;
    crate::atomic::write_with(path, |writer| {
        // The image encoders want `Seek`; encode into memory, then write the bytes.
        let mut bytes = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, format)
            .map_err(|e| Error::Image {
                path: path.to_path_buf(),
                message: format!("could not encode: {e}"),
            })?;
        writer
            .write_all(bytes.get_ref())
            .map_err(|source| Error::io("write", path, source))
    })
}

/// A small synthetic picture (128x128): a sky gradient, a sun, a house with a window and a
/// striped field, so filters have edges, flat areas and texture to show. Made by the program,
/// so it needs no licence.
pub fn sample_image() -> image::RgbImage {
    image::RgbImage::from_fn(128, 128, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let sun = (fx - 96.0).powi(2) + (fy - 28.0).powi(2) < 14.0f32.powi(2);
        let house = (24..72).contains(&x) && (56..100).contains(&y);
        let roof = (32..56).contains(&y) && (x as i32 - 48).abs() < (y as i32 - 32) + 2;
        let window = (36..50).contains(&x) && (66..80).contains(&y);
        if window {
            image::Rgb([250, 230, 120])
        } else if house {
            image::Rgb([180, 80, 60])
        } else if roof {
            image::Rgb([90, 40, 40])
        } else if sun {
            image::Rgb([255, 220, 40])
        } else if y >= 100 {
            let stripe = if (x / 6 + y / 6) % 2 == 0 { 40 } else { 0 };
            image::Rgb([40 + stripe, 140 + stripe, 50])
        } else {
            let t = fy / 100.0;
            image::Rgb([(120.0 + 100.0 * t) as u8, (170.0 + 60.0 * t) as u8, 235])
        }
    })
}
