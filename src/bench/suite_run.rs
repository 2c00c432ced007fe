//! A whole suite timed over several engines: what `wgconv bench` runs.

use super::run::{bench_layer, bench_layer_backward, BackwardResult, BenchOptions, LayerResult};
use super::suites::Layer;
use crate::error::Result;
use crate::gpu::device::{AdapterSummary, EngineOptions};
use crate::gpu::engine::Engine;

/// Which passes [`run_suite`] times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passes {
    /// The convolution itself ([`bench_layer`]).
    Forward,
    /// The gradients of the input, the weights and the bias ([`bench_layer_backward`]).
    Backward,
    /// Both, the backward rows under each forward row.
    Both,
}

impl Passes {
    /// Whether the forward pass is timed.
    pub fn forward(self) -> bool {
        self != Passes::Backward
    }

    /// Whether the backward passes are timed.
    pub fn backward(self) -> bool {
        self != Passes::Forward
    }
}

/// One engine's results over a suite, or the CPU baseline's alone.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRun {
    /// The adapter timed; `None` when only the CPU baseline ran.
    pub adapter: Option<AdapterSummary>,
    /// One forward result per layer, in suite order; empty with [`Passes::Backward`].
    pub forward: Vec<LayerResult>,
    /// One backward result per layer, in suite order; empty with [`Passes::Forward`] or without
    /// an adapter (the backward passes have no CPU baseline).
    pub backward: Vec<BackwardResult>,
}

/// A suite timed over one or more engines by [`run_suite`].
#[derive(Clone, Debug, PartialEq)]
pub struct SuiteResults {
    /// Batch size N.
    pub batch: usize,
    /// Timed repetitions per measurement.
    pub repeat: usize,
    /// The passes timed.
    pub passes: Passes,
    /// One run per engine, in the order given (one CPU-only run when no GPU was timed).
    pub runs: Vec<EngineRun>,
}

impl SuiteResults {
    /// The adapters timed, in run order.
    pub fn adapters(&self) -> impl Iterator<Item = &AdapterSummary> {
        self.runs.iter().filter_map(|run| run.adapter.as_ref())
    }

    /// Every run's forward results, in order. With several runs each layer's name becomes
    /// `name@backend`, lowercased (`conv3x3@vulkan`, `conv3x3@gl`), so rows stay apart.
    pub fn forward_rows(&self) -> Vec<LayerResult> {
        self.rows(|run| &run.forward, |r| &mut r.layer)
    }

    /// Every run's backward results, in order, named as in [`SuiteResults::forward_rows`].
    pub fn backward_rows(&self) -> Vec<BackwardResult> {
        self.rows(|run| &run.backward, |r| &mut r.layer)
    }

    fn rows<T: Clone>(
        &self,
        of: impl Fn(&EngineRun) -> &Vec<T>,
        layer: impl Fn(&mut T) -> &mut Layer,
    ) -> Vec<T> {
        let several = self.runs.len() > 1;
        let mut rows = Vec::new();
        for run in &self.runs {
            let start = rows.len();
            rows.extend(of(run).iter().cloned());
            if let (true, Some(adapter)) = (several, &run.adapter) {
                let backend = format!("{:?}", adapter.backend).to_lowercase();
                for row in &mut rows[start..] {
                    let layer = layer(row);
                    layer.name = format!("{}@{backend}", layer.name.to_lowercase());
                }
            }
        }
        rows
    }
}

/// What [`run_suite`] is doing, for a progress bar and for showing each run as it ends.
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// Starting step `step` (from 0) of `steps`: one layer's forward pass, or its backward
    /// passes, on one engine.
    Timing {
        /// Steps done so far.
        step: usize,
        /// Steps in all.
        steps: usize,
        /// The layer's name, followed by ` backward` for its backward passes.
        what: String,
    },
    /// One engine's run (or the CPU-only run) is complete.
    Finished(&'a EngineRun),
}

/// One engine per backend in `backends` (e.g. `[VULKAN, GL]`, to compare them in one run), or
/// the one the environment picks when `backends` is empty, each with the rest of `base` (its
/// algorithm, tuning and bounds).
///
/// # Errors
/// As [`Engine::with_options`], for the first backend without an adapter.
pub fn engines(backends: &[wgpu::Backends], base: &EngineOptions) -> Result<Vec<Engine>> {
    if backends.is_empty() {
        return Ok(vec![Engine::with_options(base.clone())?]);
    }
    let options = |backends| EngineOptions {
        backends: Some(backends),
        ..base.clone()
    };
    backends
        .iter()
        .map(|&b| Engine::with_options(options(b)))
        .collect()
}

/// Times `layers` on each engine in turn ([`bench_layer`], [`bench_layer_backward`]). The CPU
/// baseline is timed once, during the first run, and its times reused for the others (its
/// output is still computed per run, for each run's correctness check). With no engine, or
/// `options.gpu` false, there is one run of the CPU baseline alone and no backward pass.
///
/// # Errors
/// The first error of [`bench_layer`] or [`bench_layer_backward`].
pub fn run_suite(
    engines: &[Engine],
    layers: &[Layer],
    options: &BenchOptions,
    passes: Passes,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<SuiteResults> {
    let engines: Vec<Option<&Engine>> = if engines.is_empty() || !options.gpu {
        vec![None]
    } else {
        engines.iter().map(Some).collect()
    };
    let (forward, backward) = (
        passes.forward(),
        passes.backward() && engines.iter().any(Option::is_some),
    );
    let steps = engines.len() * layers.len() * (usize::from(forward) + usize::from(backward));
    let mut step = 0;
    let mut runs = Vec::with_capacity(engines.len());
    for (index, engine) in engines.into_iter().enumerate() {
        let mut run = EngineRun {
            adapter: engine.map(|e| e.adapter().clone()),
            forward: Vec::new(),
            backward: Vec::new(),
        };
        for (i, layer) in layers.iter().enumerate() {
            if forward {
                let what = layer.name.clone();
                progress(Progress::Timing { step, steps, what });
                step += 1;
                let once = BenchOptions {
                    cpu: options.cpu && index == 0,
                    ..*options
                };
                let mut result = bench_layer(engine, layer, &once)?;
                if let Some(first) = runs.first().and_then(|r: &EngineRun| r.forward.get(i)) {
                    result.copy_cpu_times(first);
                }
                run.forward.push(result);
            }
            if let (true, Some(engine)) = (backward, engine) {
                let what = format!("{} backward", layer.name);
                progress(Progress::Timing { step, steps, what });
                step += 1;
                run.backward
                    .push(bench_layer_backward(engine, layer, options)?);
            }
        }
        progress(Progress::Finished(&run));
        runs.push(run);
    }
    Ok(SuiteResults {
        batch: options.batch,
        repeat: options.repeat,
        passes,
        runs,
    })
}

/// The demo's short benchmark on `engine`: the first two layers of the quick suite, batch 1,
/// median of 3, GPU and CPU baseline.
///
/// # Errors
/// As [`run_suite`].
pub fn short_benchmark(engine: &Engine) -> Result<SuiteResults> {
    let options = BenchOptions {
        batch: 1,
        repeat: 3,
        gpu: true,
        cpu: true,
    };
    let layers = &super::suites::quick_suite()[..2];
    let engines = std::slice::from_ref(engine);
    run_suite(engines, layers, &options, Passes::Forward, |_| {})
}
