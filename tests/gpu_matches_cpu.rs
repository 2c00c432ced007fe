//! The GPU against the independent f64 CPU reference over many random configurations.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every test's seed by N (default 0); a failure prints the seed,
//! the configuration, the first bad index, both values and the tolerance.

mod common;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgconv::{cpu, Algorithm, Conv2dParams, Conv2dShape, Error, Padding, Tensor};

use common::{compare, describe, engine, max_abs, tolerance};

/// Upper bound on multiply-adds per configuration, to keep the suite quick on software adapters.
const MAX_MACS: usize = 3_000_000;

struct Config {
    input: [usize; 4],
    weight: [usize; 4],
    bias: bool,
    params: Conv2dParams,
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    let v = (lo as f64).ln() + rng.random::<f64>() * ((hi as f64 + 1.0).ln() - (lo as f64).ln());
    (v.exp() as usize).clamp(lo, hi)
}

/// Draws one valid configuration: batch 1-4, channels 1-64, kernels 1-7 (even and non-square),
/// stride 1-3, asymmetric padding or same/valid, dilation 1-3, groups incl. depthwise with a
/// channel multiplier, inputs from 1x1 up, with or without bias.
fn random_config(rng: &mut ChaCha8Rng, pointwise_only: bool) -> Config {
    loop {
        let batch = rng.random_range(1..=4);
        let (groups, c, o) = match rng.random_range(0..10) {
            // Plain convolution.
            0..=5 => (1, log_uniform(rng, 1, 64), log_uniform(rng, 1, 64)),
            // Grouped: 2-4 groups of 1-16 channels each.
            6..=7 => {
                let g = rng.random_range(2..=4);
                (
                    g,
                    g * rng.random_range(1..=16),
                    g * rng.random_range(1..=16),
                )
            }
            // Depthwise with channel multiplier 1-3.
            _ => {
                let c = log_uniform(rng, 1, 64);
                (c, c, c * rng.random_range(1..=3))
            }
        };
        let (kh, kw) = if pointwise_only {
            (1, 1)
        } else {
            (rng.random_range(1..=7), rng.random_range(1..=7))
        };
        let mut stride = (rng.random_range(1..=3), rng.random_range(1..=3));
        let dilation = (rng.random_range(1..=3), rng.random_range(1..=3));
        let padding = match rng.random_range(0..20) {
            0..=2 => {
                stride = (1, 1);
                Padding::Same
            }
            3..=4 => Padding::Valid,
            _ => Padding::explicit(
                rng.random_range(0..=3),
                rng.random_range(0..=3),
                rng.random_range(0..=3),
                rng.random_range(0..=3),
            ),
        };
        let (groups, stride, padding) = if pointwise_only && rng.random_bool(0.7) {
            (1, (1, 1), Padding::uniform(0))
        } else {
            (groups, stride, padding)
        };
        let o = if groups == 1 || o % groups == 0 {
            o
        } else {
            groups * o
        };
        let (t, b, l, r) = padding.resolve((kh, kw), dilation);
        // Inputs from 1x1 up, grown only as much as the dilated kernel needs.
        let span_h = dilation.0 * (kh - 1) + 1;
        let span_w = dilation.1 * (kw - 1) + 1;
        let h = log_uniform(rng, 1, 40).max(span_h.saturating_sub(t + b));
        let w = log_uniform(rng, 1, 40).max(span_w.saturating_sub(l + r));
        let params = Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
        };
        let input = [batch, c, h, w];
        let weight = [o, c / groups, kh, kw];
        let bias = rng.random_bool(0.5);
        let Ok(shape) = Conv2dShape::new(&input, &weight, bias.then_some(&[o][..]), &params) else {
            continue;
        };
        if shape.output_len() * shape.reduction_len() <= MAX_MACS {
            return Config {
                input,
                weight,
                bias,
                params,
            };
        }
    }
}

fn random_tensor(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-1.0f32..=1.0)).expect("shape fits")
}

/// Runs `count` random configurations from `seed` on the GPU (output buffer pre-filled with NaN)
/// and on the CPU reference.
fn check_random_configs(seed: u64, count: usize, pointwise_only: bool) {
    let offset = std::env::var("WGCONV_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let seed = seed.wrapping_add(offset);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let engine = engine();
    for case in 0..count {
        let cfg = random_config(&mut rng, pointwise_only);
        let context = format!(
            "seed {seed}, case {case}: {}",
            describe(&cfg.input, &cfg.weight, cfg.bias, &cfg.params)
        );
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = cfg.bias.then(|| random_tensor(&mut rng, &[cfg.weight[0]]));

        let (shape, want) =
            cpu::reference::conv2d_f64(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        let gx = engine.upload(&x).expect(&context);
        let gw = engine.upload(&w).expect(&context);
        let gb = b.as_ref().map(|b| engine.upload(b).expect(&context));
        let nan = Tensor::full(shape.output_shape().to_vec(), f32::NAN).expect(&context);
        let tol = tolerance(
            shape.reduction_len(),
            max_abs(&x),
            max_abs(&w),
            b.as_ref().map_or(0.0, max_abs),
        );
        // Every algorithm that covers the shape, each into an output that starts as NaN.
        for algorithm in ALGORITHMS {
            let mut out = engine.upload(&nan).expect(&context);
            let run =
                engine.conv2d_into_with(algorithm, &gx, &gw, gb.as_ref(), &cfg.params, &mut out);
            match run {
                Ok(()) => {}
                Err(Error::UnsupportedAlgorithm { .. }) if algorithm != Algorithm::Direct => {
                    continue
                }
                Err(e) => panic!("{context}, {algorithm:?}: {e}"),
            }
            let got = engine.download(&out).expect(&context);
            let context = format!("{context}, {algorithm:?}");
            if let Err(msg) = compare(&context, shape.output_shape(), got.data(), &want, tol) {
                let kernel = engine.plan(&shape).map(|p| p.kernel);
                panic!("{msg}\nauto plan {kernel:?}; reproduce with WGCONV_TEST_SEED={offset}");
            }
        }
    }
}

/// Auto, then each algorithm forced (skipped only where it does not cover the shape).
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Auto,
    Algorithm::Direct,
    Algorithm::Pointwise,
    Algorithm::RegisterTiled,
    Algorithm::SharedTiled,
];

#[test]
fn random_configs_match_reference_part1() {
    check_random_configs(0x5eed_0001, 130, false);
}

#[test]
fn random_configs_match_reference_part2() {
    check_random_configs(0x5eed_0002, 130, false);
}

#[test]
fn random_configs_match_reference_part3() {
    check_random_configs(0x5eed_0003, 130, false);
}

#[test]
fn random_configs_match_reference_part4() {
    check_random_configs(0x5eed_0004, 130, false);
}

#[test]
fn random_pointwise_configs_match_reference() {
    check_random_configs(0x5eed_1001, 80, true);
}

#[test]
fn packed_weights_match_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_2001);
    let engine = engine();
    for case in 0..40 {
        let cfg = random_config(&mut rng, false);
        let context = format!(
            "case {case}: {}",
            describe(&cfg.input, &cfg.weight, cfg.bias, &cfg.params)
        );
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let (shape, want) = cpu::reference::conv2d_f64(&x, &w, None, &cfg.params).expect(&context);
        let gw = engine.upload(&w).expect(&context);
        let packed = engine.pack_weights(gw, cfg.params.groups).expect(&context);
        let gx = engine.upload(&x).expect(&context);
        let got = engine
            .conv2d_packed(&gx, &packed, None, &cfg.params)
            .expect(&context);
        let got = engine.download(&got).expect(&context);
        let tol = tolerance(shape.reduction_len(), max_abs(&x), max_abs(&w), 0.0);
        compare(&context, shape.output_shape(), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}
