//! The GPU against the independent f64 CPU reference over many random configurations.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every test's seed by N (default 0); a failure prints the seed,
//! the configuration, the first bad index, both values and the tolerance.

mod common;

use wgconv::{cpu, Algorithm, Conv2dShape, Error, Tensor};

use common::{
    compare, describe, engine, max_abs, random_case, random_config, random_tensor, rng,
    seed_offset, tolerance, Case,
};

/// Upper bound on multiply-adds per configuration, to keep the suite quick on software adapters.
const MAX_MACS: usize = 3_000_000;

/// Runs `count` random configurations from `seed` on the GPU (output buffer pre-filled with NaN)
/// and on the CPU reference.
fn check_random_configs(seed: u64, count: usize, pointwise_only: bool) {
    let offset = seed_offset();
    let mut rng = rng(seed);
    let seed = seed.wrapping_add(offset);
    let engine = engine();
    for case in 0..count {
        let Case {
            cfg,
            x,
            w,
            b,
            shape,
            want,
            tol,
        } = random_case(&mut rng, MAX_MACS, pointwise_only);
        let context = format!("seed {seed}, case {case}: {}", cfg.describe());
        let gx = engine.upload(&x).expect(&context);
        let gw = engine.upload(&w).expect(&context);
        let gb = b.as_ref().map(|b| engine.upload(b).expect(&context));
        let nan = Tensor::full(shape.to_vec(), f32::NAN).expect(&context);
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
            if let Err(msg) = compare(&context, shape, got.data(), &want, tol) {
                let bias_shape = cfg.bias.then_some(&cfg.weight[..1]);
                let problem = Conv2dShape::new(&cfg.input, &cfg.weight, bias_shape, &cfg.params);
                let kernel = problem.and_then(|p| engine.plan(&p)).map(|p| p.kernel);
                panic!("{msg}\nauto plan {kernel:?}; reproduce with WGCONV_TEST_SEED={offset}");
            }
        }
    }
}

/// Auto, then each algorithm forced (skipped only where it does not cover the shape).
const ALGORITHMS: [Algorithm; 7] = Algorithm::NAMED;

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
    let mut rng = rng(0x5eed_2001);
    let engine = engine();
    for case in 0..40 {
        let cfg = random_config(&mut rng, MAX_MACS, false);
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
            .conv2d_gpu(&gx, &packed, None, &cfg.params)
            .expect(&context);
        let got = engine.download(&got).expect(&context);
        let tol = tolerance(shape.reduction_len(), max_abs(&x), max_abs(&w), 0.0);
        compare(&context, shape.output_shape(), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}
