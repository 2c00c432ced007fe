//! The convolution lecture's worked examples as data, each computed on the GPU and by the CPU
//! reference (`wgconv demo` prints them): `corr2d` on the 3x3 example, edge detection on a 6x8
//! image and on its transpose, several input channels, several output channels, 1x1
//! convolution as a matrix product over channels, and the output size under padding and stride.

use crate::cpu::{lecture, reference};
use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::spec::{Conv2dParams, Padding};
use crate::tensor::Tensor;

/// One worked example: `corr2d(input, kernel)` with no padding and stride 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// What it shows, with the expected result where the lecture gives one.
    pub title: &'static str,
    /// `[1, C, H, W]`.
    pub input: Tensor,
    /// `[O, C, kh, kw]`.
    pub kernel: Tensor,
}

/// The lecture's examples, in its order.
///
/// # Errors
/// None in practice: the shapes are fixed; [`Tensor::new`]'s errors are passed on.
pub fn examples() -> Result<Vec<Example>> {
    let example = |title, input, kernel| Example {
        title,
        input,
        kernel,
    };
    // A 6x8 image of ones with a black band in columns 2..6, and its transpose.
    let edges = Tensor::from_fn([1, 1, 6, 8], |i| f32::from(!(2..6).contains(&(i % 8))))?;
    let transposed = Tensor::from_fn([1, 1, 8, 6], |i| edges.data()[(i % 6) * 8 + i / 6])?;
    let k_edge = Tensor::new([1, 1, 1, 2], vec![1.0, -1.0])?;
    // Two input channels X and X+1; kernels K and K+1 per channel, stacked K, K+1, K+2 per output.
    let x2 = Tensor::from_fn([1, 2, 3, 3], |i| (i % 9) as f32 + (i / 9) as f32)?;
    let k2 = Tensor::from_fn([1, 2, 2, 2], |i| (i % 4) as f32 + (i / 4) as f32)?;
    let k3 = Tensor::from_fn([3, 2, 2, 2], |i| (i % 4 + (i / 4) % 2 + i / 8) as f32)?;
    Ok(vec![
        example(
            "corr2d(X = 0..9 as 3x3, K = [[0, 1], [2, 3]]): expect [[19, 25], [37, 43]]",
            Tensor::new([1, 1, 3, 3], (0..9).map(|v| v as f32).collect())?,
            Tensor::new([1, 1, 2, 2], vec![0.0, 1.0, 2.0, 3.0])?,
        ),
        example(
            "Edge detection, 6x8 image with K = [1, -1]: 1 marks white->black, -1 black->white",
            edges,
            k_edge.clone(),
        ),
        example(
            "The transposed image with the same K: horizontal edges are invisible to it",
            transposed,
            k_edge,
        ),
        example(
            "Two input channels (X, X+1) with (K, K+1): expect [[56, 72], [104, 120]]",
            x2.clone(),
            k2,
        ),
        example("Three output channels from kernels (K, K+1, K+2)", x2, k3),
        example(
            "1x1 convolution, 3 -> 2 channels",
            Tensor::from_fn([1, 3, 3, 3], |i| ((i * 7) % 11) as f32 - 5.0)?,
            Tensor::from_fn([2, 3, 1, 1], |i| i as f32 - 2.0)?,
        ),
    ])
}

/// An example computed both ways.
#[derive(Clone, Debug, PartialEq)]
pub struct Worked {
    /// On the GPU.
    pub gpu: Tensor,
    /// By the CPU reference.
    pub reference: Tensor,
    /// `max |gpu - reference|`.
    pub max_abs_diff: f32,
}

impl Worked {
    /// The GPU's and the CPU reference's outputs under `title`, channel by channel, as the demo
    /// prints them, and the largest difference.
    pub fn text(&self, title: &str) -> String {
        let mut text = format!("{title}\n");
        let matrix = |text: &mut String, label: &str, data: &[f32], w: usize| {
            text.push_str(&format!("  {label}\n"));
            for row in data.chunks(w.max(1)) {
                let cells: Vec<String> = row.iter().map(|v| format!("{v:>7.1}")).collect();
                text.push_str(&format!("    [{} ]\n", cells.join("")));
            }
        };
        let (o, w) = (self.gpu.shape()[1], self.gpu.shape()[3]);
        let plane = self.gpu.len() / o.max(1);
        let channels = self.gpu.data().chunks(plane.max(1));
        for (c, (g, r)) in channels
            .zip(self.reference.data().chunks(plane.max(1)))
            .enumerate()
        {
            let suffix = if o > 1 {
                format!(" channel {c}")
            } else {
                String::new()
            };
            matrix(&mut text, &format!("GPU{suffix}:"), g, w);
            matrix(&mut text, &format!("CPU reference{suffix}:"), r, w);
        }
        text.push_str(&format!("  max |GPU - CPU| = {:e}\n", self.max_abs_diff));
        text
    }
}

/// `example` on `engine` and on the CPU reference.
///
/// # Errors
/// The convolutions' errors.
pub fn work(engine: &Engine, example: &Example) -> Result<Worked> {
    let p = Conv2dParams::default();
    let gpu = engine.conv2d(&example.input, &example.kernel, None, &p)?;
    let reference = reference::conv2d(&example.input, &example.kernel, None, &p)?;
    let pairs = gpu.data().iter().zip(reference.data());
    let max_abs_diff = pairs.map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    Ok(Worked {
        gpu,
        reference,
        max_abs_diff,
    })
}

/// Whether a 1x1 convolution's output equals the lecture's matrix product `K[O x C] . X[C x HW]`
/// (`corr2d_multi_in_out_1x1`), to 1e-5 relative.
///
/// # Errors
/// The lecture function's shape errors (a kernel that is not 1x1, a batch other than 1).
pub fn equals_matrix_product(example: &Example, output: &Tensor) -> Result<bool> {
    let [_, c, h, w] = <[usize; 4]>::try_from(example.input.shape()).unwrap_or([0; 4]);
    let [o, _, kh, kw] = <[usize; 4]>::try_from(example.kernel.shape()).unwrap_or([0; 4]);
    let x = ndarray::Array3::from_shape_vec((c, h, w), example.input.data().to_vec());
    let k = ndarray::Array4::from_shape_vec((o, c, kh, kw), example.kernel.data().to_vec());
    let (Ok(x), Ok(k)) = (x, k) else {
        return Ok(false);
    };
    let product = lecture::corr2d_multi_in_out_1x1(x.view(), k.view())?;
    let mut pairs = product.iter().zip(output.data());
    Ok(product.len() == output.len()
        && pairs.all(|(a, b)| (a - b).abs() <= 1e-5 * a.abs().max(1.0)))
}

/// A convolution of an 8x8 input whose output size the lecture works out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeCase {
    /// Kernel, padding and stride in words.
    pub name: &'static str,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Zero padding `(ph, pw)` on both sides.
    pub padding: (usize, usize),
    /// `(sh, sw)`.
    pub stride: (usize, usize),
}

/// The lecture's padding and stride cases.
pub const SHAPE_CASES: [ShapeCase; 4] = [
    ShapeCase::new("k3, padding 1", (3, 3), (1, 1), (1, 1)),
    ShapeCase::new("k(5,3), padding (2,1)", (5, 3), (2, 1), (1, 1)),
    ShapeCase::new("k3, padding 1, stride 2", (3, 3), (1, 1), (2, 2)),
    ShapeCase::new(
        "k(3,5), padding (0,1), stride (3,4)",
        (3, 5),
        (0, 1),
        (3, 4),
    ),
];

impl ShapeCase {
    const fn new(
        name: &'static str,
        kernel: (usize, usize),
        padding: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        ShapeCase {
            name,
            kernel,
            padding,
            stride,
        }
    }

    /// The output height and width, computed on `engine`.
    ///
    /// # Errors
    /// The convolution's errors.
    pub fn output_size(&self, engine: &Engine) -> Result<(usize, usize)> {
        let params = Conv2dParams::default()
            .with_padding(Padding::symmetric(self.padding.0, self.padding.1))
            .with_stride(self.stride);
        let x = Tensor::full([1, 1, 8, 8], 1.0)?;
        let k = Tensor::full([1, 1, self.kernel.0, self.kernel.1], 1.0)?;
        let y = engine.conv2d(&x, &k, None, &params)?;
        Ok((y.shape()[2], y.shape()[3]))
    }
}
