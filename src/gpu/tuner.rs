//! The autotuner: for one problem, every candidate kernel that covers it is built (within the
//! pipeline-build bound), run, and compared bit for bit with the reference kernel's output (the
//! direct kernel for the forward convolution, the 4x4-tiled one for the weight gradient); only a
//! candidate that matches is timed. The fastest verified candidate becomes the winner for the
//! problem's [`ShapeClass`], kept in the engine's tuning cache (on disk with `Tuning::Cached`).
//!
//! Why bit for bit is right: the tuning data are small integers (inputs, weights, gradients and
//! bias in `[-m, m]`, `m` chosen so that `m * m * terms + m < 2^24`), so every product and every
//! partial sum is an integer that f32 holds exactly, whatever the order of summation: every
//! correct kernel gives the same bits, and a kernel that skips, repeats or misplaces a tap is off
//! by a nonzero integer somewhere (with random data, almost surely).
//!
//! Timing: each verified candidate runs twice more, timed; one whose faster run took over 3x the
//! best candidate's is not timed further. The rest run in interleaved rounds (each round every
//! candidate once, so drift in the machine's speed hits all alike; [`ROUNDS`] of them, more for
//! short kernels, up to [`MAX_ROUNDS`]), each run ending at `synchronize`; a candidate's time is
//! its median. The planner's own choice stays the winner unless another is
//! faster by more than [`MARGIN`].

use std::fmt;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::engine::Engine;
use crate::gpu::kernels::Kernel;
use crate::gpu::pipelines::is_build_failure;
use crate::gpu::plan::{self, backward::Transposed, Algorithm};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::tuning::{Op, ShapeClass, Winner};
use crate::spec::{Conv2dShape, ConvTranspose2dShape};
use crate::tensor::Tensor;

/// Interleaved timing rounds per candidate, at least.
pub const ROUNDS: usize = 5;

/// At most this many rounds, for the shortest kernels.
pub const MAX_ROUNDS: usize = 31;

/// Rounds are added (up to [`MAX_ROUNDS`]) until the best candidate's runs add up to this many
/// milliseconds.
pub const TIMED_MS: f64 = 100.0;

/// A candidate replaces the planner's choice only when its median time is below this fraction of
/// the planner's choice's (timings on a busy machine wander by several percent).
pub const MARGIN: f64 = 0.85;

/// What the tuner found out about one candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Verified, then timed: its median kernel time over `runs` runs.
    Timed {
        /// Median milliseconds.
        median_ms: f64,
        /// Timed runs.
        runs: usize,
    },
    /// Built and ran, but its output differs from the reference kernel's: never timed.
    Rejected {
        /// The first differing element and how many differ.
        why: String,
    },
    /// It does not cover the problem, or it did not build.
    Unavailable {
        /// Why.
        why: String,
    },
    /// Verified, but the faster of its first two timed runs took over 3x the best candidate's:
    /// not timed further.
    Pruned {
        /// That run's milliseconds.
        first_ms: f64,
    },
}

/// One candidate and its verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateResult {
    /// The candidate's name (an [`Algorithm`] name, or the weight-gradient kernel's name).
    pub name: String,
    /// What happened to it.
    pub verdict: Verdict,
}

/// What one tuning run found: every candidate's verdict and the winner kept for the class.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    /// The operation tuned.
    pub op: Op,
    /// The class the winner is kept for.
    pub class: ShapeClass,
    /// The problem tuned on.
    pub shape: Conv2dShape,
    /// The planner's own choice (what runs untuned).
    pub untuned: String,
    /// The winner now in the cache.
    pub winner: String,
    /// Every candidate tried, in order.
    pub candidates: Vec<CandidateResult>,
}

impl TuneReport {
    /// The median time of the candidate named `name`, when it was timed.
    pub fn time_of(&self, name: &str) -> Option<f64> {
        self.candidates.iter().find_map(|c| match c.verdict {
            Verdict::Timed { median_ms, .. } if c.name == name => Some(median_ms),
            _ => None,
        })
    }

    /// The rejected candidates' names.
    pub fn rejected(&self) -> Vec<&str> {
        self.candidates
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Rejected { .. }))
            .map(|c| c.name.as_str())
            .collect()
    }
}

impl fmt::Display for TuneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flops = self.shape.flops() as f64;
        writeln!(
            f,
            "{} {} (untuned: {}, winner: {})",
            self.op.name(),
            self.class,
            self.untuned,
            self.winner
        )?;
        for c in &self.candidates {
            let mark = if c.name == self.winner { "*" } else { " " };
            match &c.verdict {
                Verdict::Timed { median_ms, runs } => writeln!(
                    f,
                    "  {mark} {:<28} {median_ms:>10.3} ms {:>8.2} GFLOP/s (median of {runs})",
                    c.name,
                    flops / (median_ms * 1e6)
                )?,
                Verdict::Pruned { first_ms } => writeln!(
                    f,
                    "    {:<28} {first_ms:>10.3} ms in a first run, over 3x the best: not timed further",
                    c.name
                )?,
                Verdict::Rejected { why } => {
                    writeln!(f, "    {:<28} REJECTED: {why}", c.name)?
                }
                Verdict::Unavailable { why } => {
                    writeln!(f, "    {:<28} unavailable: {why}", c.name)?
                }
            }
        }
        Ok(())
    }
}

/// Integer tuning data of `shape` in `[-m, m]`, from a fixed seed (xorshift).
fn integers(shape: &[usize], m: i64, seed: u64) -> Result<Tensor> {
    let mut state = seed | 1;
    Tensor::from_fn(shape.to_vec(), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state % (2 * m as u64 + 1)) as i64 - m) as f32
    })
}

/// The largest `m` with `m * m * terms + m < 2^24`: integers in `[-m, m]` sum exactly in f32.
fn exact_range(terms: usize) -> Result<i64> {
    let limit = 1u64 << 24;
    let m = (1..=2i64)
        .rev()
        .find(|&m| (m * m) as u64 * terms as u64 + (m as u64) < limit)
        .ok_or_else(|| Error::TooLarge {
            what: "reduction length for exact tuning checks".into(),
            value: terms as u64,
            limit: limit - 2,
            why: "the tuner checks candidates on integer data that must sum exactly in f32",
        })?;
    Ok(m)
}

/// The first element where `got` differs from `want` bit for bit, and how many differ.
fn first_difference(got: &[f32], want: &[f32]) -> Option<String> {
    let differ = |(g, w): (&f32, &f32)| g.to_bits() != w.to_bits();
    let count = got.iter().zip(want).filter(|&p| differ(p)).count();
    let (index, (g, w)) = got.iter().zip(want).enumerate().find(|(_, p)| differ(*p))?;
    Some(format!(
        "output[{index}] is {g} where the reference kernel gives {w} ({count} of {} elements differ)",
        want.len()
    ))
}

/// Times `run` (which submits work) up to its completion, in milliseconds.
fn timed(engine: &Engine, run: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    run()?;
    engine.synchronize()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// A candidate in a tuning run: its name, and the call that runs it into its output.
struct Trial<'a> {
    name: String,
    /// `run(true)` writes a fresh output (NaN first, so a skipped element shows) and returns it;
    /// `run(false)`, the timed runs, may reuse one and return nothing.
    run: Box<dyn FnMut(bool) -> Result<Option<GpuTensor>> + 'a>,
}

impl Engine {
    /// The forward candidates for `shape`: the direct and pointwise kernels, the register tiles
    /// the adapter's profile allows, the workgroup-memory tiles (64x64 and 128x128) and the
    /// depthwise kernel (those that do not cover the shape are reported as unavailable).
    pub fn forward_candidates(&self, shape: &Conv2dShape) -> Vec<Algorithm> {
        let profile = self.profile();
        let og = shape.out_channels_per_group();
        let mut candidates = vec![Algorithm::Direct, Algorithm::Pointwise];
        for tn in [4u32, 8, 16] {
            for tm in [8u32, 16, 32, 64] {
                // Tiles more than twice the channels compute mostly nothing.
                if tm * tn <= profile.max_register_tile && tm as usize <= 2 * og.max(4) {
                    candidates.push(Algorithm::RegisterTile { tm, tn });
                }
            }
        }
        candidates.extend([
            Algorithm::SharedTiled,
            Algorithm::LargeTiled,
            Algorithm::Depthwise,
        ]);
        candidates
    }

    /// Tunes the forward convolution of `shape` over [`Engine::forward_candidates`] and
    /// `extra` candidates (e.g. [`Algorithm::Custom`] kernels), and keeps the winner for the
    /// shape's class.
    ///
    /// # Errors
    /// Upload, size and GPU errors of the reference run; [`Error::TooLarge`] for a reduction too
    /// long to check exactly.
    pub fn tune_forward(&self, shape: &Conv2dShape, extra: &[Algorithm]) -> Result<TuneReport> {
        let m = exact_range(shape.reduction_len())?;
        let x = self.upload(&integers(&shape.input_shape(), m, 1)?)?;
        let weight = self.upload(&integers(&shape.weight_shape(), m, 2)?)?;
        let w = self.pack_weights(weight, shape.groups)?;
        let b = self.upload(&integers(&[shape.out_channels], m, 3)?)?;
        // The kernels are the same with and without a fused activation or a turned kernel: the
        // linear cross-correlation is checked exactly and timed (the cache's class depends on
        // neither).
        let params = crate::spec::Conv2dParams {
            activation: crate::spec::Activation::None,
            flip_kernel: false,
            ..shape.params()
        };
        let untuned = plan::plan(shape, &self.limits(), Algorithm::Auto)
            .ok()
            .and_then(|p| Algorithm::of_kernel(p.kernel))
            .unwrap_or(Algorithm::Direct);
        let bias = shape.has_bias.then_some(&b);
        let (x, w, params) = (&x, &w, &params);
        let trial = |algorithm: Algorithm| Trial {
            name: algorithm.name(),
            run: {
                let mut reused: Option<GpuTensor> = None;
                Box::new(move |fresh| {
                    let nan = || Tensor::full(shape.output_shape().to_vec(), f32::NAN);
                    let mut out = match reused.take() {
                        Some(out) if !fresh => out,
                        _ => self.upload(&nan()?)?,
                    };
                    self.conv2d_into_with(algorithm, x, w, bias, params, &mut out)?;
                    if fresh {
                        return Ok(Some(out));
                    }
                    reused = Some(out);
                    Ok(None)
                })
            },
        };
        let mut trials: Vec<Trial> = Vec::new();
        for algorithm in self
            .forward_candidates(shape)
            .into_iter()
            .chain(extra.iter().copied())
        {
            trials.push(trial(algorithm));
        }
        let reference = trial(Algorithm::Direct);
        self.tune(Op::Forward, shape, untuned.name(), reference, trials)
    }

    /// The weight-gradient kernels the profile allows: 4 or 8 output channels x 4 or 8 entries.
    fn grad_weight_candidates(&self) -> Vec<Kernel> {
        let profile = self.profile();
        let mut kernels = Vec::new();
        for tile_o in [4u32, 8] {
            for entries in [4u32, 8] {
                if tile_o <= profile.max_grad_weight_tile && entries <= profile.max_masked_loads {
                    kernels.push(Kernel::GradWeight(tile_o, entries));
                }
            }
        }
        kernels
    }

    /// Tunes the weight gradient of `shape` over the weight-gradient tiles the profile allows,
    /// and keeps the winner for the shape's class.
    ///
    /// # Errors
    /// As [`Engine::tune_forward`].
    pub fn tune_grad_weight(&self, shape: &Conv2dShape) -> Result<TuneReport> {
        let m = exact_range(shape.batch * shape.out_h * shape.out_w)?;
        let x = self.upload(&integers(&shape.input_shape(), m, 4)?)?;
        let gy = self.upload(&integers(&shape.output_shape(), m, 5)?)?;
        let untuned = self.default_grad_weight_kernel(shape).name();
        let (x, gy) = (&x, &gy);
        let trial = |kernel: Kernel| Trial {
            name: kernel.name(),
            run: Box::new(move |_| self.grad_weight_with(kernel, shape, x, gy).map(Some)),
        };
        let trials = self
            .grad_weight_candidates()
            .into_iter()
            .map(trial)
            .collect();
        self.tune(
            Op::GradWeight,
            shape,
            untuned,
            trial(Kernel::GradWeight(4, 4)),
            trials,
        )
    }

    /// The forward problem the input gradient of `shape` runs as (its stride-1 or spread-out
    /// form over flipped weights), when it runs as one.
    pub fn input_gradient_forward(&self, shape: &Conv2dShape) -> Option<Conv2dShape> {
        let mut t = ConvTranspose2dShape::input_gradient_of(shape);
        loop {
            match plan::backward::transposed(&t, &self.limits()).ok()? {
                Transposed::Spread { unit, .. } => t = unit,
                Transposed::Flipped { shape, params, .. } => {
                    return Conv2dShape::new(&t.input_shape(), &shape, None, &params).ok()
                }
                _ => return None,
            }
        }
    }

    /// Verifies and times `trials` against `reference`, then keeps the winner for `shape`'s
    /// class (the untuned choice unless another is faster by more than [`MARGIN`]).
    fn tune(
        &self,
        op: Op,
        shape: &Conv2dShape,
        untuned: String,
        mut reference: Trial<'_>,
        mut trials: Vec<Trial<'_>>,
    ) -> Result<TuneReport> {
        let fresh = |trial: &mut Trial<'_>| -> Result<GpuTensor> {
            (trial.run)(true)?.ok_or_else(|| Error::UnsupportedAlgorithm {
                algorithm: "tuning",
                reason: format!("{} returned no output to check", trial.name),
            })
        };
        let want = self.download(&fresh(&mut reference)?)?;
        let mut verdicts: Vec<Option<Verdict>> = Vec::new();
        let mut first = Vec::new();
        // 1. Build, run and check each candidate; time two more runs of those that match.
        for trial in &mut trials {
            let outcome = match fresh(trial) {
                Ok(out) => self
                    .download(&out)
                    .map(|got| first_difference(got.data(), want.data())),
                Err(e) => Err(e),
            };
            let verdict = match outcome {
                Ok(Some(why)) => {
                    log::warn!("wgconv: tuner rejects {}: {why}", trial.name);
                    Some(Verdict::Rejected { why })
                }
                Ok(None) => {
                    // The faster of two runs: a driver may finish its work on a pipeline lazily,
                    // at its first dispatches.
                    let a = timed(self, &mut || (trial.run)(false).map(drop))?;
                    let b = timed(self, &mut || (trial.run)(false).map(drop))?;
                    first.push(a.min(b));
                    None
                }
                Err(e @ (Error::DeviceLost { .. } | Error::Timeout { .. }))
                    if !is_build_failure(&e) =>
                {
                    return Err(e)
                }
                Err(e) => Some(Verdict::Unavailable { why: e.to_string() }),
            };
            verdicts.push(verdict);
        }
        // 2. Prune the slow, then time the rest in interleaved rounds.
        let best_first = first.iter().copied().fold(f64::INFINITY, f64::min);
        let mut firsts = first.into_iter();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); trials.len()];
        for (verdict, slot) in verdicts.iter_mut().zip(&mut times) {
            if verdict.is_none() {
                let first_ms = firsts.next().unwrap_or(f64::INFINITY);
                if first_ms > 3.0 * best_first {
                    *verdict = Some(Verdict::Pruned { first_ms });
                } else {
                    slot.push(first_ms);
                }
            }
        }
        // Short kernels get more rounds: a few milliseconds wander by tens of percent.
        let rounds = ((TIMED_MS / best_first).ceil() as usize).clamp(ROUNDS, MAX_ROUNDS);
        for _ in 1..rounds {
            for (trial, slot) in trials.iter_mut().zip(&mut times) {
                if !slot.is_empty() {
                    slot.push(timed(self, &mut || (trial.run)(false).map(drop))?);
                }
            }
        }
        // 3. The verdicts, and the winner.
        let candidates: Vec<CandidateResult> = trials
            .iter()
            .zip(verdicts)
            .zip(times)
            .map(|((trial, verdict), mut slot)| CandidateResult {
                name: trial.name.clone(),
                verdict: verdict.unwrap_or_else(|| {
                    slot.sort_by(f64::total_cmp);
                    Verdict::Timed {
                        median_ms: slot[slot.len() / 2],
                        runs: slot.len(),
                    }
                }),
            })
            .collect();
        let mut report = TuneReport {
            op,
            class: ShapeClass::of(shape),
            shape: *shape,
            untuned: untuned.clone(),
            winner: untuned.clone(),
            candidates,
        };
        let fastest = report
            .candidates
            .iter()
            .filter_map(|c| report.time_of(&c.name).map(|t| (t, c.name.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let untuned_ms = report.time_of(&untuned);
        if let Some((ms, name)) = fastest {
            if untuned_ms.is_none_or(|u| ms < MARGIN * u) {
                report.winner = name;
            }
        }
        if let Some(ms) = report.time_of(&report.winner) {
            self.record_winner(Winner {
                op,
                class: report.class.clone(),
                choice: report.winner.clone(),
                micros: (ms * 1e3).round() as u64,
            });
        }
        Ok(report)
    }
}
