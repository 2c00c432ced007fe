//! Classic image filters as convolutions on the GPU, so a user can see what a kernel does.
//!
//! An RGB image becomes a `[1, 3, H, W]` tensor with values in 0..=255. Smoothing and sharpening
//! kernels run per channel (a depthwise convolution, `groups = 3`); edge kernels run on the
//! luminance; `Edges` computes both Sobel derivatives as two output channels of one convolution
//! and combines them into the gradient magnitude. Padding is `same` with zeros, so the picture
//! keeps its size (and gets a dark rim from the zero border, as PyTorch would).
//!
//! Images of any size go through in bands of rows, so memory is the input and output images
//! and one band; [`read_image`] refuses, before decoding, an image whose whole run would not
//! fit in the memory available ([`filter_memory_bytes`] has the formula).

use std::ops::Range;
#[cfg(any(feature = "image", feature = "ndarray"))]
use std::path::Path;

use crate::error::{Error, Result};
use crate::gpu::device::Wait;
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

/// A built-in filter by its name in [`Filter::ALL`].
impl std::str::FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let names = Filter::ALL;
        names
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                format!("unknown kernel '{s}'; choose one of {}", all.join(", "))
            })
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

impl KernelChoice {
    /// A user kernel from a float32 `.npy` file of shape `[kh, kw]` or `[1, 1, kh, kw]`.
    ///
    /// # Errors
    /// The file's [`Error::Io`] or [`Error::Npy`]; [`Error::Npy`] naming the shape when it is
    /// another.
    #[cfg(feature = "ndarray")]
    pub fn from_npy(path: &Path) -> Result<Self> {
        let k = crate::io::read_npy(path)?;
        let (kh, kw) = match k.shape() {
            &[kh, kw] | &[1, 1, kh, kw] => (kh, kw),
            other => {
                return Err(Error::Npy {
                    path: path.to_path_buf(),
                    message: format!(
                        "a filter kernel must have shape [kh, kw] or [1, 1, kh, kw], got {other:?}"
                    ),
                })
            }
        };
        Ok(KernelChoice::Custom {
            kh,
            kw,
            weights: k.into_data(),
        })
    }
}

/// Output pixels per GPU call: [`apply`] filters the image in bands of whole rows of about this
/// many pixels (each with the rows its kernel reaches above and below), so that its f32 tensors
/// and GPU buffers stay small whatever the size of the image.
pub const BAND_PIXELS: usize = 1 << 20;

/// Memory of the program itself, the GPU driver and its shader compiler, in every estimate
/// below: measured on lavapipe and llvmpipe (2 cores), about 90 MB resident and 430 MB of
/// address space (what `ulimit -v` counts), most of it the driver's threads.
pub const FILTER_FIXED_BYTES: u64 = 512 << 20;

/// What the PNG decoder may allocate besides the pixels (metadata chunks such as text and ICC
/// profiles, compressed or not, and its row buffers): its `max_alloc` while it reads the file.
pub const PNG_DECODER_BYTES: u64 = 64 << 20;

/// Rows of the largest built-in kernels (the 5x5 box and Gaussian): the halo [`read_image`]
/// budgets for.
const BUILTIN_KERNEL_ROWS: usize = 5;

/// `v` as u64, or `u64::MAX` when it does not fit (no estimate wraps).
fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Output rows per band for an image `width` pixels wide and `height` high:
/// `BAND_PIXELS / width`, at least 1 and at most `height`.
fn band_rows(width: usize, height: usize) -> usize {
    (BAND_PIXELS / width.max(1)).clamp(1, height.max(1))
}

/// Host bytes [`apply`] needs besides the image it is given, for a `width x height` image and a
/// `kernel_h x kernel_w` kernel: `3 W H + 36 (I + O) + 60 kh kw`.
///
/// `3 W H` is the output image. A band has `O = rows * W` output pixels (`rows = BAND_PIXELS /
/// W`, at least 1, at most `H`; see [`BAND_PIXELS`]) and `I = min(rows + kh - 1, H) * W` input
/// pixels, 3 f32 channels (12 bytes) each, counted three times for the input (host tensor, GPU
/// buffer, upload staging) and three times for the output (GPU buffer, readback staging, host
/// copy); the kernel's copies likewise. On a software adapter (lavapipe, llvmpipe) the GPU
/// buffers are host memory too.
pub fn apply_memory_bytes(width: u32, height: u32, kernel_h: usize, kernel_w: usize) -> u64 {
    let (w, h) = (width as usize, height as usize);
    let rows = band_rows(w, h) as u128;
    let (w, h) = (w as u128, h as u128);
    let input_rows = (rows + (kernel_h as u128).saturating_sub(1)).min(h);
    let band = 36 * (input_rows * w + rows * w);
    saturate(3 * w * h + band + 60 * kernel_h as u128 * kernel_w as u128)
}

/// Peak host bytes of a whole `wgconv filter` run with any built-in kernel, for a
/// `width x height` image stored as `format` in a file of `file_len` bytes that decodes to
/// `color` pixels: `F + max(decode, 3 W H + apply, 6 W H + 4 S)`, its phases one after another.
///
/// - decode = `D + max(J, C)`: the decoded pixels, `D = W H * bytes per pixel of color`; while
///   decoding, the decoder's own memory `J`: for PNG [`PNG_DECODER_BYTES`] (its limit), for
///   JPEG a copy of the file and its coefficients, 2 bytes for each of up to 4 components per
///   pixel of the image padded to 16; then the 8-bit RGB copy, `C = 3 W H` (none when the file
///   holds 8-bit RGB).
/// - apply: [`apply_memory_bytes`] for a 5x5 kernel, while the RGB image (`3 W H`) is held.
/// - write: the RGB image and the output (`6 W H`), and the PNG encoder's zlib stream, which it
///   builds in memory before writing, `4 S`: about the stored size `S = H (3 W + 1)` (plus 5
///   bytes per 65535, and 6), and when compression does not pay a second, stored copy, each
///   `Vec` up to twice as large in address space while it grows. JPEG is written as it is
///   encoded; the estimate does not know the output's format and takes PNG's.
/// - `F` = [`FILTER_FIXED_BYTES`].
pub fn filter_memory_bytes(
    width: u32,
    height: u32,
    color: image::ColorType,
    format: image::ImageFormat,
    file_len: u64,
) -> u64 {
    let (w, h) = (u128::from(width), u128::from(height));
    let pixels = w * h;
    let rgb = 3 * pixels;
    let decoded = pixels * u128::from(color.bytes_per_pixel());
    let decoder = if format == image::ImageFormat::Jpeg {
        let components = if color.channel_count() >= 3 {
            4
        } else {
            u128::from(color.channel_count())
        };
        u128::from(file_len) + 2 * components * w.next_multiple_of(16) * h.next_multiple_of(16)
    } else {
        u128::from(PNG_DECODER_BYTES)
    };
    let conversion = if color == image::ColorType::Rgb8 {
        0
    } else {
        rgb
    };
    let decode = decoded + decoder.max(conversion);
    let apply = rgb + u128::from(apply_memory_bytes(width, height, BUILTIN_KERNEL_ROWS, 5));
    let stored = h * (3 * w + 1);
    let write = 2 * rgb + 4 * (stored + 5 * stored.div_ceil(65535) + 6);
    saturate(u128::from(FILTER_FIXED_BYTES) + decode.max(apply).max(write))
}

/// An RGB image as a `[1, 3, H, W]` tensor with values in 0..=255.
pub fn image_to_tensor(image: &image::RgbImage) -> Result<Tensor> {
    rgb_band(image, 0..image.height() as usize)
}

/// Rows `rows` of `image` as a `[1, 3, rows, W]` tensor with values in 0..=255.
fn rgb_band(image: &image::RgbImage, rows: Range<usize>) -> Result<Tensor> {
    let w = image.width() as usize;
    let plane = rows.len() * w;
    let pixels = &image.as_raw()[rows.start * w * 3..rows.end * w * 3];
    Tensor::from_fn([1, 3, rows.len(), w], |i| {
        f32::from(pixels[(i % plane) * 3 + i / plane])
    })
}

/// ITU-R BT.601 luminance of rows `rows` of `image` as a `[1, 1, rows, W]` tensor.
fn luminance_band(image: &image::RgbImage, rows: Range<usize>) -> Result<Tensor> {
    let w = image.width() as usize;
    let pixels = &image.as_raw()[rows.start * w * 3..rows.end * w * 3];
    Tensor::from_fn([1, 1, rows.len(), w], |i| {
        let p = &pixels[3 * i..3 * i + 3];
        0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
    })
}

/// How a filter maps the image to the convolution's input and its output back to colours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mapping {
    /// Luminance in, the two Sobel derivatives out, their magnitude shown as grey.
    Magnitude,
    /// Luminance in, one derivative out, its absolute value shown as grey.
    Derivative,
    /// The three colour channels in and out (a depthwise convolution).
    PerChannel,
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Applies `choice` to `image` on the GPU and returns the filtered RGB image.
///
/// The image goes through in bands of whole rows (about [`BAND_PIXELS`] each, with the rows the
/// kernel reaches as halo, zero padding only at the image's edges), so that besides the output
/// image only one band is in memory: [`apply_memory_bytes`].
///
/// # Errors
/// [`Error::HostMemory`] when that memory is not available; shape errors, GPU errors.
#[cfg(not(target_arch = "wasm32"))]
pub fn apply(
    engine: &Engine,
    image: &image::RgbImage,
    choice: &KernelChoice,
) -> Result<image::RgbImage> {
    pollster::block_on(apply_with(engine, image, choice, Wait::Block))
}

/// Async twin of [`apply`] (the call the browser's JavaScript API makes).
///
/// # Errors
/// As [`apply`].
pub async fn apply_async(
    engine: &Engine,
    image: &image::RgbImage,
    choice: &KernelChoice,
) -> Result<image::RgbImage> {
    apply_with(engine, image, choice, Wait::Async).await
}

/// [`apply`] waiting for the GPU as `wait` says (see [`Wait`]).
async fn apply_with(
    engine: &Engine,
    image: &image::RgbImage,
    choice: &KernelChoice,
    wait: Wait,
) -> Result<image::RgbImage> {
    let (width, height) = image.dimensions();
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 {
        return Ok(image::RgbImage::new(width, height));
    }
    let (kh, kw, weights) = match choice {
        KernelChoice::Builtin(f) => f.kernel(),
        KernelChoice::Custom { kh, kw, weights } => (*kh, *kw, weights.clone()),
    };
    crate::memory::check_available(apply_memory_bytes(width, height, kh, kw), &|| {
        format!("filtering a {w}x{h} image with a {kh}x{kw} kernel")
    })?;
    let mut out = crate::memory::try_vec(image.as_raw().len(), 0u8, || {
        format!("the filtered {w}x{h} image")
    })?;

    // 1. The convolution, once: edges get both Sobel derivatives as two output channels of one
    //    convolution, colour filters the same kernel on each channel (groups = 3).
    let (mapping, weight, groups) = match choice {
        KernelChoice::Builtin(Filter::Edges) => {
            let (_, _, sx) = Filter::SobelX.kernel();
            let (_, _, sy) = Filter::SobelY.kernel();
            let k = Tensor::new([2, 1, 3, 3], [sx, sy].concat())?;
            (Mapping::Magnitude, k, 1)
        }
        KernelChoice::Builtin(f) if f.is_derivative() => (
            Mapping::Derivative,
            Tensor::new([1, 1, kh, kw], weights)?,
            1,
        ),
        _ => {
            let k = Tensor::new([3, 1, kh, kw], weights.repeat(3))?;
            (Mapping::PerChannel, k, 3)
        }
    };
    let (top, bottom, left, right) = Padding::Same.resolve((kh, kw), (1, 1));

    // 2. Band by band: its input rows with their halo, the convolution, the colours.
    let rows = band_rows(w, h);
    for r0 in (0..h).step_by(rows) {
        let r1 = (r0 + rows).min(h);
        let (i0, i1) = (r0.saturating_sub(top), r1.saturating_add(bottom).min(h));
        // Zero rows only where the band's halo leaves the image, as `same` padding of the whole.
        let padding =
            Padding::explicit(top - (r0 - i0), r1.saturating_add(bottom) - i1, left, right);
        let params = Conv2dParams::default()
            .with_padding(padding)
            .with_groups(groups);
        let x = match mapping {
            Mapping::PerChannel => rgb_band(image, i0..i1)?,
            Mapping::Magnitude | Mapping::Derivative => luminance_band(image, i0..i1)?,
        };
        let y = engine
            .conv2d_with(&x, &weight, None, None, &params, wait)
            .await?;
        drop(x);
        let plane = (r1 - r0) * w;
        let y = y.data();
        let band = out[r0 * w * 3..r1 * w * 3].chunks_exact_mut(3).enumerate();
        match mapping {
            Mapping::Magnitude => {
                let (gx, gy) = y.split_at(plane);
                for (i, pixel) in band {
                    pixel.fill(to_u8((gx[i] * gx[i] + gy[i] * gy[i]).sqrt() / 4.0));
                }
            }
            Mapping::Derivative => {
                for (i, pixel) in band {
                    pixel.fill(to_u8(y[i].abs()));
                }
            }
            Mapping::PerChannel => {
                for (i, pixel) in band {
                    for (c, value) in pixel.iter_mut().enumerate() {
                        *value = to_u8(y[c * plane + i]);
                    }
                }
            }
        }
    }
    image::RgbImage::from_raw(width, height, out).ok_or_else(|| Error::SizeOverflow {
        what: format!("the filtered {w}x{h} image"),
    })
}

#[cfg(feature = "image")]
/// `color` in words: `8-bit grayscale`, `16-bit RGBA`.
fn color_words(color: image::ColorType) -> String {
    let channels = color.channel_count().max(1);
    let bits = color.bits_per_pixel() / u16::from(channels);
    let kind = match channels {
        1 => "grayscale",
        2 => "grayscale with alpha",
        3 => "RGB",
        _ => "RGBA",
    };
    format!("{bits}-bit {kind}")
}

#[cfg(feature = "image")]
/// Reads a PNG or JPEG file as RGB, refusing before it decodes an image whose `filter` run
/// would not fit in memory.
///
/// The header comes first: its dimensions and colour type give [`filter_memory_bytes`], which
/// must not exceed [`memory::available_bytes`](crate::memory::available_bytes). The decoder
/// may allocate [`PNG_DECODER_BYTES`] besides the pixels, and is held to the header's size.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or is not a regular file (a FIFO, a device, a
/// directory); [`Error::HostMemory`] when the run needs more memory than is available;
/// [`Error::Image`] when it is not a readable image.
pub fn read_image(path: &Path) -> Result<image::RgbImage> {
    use image::ImageDecoder as _;
    // Once the file is open, a read error means a truncated or broken image.
    let not_an_image = |e: image::ImageError| Error::Image {
        path: path.to_path_buf(),
        message: format!("not a readable PNG or JPEG image: {e}"),
    };
    let (file, file_len) = crate::files::open_input(path)?;
    // The format the extension names, unless the first bytes say otherwise.
    let mut reader = image::ImageReader::new(std::io::BufReader::new(file));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader
        .with_guessed_format()
        .map_err(|source| Error::io("read", path, source))?;
    let format = reader.format().unwrap_or(image::ImageFormat::Png);
    // The JPEG decoder reads the whole file before it looks at the header.
    if format == image::ImageFormat::Jpeg {
        crate::memory::check_available(file_len, &|| {
            format!("reading the JPEG file {}", path.display())
        })?;
    }

    // 1. The header: dimensions and colour type, the decoder's own allocations capped.
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(PNG_DECODER_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(not_an_image)?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();

    // 2. Refuse, before decoding, what the whole run could not hold.
    let need = filter_memory_bytes(width, height, color, format, file_len);
    crate::memory::check_available(need, &|| {
        format!(
            "filtering {} (a {width}x{height} {} {})",
            path.display(),
            color_words(color),
            if format == image::ImageFormat::Jpeg {
                "JPEG"
            } else {
                "PNG"
            }
        )
    })?;

    // 3. Decode: the pixels, at the header's size, and the decoder's own allowance.
    let mut limits = image::Limits::no_limits();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(decoder.total_bytes().saturating_add(PNG_DECODER_BYTES));
    decoder.set_limits(limits).map_err(not_an_image)?;
    let decoded = image::DynamicImage::from_decoder(decoder).map_err(not_an_image)?;
    Ok(decoded.into_rgb8())
}

#[cfg(feature = "image")]
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

#[cfg(feature = "image")]
/// Writes `image` as PNG or JPEG (by extension), through a temporary file renamed into place.
///
/// # Errors
/// [`Error::Image`] for an unknown extension or an encoding failure; [`Error::Io`] when the
/// folder is not writable.
pub fn write_image(path: &Path, image: &image::RgbImage) -> Result<()> {
    let format = output_format(path)?;
    crate::atomic::write_with(path, |writer| {
        // Straight into the file, so no encoded copy of the image is kept in memory.
        let encoded = if format == image::ImageFormat::Jpeg {
            image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new(writer))
        } else {
            image.write_with_encoder(image::codecs::png::PngEncoder::new(writer))
        };
        encoded.map_err(|e| match e {
            image::ImageError::IoError(source) => Error::io("write", path, source),
            other => Error::Image {
                path: path.to_path_buf(),
                message: format!("could not encode: {other}"),
            },
        })
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
