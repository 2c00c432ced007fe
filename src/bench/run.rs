//! Timed runs: one layer forward ([`bench_layer`]) or backward ([`bench_layer_backward`]).

use super::ops::{DeviceWeights, Ops};
use super::suites::Layer;
use super::timing::{gpu_timed, keep, round_robin, timed, Measurement, Spread};
use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::gpu::plan::Algorithm;
use crate::gpu::tensor::GpuTensor;
use crate::tensor::Tensor;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// Batch size N.
    pub batch: usize,
    /// Timed repetitions per measurement (at least one is made), interleaved with the other
    /// measurements' (see the [timing protocol](super#the-timing-protocol)).
    pub repeat: usize,
    /// Measure the GPU.
    pub gpu: bool,
    /// Measure the CPU baseline.
    pub cpu: bool,
}

impl BenchOptions {
    /// The line `wgconv bench` starts with: what the CPU baseline is, the batch, the protocol.
    pub fn describe(&self) -> String {
        format!(
            "CPU baseline: im2col + gemm on {} threads; batch {}, median of {} interleaved runs \
             (± half their range)",
            rayon::current_num_threads(),
            self.batch,
            self.repeat.max(1)
        )
    }
}

/// The measurements for one layer. Times are in milliseconds: each the median of its timed runs
/// (`*_ms`), with the fastest (`*_ms_min`) and the slowest (`*_ms_max`); `None` when not measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerResult {
    /// The layer.
    pub layer: Layer,
    /// Batch size.
    pub n: usize,
    /// The GPU kernel chosen, by its stable name ([`Kernel::name`]), e.g.
    /// `conv2d_igemm_regtile_8x4_padded`.
    ///
    /// [`Kernel::name`]: crate::gpu::kernels::Kernel::name
    pub kernel: Option<String>,
    /// The algorithm of that kernel ([`Algorithm::name`](crate::Algorithm::name)), e.g.
    /// `register-tiled-16x8`: what `--algorithm` takes to force it.
    pub algorithm: Option<String>,
    /// Whether the tuning cache chose it (`wgconv tune`), when the GPU ran.
    pub tuned: Option<bool>,
    /// FLOPs of one convolution.
    pub flops: u64,
    /// GPU time with inputs and packed weights already on the device, waiting for completion.
    pub gpu_ms: Option<f64>,
    /// Fastest run of [`LayerResult::gpu_ms`].
    pub gpu_ms_min: Option<f64>,
    /// Slowest run of [`LayerResult::gpu_ms`].
    pub gpu_ms_max: Option<f64>,
    /// GPU time from host arrays to host array: upload, convolution, readback.
    pub gpu_e2e_ms: Option<f64>,
    /// Fastest run of [`LayerResult::gpu_e2e_ms`].
    pub gpu_e2e_ms_min: Option<f64>,
    /// Slowest run of [`LayerResult::gpu_e2e_ms`].
    pub gpu_e2e_ms_max: Option<f64>,
    /// CPU baseline time.
    pub cpu_ms: Option<f64>,
    /// Fastest run of [`LayerResult::cpu_ms`].
    pub cpu_ms_min: Option<f64>,
    /// Slowest run of [`LayerResult::cpu_ms`].
    pub cpu_ms_max: Option<f64>,
    /// Largest `|gpu - cpu|` over the output, when both ran.
    pub max_abs_err: Option<f64>,
}

impl LayerResult {
    /// A result with nothing measured yet.
    pub fn unmeasured(layer: &Layer, n: usize, flops: u64) -> LayerResult {
        LayerResult {
            layer: layer.clone(),
            n,
            kernel: None,
            algorithm: None,
            tuned: None,
            flops,
            gpu_ms: None,
            gpu_ms_min: None,
            gpu_ms_max: None,
            gpu_e2e_ms: None,
            gpu_e2e_ms_min: None,
            gpu_e2e_ms_max: None,
            cpu_ms: None,
            cpu_ms_min: None,
            cpu_ms_max: None,
            max_abs_err: None,
        }
    }

    /// GFLOP/s for a time in milliseconds.
    pub fn gflops(&self, ms: f64) -> f64 {
        self.flops as f64 / (ms * 1e6)
    }

    /// `cpu_ms / gpu_ms` (GPU kernel time), when both ran.
    pub fn speedup(&self) -> Option<f64> {
        Some(self.cpu_ms? / self.gpu_ms?)
    }

    /// The CPU baseline's times of `other` (the same layer, timed once for several engines).
    pub fn copy_cpu_times(&mut self, other: &LayerResult) {
        (self.cpu_ms, self.cpu_ms_min, self.cpu_ms_max) =
            (other.cpu_ms, other.cpu_ms_min, other.cpu_ms_max);
    }
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

/// Measures one layer: the GPU kernel time, the GPU end-to-end time and the CPU baseline time,
/// interleaved (see the [timing protocol](super#the-timing-protocol)), then the largest difference
/// between the GPU's and the CPU's outputs. The GPU side runs when `options.gpu` and an engine is
/// given; with `options.cpu` false the CPU baseline still runs once, untimed, for the check.
///
/// # Errors
/// Shape errors, GPU errors, [`Error::Timeout`](crate::error::Error::Timeout).
pub fn bench_layer(
    engine: Option<&Engine>,
    layer: &Layer,
    options: &BenchOptions,
) -> Result<LayerResult> {
    let ops = &Ops::of(layer, options.batch)?;
    let shape = Ops::planned(layer, options.batch)?;
    let (x, w, b) = (
        &data(&ops.input_shape(), 1)?,
        &data(&ops.weight_shape(), 2)?,
        &data(&[layer.k], 3)?,
    );
    let mut result = LayerResult::unmeasured(layer, options.batch, ops.flops());
    let engine = engine.filter(|_| options.gpu);
    let mut resident = match engine {
        Some(e) => {
            let kernel = e.plan(&shape)?.kernel;
            let algorithm = Algorithm::of_kernel(kernel);
            result.kernel = Some(kernel.name());
            result.algorithm = algorithm.map(Algorithm::name);
            result.tuned = Some(
                e.algorithm() == Algorithm::Auto
                    && algorithm.is_some()
                    && e.tuned_algorithm(&shape) == algorithm,
            );
            Some(Resident {
                x: e.upload(x)?,
                b: e.upload(b)?,
                w: ops.device_weights(e, w)?,
                out: e.alloc(&ops.output_shape())?,
            })
        }
        None => None,
    };
    let mut cpu_out = None;
    let spreads = {
        let mut measurements: Vec<Measurement<'_>> = Vec::new();
        if let (Some(e), Some(r)) = (engine, resident.as_mut()) {
            measurements.push(Box::new(move || {
                let run = || ops.run_into(e, &r.x, &r.w, &r.b, &mut r.out);
                gpu_timed(e, run).map(|(time, ())| time)
            }));
            // End to end: host arrays in, host array out (dropped off the clock).
            measurements.push(Box::new(move || {
                e.synchronize()?;
                timed(|| ops.run_host(e, x, w, b)).map(|(time, _)| time)
            }));
        }
        if options.cpu {
            let out = &mut cpu_out;
            let run = || ops.cpu_baseline(x, w, b);
            measurements.push(Box::new(move || keep(out, timed(run))));
        }
        round_robin(options.repeat, &mut measurements)?
    };
    let mut spreads = spreads.into_iter();
    if resident.is_some() {
        (result.gpu_ms, result.gpu_ms_min, result.gpu_ms_max) = Spread::fields(spreads.next());
        let e2e = Spread::fields(spreads.next());
        (
            result.gpu_e2e_ms,
            result.gpu_e2e_ms_min,
            result.gpu_e2e_ms_max,
        ) = e2e;
    }
    if options.cpu {
        (result.cpu_ms, result.cpu_ms_min, result.cpu_ms_max) = Spread::fields(spreads.next());
    }
    if let (Some(e), Some(r)) = (engine, &resident) {
        let gpu = e.download(&r.out)?;
        let cpu = match cpu_out {
            Some(cpu) => cpu,
            None => ops.cpu_baseline(x, w, b)?,
        };
        let diffs = gpu
            .data()
            .iter()
            .zip(cpu.data())
            .map(|(a, b)| (a - b).abs());
        result.max_abs_err = Some(diffs.map(f64::from).fold(0.0, f64::max));
    }
    Ok(result)
}

/// A layer on the device for the kernel time: input and bias uploaded and weights packed once,
/// the output written in place.
struct Resident {
    x: GpuTensor,
    b: GpuTensor,
    w: DeviceWeights,
    out: GpuTensor,
}

/// Geometric mean of positive values; `None` for none.
pub fn geomean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, c), v| (s + v.ln(), c + 1));
    (count > 0).then(|| (sum / count as f64).exp())
}

/// The backward measurements for one layer: GPU kernel times (inputs resident, the clock stopped
/// once the device has finished) in milliseconds, each the median of its timed runs (`*_ms`) with
/// the fastest (`*_ms_min`) and the slowest (`*_ms_max`), and the largest differences from the CPU
/// reference. There is no CPU baseline for the backward passes.
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
    /// Fastest run of [`BackwardResult::grad_input_ms`].
    pub grad_input_ms_min: f64,
    /// Slowest run of [`BackwardResult::grad_input_ms`].
    pub grad_input_ms_max: f64,
    /// `Engine::conv2d_grad_weight`.
    pub grad_weight_ms: f64,
    /// Fastest run of [`BackwardResult::grad_weight_ms`].
    pub grad_weight_ms_min: f64,
    /// Slowest run of [`BackwardResult::grad_weight_ms`].
    pub grad_weight_ms_max: f64,
    /// `Engine::conv2d_grad_bias`.
    pub grad_bias_ms: f64,
    /// Fastest run of [`BackwardResult::grad_bias_ms`].
    pub grad_bias_ms_min: f64,
    /// Slowest run of [`BackwardResult::grad_bias_ms`].
    pub grad_bias_ms_max: f64,
    /// All three gradients in one `Engine::conv2d_backward` call.
    pub backward_ms: f64,
    /// Fastest run of [`BackwardResult::backward_ms`].
    pub backward_ms_min: f64,
    /// Slowest run of [`BackwardResult::backward_ms`].
    pub backward_ms_max: f64,
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
/// the bias gradient each alone, and all three in one [`Engine::conv2d_backward`] call,
/// interleaved (see the [timing protocol](super#the-timing-protocol)), each waiting for the
/// device. `grad_output` is deterministic data in [-1, 1]. The gradients are checked against the
/// CPU reference when the layer has at most [`REFERENCE_CHECK_MAX_MACS`] multiply-adds.
/// `options.gpu` and `options.cpu` are not read: the backward passes run on the GPU only.
///
/// # Errors
/// Shape errors, GPU errors, [`Error::Timeout`](crate::error::Error::Timeout).
pub fn bench_layer_backward(
    engine: &Engine,
    layer: &Layer,
    options: &BenchOptions,
) -> Result<BackwardResult> {
    let ops = &Ops::of(layer, options.batch)?;
    let x = data(&ops.input_shape(), 1)?;
    let w = data(&ops.weight_shape(), 2)?;
    let g = data(&ops.output_shape(), 4)?;
    let (gx, gw, gg) = (
        &engine.upload(&x)?,
        &engine.upload(&w)?,
        &engine.upload(&g)?,
    );

    // Each measurement keeps its last run's gradients for the check below.
    let (mut grad_input, mut grad_weight, mut grad_bias, mut all) = (None, None, None, None);
    let spreads = {
        let mut measurements: Vec<Measurement<'_>> = vec![
            Box::new(|| {
                let run = || ops.grad_input(engine, gg, gw);
                keep(&mut grad_input, gpu_timed(engine, run))
            }),
            Box::new(|| {
                let run = || ops.grad_weight(engine, gx, gg);
                keep(&mut grad_weight, gpu_timed(engine, run))
            }),
            Box::new(|| {
                keep(
                    &mut grad_bias,
                    gpu_timed(engine, || ops.grad_bias(engine, gg)),
                )
            }),
            Box::new(|| {
                let run = || ops.backward(engine, gx, gw, gg);
                keep(&mut all, gpu_timed(engine, run))
            }),
        ];
        round_robin(options.repeat, &mut measurements)?
    };
    let spread = |i: usize| spreads.get(i).copied().unwrap_or(Spread::NONE);
    let [input, weight, bias, backward] = [0, 1, 2, 3].map(spread);

    let max_abs_err = match (grad_input, grad_weight, grad_bias, all) {
        (Some(input), Some(weight), Some(bias), Some(all))
            if ops.flops() / 2 <= REFERENCE_CHECK_MAX_MACS =>
        {
            let reference = ops.reference_grads(&x, &w, &g)?;
            let mut worst = [0.0f64; 3];
            let pairs = [
                (0, Some(input)),
                (0, Some(all.input)),
                (1, Some(weight)),
                (1, Some(all.weight)),
                (2, Some(bias)),
                (2, all.bias),
            ];
            for (which, tensor) in pairs {
                if let Some(tensor) = tensor {
                    let err = max_abs_diff(engine.download(&tensor)?.data(), &reference[which]);
                    worst[which] = worst[which].max(err);
                }
            }
            Some(worst)
        }
        _ => None,
    };
    Ok(BackwardResult {
        layer: layer.clone(),
        n: options.batch,
        flops: ops.flops(),
        bias_flops: ops.output_shape().iter().product::<usize>() as u64,
        grad_input_ms: input.median,
        grad_input_ms_min: input.min,
        grad_input_ms_max: input.max,
        grad_weight_ms: weight.median,
        grad_weight_ms_min: weight.min,
        grad_weight_ms_max: weight.max,
        grad_bias_ms: bias.median,
        grad_bias_ms_min: bias.min,
        grad_bias_ms_max: bias.max,
        backward_ms: backward.median,
        backward_ms_min: backward.min,
        backward_ms_max: backward.max,
        max_abs_err,
    })
}
