//! Benchmark suites and one timed run per layer: GPU kernel time, GPU end-to-end time, the fair
//! CPU baseline ([`cpu::fast`](crate::cpu::fast)), and the largest GPU-vs-CPU difference.
//!
//! FLOPs count a multiply-add as two: `2 * N * K * P * Q * C/groups * R * S`.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::spec::{Conv2dParams, Conv2dShape};
use crate::tensor::Tensor;

/// One convolution layer of a suite: `C, H, W -> K, R x S, stride, pad` (square stride and pad).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Name shown in tables.
    pub name: String,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height.
    pub r: usize,
    /// Kernel width.
    pub s: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (all sides).
    pub pad: usize,
}

impl Layer {
    /// A layer from its numbers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        r: usize,
        s: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Layer {
            name: name.to_string(),
            c,
            h,
            w,
            k,
            r,
            s,
            stride,
            pad,
        }
    }

    /// The convolution parameters.
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams::default()
            .with_stride(self.stride)
            .with_padding(self.pad)
    }

    /// The validated problem for a batch of `n`.
    ///
    /// # Errors
    /// Shape errors of [`Conv2dShape::new`].
    pub fn shape(&self, n: usize) -> Result<Conv2dShape> {
        Conv2dShape::new(
            &[n, self.c, self.h, self.w],
            &[self.k, self.c, self.r, self.s],
            Some(&[self.k]),
            &self.params(),
        )
    }
}

/// The ResNet/VGG layers of `wgconv bench --suite resnet`.
pub fn resnet_suite() -> Vec<Layer> {
    vec![
        Layer::new("stem", 3, 224, 224, 64, 7, 7, 2, 3),
        Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
        Layer::new("conv1x1", 64, 56, 56, 256, 1, 1, 1, 0),
        Layer::new("conv3x3_s2", 128, 56, 56, 128, 3, 3, 2, 1),
        Layer::new("conv1x1_s2", 512, 28, 28, 1024, 1, 1, 2, 0),
        Layer::new("deep", 512, 7, 7, 512, 3, 3, 1, 1),
        Layer::new("thin", 16, 112, 112, 16, 3, 3, 1, 1),
        Layer::new("vgg", 64, 224, 224, 64, 3, 3, 1, 1),
    ]
}

/// A small subset that finishes in seconds on a software adapter.
pub fn quick_suite() -> Vec<Layer> {
    vec![
        Layer::new("conv3x3_small", 32, 28, 28, 32, 3, 3, 1, 1),
        Layer::new("conv1x1_small", 64, 28, 28, 64, 1, 1, 1, 0),
        Layer::new("deep", 512, 7, 7, 512, 3, 3, 1, 1),
        Layer::new("stem_small", 3, 64, 64, 16, 7, 7, 2, 3),
    ]
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// Batch size N.
    pub batch: usize,
    /// Timed repetitions per measurement (the median is reported).
    pub repeat: usize,
    /// Measure the GPU.
    pub gpu: bool,
    /// Measure the CPU baseline.
    pub cpu: bool,
}

/// The measurements for one layer; times are medians in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerResult {
    /// The layer.
    pub layer: Layer,
    /// Batch size.
    pub n: usize,
    /// FLOPs of one convolution.
    pub flops: u64,
    /// The GPU kernel chosen, e.g. `RegisterTiled(..)`.
    pub kernel: Option<String>,
    /// GPU time with inputs and packed weights already on the device, waiting for completion.
    pub gpu_ms: Option<f64>,
    /// GPU time from host arrays to host array: upload, convolution, readback.
    pub gpu_e2e_ms: Option<f64>,
    /// CPU baseline time.
    pub cpu_ms: Option<f64>,
    /// Largest `|gpu - cpu|` over the output, when both ran.
    pub max_abs_err: Option<f64>,
}

impl LayerResult {
    /// GFLOP/s for a time in milliseconds.
    pub fn gflops(&self, ms: f64) -> f64 {
        self.flops as f64 / (ms * 1e6)
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn time(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: pipeline builds, first-touch allocations
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(times))
}

/// Deterministic inputs in [-1, 1] (a small linear congruential sequence; no RNG dependency).
fn data(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Tensor::from_fn(shape.to_vec(), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// Measures one layer.
///
/// # Errors
/// Shape errors, GPU errors, [`Error::Timeout`](crate::Error::Timeout).
pub fn bench_layer(
    engine: Option<&Engine>,
    layer: &Layer,
    options: &BenchOptions,
) -> Result<LayerResult> {
    let shape = layer.shape(options.batch)?;
    let x = data(&shape.input_shape(), 1)?;
    let w = data(&shape.weight_shape(), 2)?;
    let b = data(&[layer.k], 3)?;
    let params = layer.params();
    let mut result = LayerResult {
        layer: layer.clone(),
        n: options.batch,
        flops: shape.flops(),
        kernel: None,
        gpu_ms: None,
        gpu_e2e_ms: None,
        cpu_ms: None,
        max_abs_err: None,
    };
    let mut gpu_out = None;
    if let (true, Some(engine)) = (options.gpu, engine) {
        result.kernel = Some(format!("{:?}", engine.plan(&shape)?.kernel));
        // Kernel time: everything resident, weights packed once, wait for the device each run.
        let gx = engine.upload(&x)?;
        let gb = engine.upload(&b)?;
        let packed = engine.pack_weights(engine.upload(&w)?, params.groups)?;
        let mut out = engine.alloc(&shape.output_shape())?;
        result.gpu_ms = Some(time(options.repeat, || {
            engine.conv2d_packed_into(&gx, &packed, Some(&gb), &params, &mut out)?;
            engine.synchronize()
        })?);
        gpu_out = Some(engine.download(&out)?);
        // End to end: host arrays in, host array out.
        result.gpu_e2e_ms = Some(time(options.repeat, || {
            engine.conv2d(&x, &w, Some(&b), &params).map(|_| ())
        })?);
    }
    let mut cpu_out = None;
    if options.cpu {
        result.cpu_ms = Some(time(options.repeat, || {
            cpu_out = Some(crate::cpu::fast::conv2d(&x, &w, Some(&b), &params)?);
            Ok(())
        })?);
    } else if gpu_out.is_some() {
        cpu_out = Some(crate::cpu::fast::conv2d(&x, &w, Some(&b), &params)?);
    }
    if let (Some(g), Some(c)) = (&gpu_out, &cpu_out) {
        let err = g
            .data()
            .iter()
            .zip(c.data())
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        result.max_abs_err = Some(err);
    }
    Ok(result)
}

/// Geometric mean of positive values (NaN for none).
pub fn geomean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, c), v| (s + v.ln(), c + 1));
    if count == 0 {
        f64::NAN
    } else {
        (sum / count as f64).exp()
    }
}
