//! Timed runs: one layer forward ([`bench_layer`]) or backward ([`bench_layer_backward`]).

use std::time::{Duration, Instant};

use super::Layer;
use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::spec::Conv2dParams;
use crate::tensor::Tensor;

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

    /// `cpu_ms / gpu_ms` (GPU kernel time), when both ran.
    pub fn speedup(&self) -> Option<f64> {
        Some(self.cpu_ms? / self.gpu_ms?)
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn time(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    time_with(repeat, &mut f).map(|(ms, ())| ms)
}

/// As [`time`], also returning the last run's value (dropped values are dropped off the clock).
fn time_with<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut last = f()?; // warm-up: pipeline builds, first-touch allocations
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let value = f()?;
        times.push(start.elapsed());
        last = value;
    }
    Ok((median(times), last))
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

/// The backward measurements for one layer: GPU kernel times (medians in milliseconds, inputs
/// resident, the clock stopped once the device has finished) and the largest differences from the
/// CPU reference. There is no CPU baseline for the backward passes.
#[derive(Clone, Debug, PartialEq)]
pub struct BackwardResult {
    /// The layer.
    pub layer: Layer,
    /// Batch size.
    pub n: usize,
    /// FLOPs of one gradient pass, input or weight: the forward's `2 * N*K*P*Q * C/groups*R*S`.
    pub flops: u64,
    /// FLOPs of the bias gradient: one add per output element, `N * K * P * Q`.
    pub bias_flops: u64,
    /// `Engine::conv2d_grad_input`.
    pub grad_input_ms: f64,
    /// `Engine::conv2d_grad_weight`.
    pub grad_weight_ms: f64,
    /// `Engine::conv2d_grad_bias`.
    pub grad_bias_ms: f64,
    /// All three gradients in one `Engine::conv2d_backward` call.
    pub backward_ms: f64,
    /// Largest `|gpu - reference|` per gradient `[input, weight, bias]`; `None` when the layer is
    /// over [`REFERENCE_CHECK_MAX_MACS`] and the check was skipped.
    pub max_abs_err: Option<[f64; 3]>,
}

impl BackwardResult {
    /// GFLOP/s of the input or weight gradient for a time in milliseconds.
    pub fn gflops(&self, ms: f64) -> f64 {
        self.flops as f64 / (ms * 1e6)
    }

    /// FLOPs of the whole backward pass: both gradients and the bias gradient.
    pub fn backward_flops(&self) -> u64 {
        self.flops.saturating_mul(2).saturating_add(self.bias_flops)
    }

    /// GFLOP/s of the whole backward pass ([`BackwardResult::backward_flops`] in `backward_ms`).
    pub fn backward_gflops(&self) -> f64 {
        self.backward_flops() as f64 / (self.backward_ms * 1e6)
    }
}

/// Largest forward multiply-add count (`N*K*P*Q * C/groups*R*S`) whose gradients
/// [`bench_layer_backward`] checks against the naive, single-threaded CPU reference; larger layers
/// would spend minutes there.
pub const REFERENCE_CHECK_MAX_MACS: u64 = 2_000_000_000;

/// Largest `|a - b|` over two equally long sequences.
fn max_abs_diff(gpu: &[f32], reference: &[f64]) -> f64 {
    gpu.iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

/// Times the backward passes of one layer on the GPU: the input gradient, the weight gradient and
/// the bias gradient each alone, then all three in one [`Engine::conv2d_backward`] call; each a
/// median of `options.repeat` runs after a warm-up, waiting for the device each run. `grad_output`
/// is deterministic data in [-1, 1]. The gradients are checked against the CPU reference when
/// the layer has at most [`REFERENCE_CHECK_MAX_MACS`] multiply-adds. `options.gpu` and
/// `options.cpu` are not read: the backward passes run on the GPU only.
///
/// # Errors
/// Shape errors, GPU errors, [`Error::Timeout`](crate::Error::Timeout).
pub fn bench_layer_backward(
    engine: &Engine,
    layer: &Layer,
    options: &BenchOptions,
) -> Result<BackwardResult> {
    let shape = layer.shape(options.batch)?;
    let x = data(&shape.input_shape(), 1)?;
    let w = data(&shape.weight_shape(), 2)?;
    let g = data(&shape.output_shape(), 4)?;
    let params = layer.params();
    let (gx, gw, gg) = (engine.upload(&x)?, engine.upload(&w)?, engine.upload(&g)?);
    let (input_shape, weight_shape) = (shape.input_shape(), shape.weight_shape());

    // Each timing keeps its last run's gradients for the check below.
    let (grad_input_ms, grad_input) = time_with(options.repeat, || {
        let grad = engine.conv2d_grad_input(&gg, &gw, &input_shape, &params)?;
        engine.synchronize().map(|()| grad)
    })?;
    let (grad_weight_ms, grad_weight) = time_with(options.repeat, || {
        let grad = engine.conv2d_grad_weight(&gx, &gg, &weight_shape, &params)?;
        engine.synchronize().map(|()| grad)
    })?;
    let (grad_bias_ms, grad_bias) = time_with(options.repeat, || {
        let grad = engine.conv2d_grad_bias(&gg)?;
        engine.synchronize().map(|()| grad)
    })?;
    let (backward_ms, all) = time_with(options.repeat, || {
        let grads = engine.conv2d_backward(&gx, &gw, &gg, &params, true)?;
        engine.synchronize().map(|()| grads)
    })?;

    let max_abs_err = if shape.flops() / 2 <= REFERENCE_CHECK_MAX_MACS {
        let reference = reference_grads(&x, &w, &g, &params)?;
        let mut worst = [0.0f64; 3];
        let pairs = [
            (0, Some(grad_input)),
            (0, Some(all.input)),
            (1, Some(grad_weight)),
            (1, Some(all.weight)),
            (2, Some(grad_bias)),
            (2, all.bias),
        ];
        for (which, tensor) in pairs {
            if let Some(tensor) = tensor {
                let err = max_abs_diff(engine.download(&tensor)?.data(), &reference[which]);
                worst[which] = worst[which].max(err);
            }
        }
        Some(worst)
    } else {
        None
    };
    Ok(BackwardResult {
        layer: layer.clone(),
        n: options.batch,
        flops: shape.flops(),
        bias_flops: shape.output_len() as u64,
        grad_input_ms,
        grad_weight_ms,
        grad_bias_ms,
        backward_ms,
        max_abs_err,
    })
}

/// The CPU reference's gradients `[input, weight, bias]` in f64.
fn reference_grads(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    params: &Conv2dParams,
) -> Result<[Vec<f64>; 3]> {
    let grads = crate::cpu::reference::conv2d_backward_f64(x, w, g, params)?;
    Ok([grads.input, grads.weight, grads.bias])
}
