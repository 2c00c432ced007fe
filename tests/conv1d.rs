//! conv1d against the independent f64 reference: hundreds of random configurations on every
//! kernel, gradients against central differences and on the GPU, packed weights, unbatched
//! inputs, and the lecture's 1-D cross-correlation.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every seed by N.

mod common;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use wgconv::cpu::reference;
use wgconv::{Algorithm, Conv1dParams, ConvNdShape, Error, PaddingNd, Tensor};

use common::{
    check_against_central_differences, check_gpu_grads, compare, engine, log_uniform, max_abs,
    random_tensor, rng, seed_offset, tolerance, view4,
};

/// Random configurations per run (the family's bar is at least 300).
const CONFIGS: usize = 320;

/// Upper bound on multiply-adds per configuration, to keep the suite quick on software adapters.
const MAX_MACS: usize = 400_000;

/// One random conv1d problem.
struct Config {
    input: Vec<usize>,
    weight: Vec<usize>,
    bias: bool,
    params: Conv1dParams,
}

impl Config {
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "conv1d input {:?} weight {:?} bias {} stride {:?} padding {:?} dilation {:?} groups {} flip {}",
            self.input, self.weight, self.bias, p.stride, p.padding, p.dilation, p.groups, p.flip_kernel
        )
    }

    fn shape(&self) -> wgconv::Result<ConvNdShape<1>> {
        let bias = [self.weight[0]];
        ConvNdShape::new(
            &self.input,
            &self.weight,
            self.bias.then_some(&bias[..]),
            &self.params,
        )
    }
}

/// Draws one valid configuration with at most `max_macs` multiply-adds: batch 1-4 or unbatched,
/// channels 1-64, groups incl. depthwise with channel multipliers, kernels 1-11, stride 1-4,
/// asymmetric padding or same/valid, dilation 1-3, lengths 1 to 4000, with or without bias.
fn random_config(rng: &mut ChaCha8Rng, max_macs: usize) -> Config {
    loop {
        let (groups, c, o) = match rng.random_range(0..10) {
            0..=5 => (1, log_uniform(rng, 1, 64), log_uniform(rng, 1, 64)),
            6..=7 => {
                let g = rng.random_range(2..=4);
                let (c, o) = (rng.random_range(1..=16), rng.random_range(1..=16));
                (g, g * c, g * o)
            }
            _ => {
                let c = log_uniform(rng, 1, 32);
                (c, c, c * rng.random_range(1..=4))
            }
        };
        let k = log_uniform(rng, 1, 11);
        let mut stride = rng.random_range(1..=4);
        let dilation = rng.random_range(1..=3);
        let padding = match rng.random_range(0..10) {
            0..=1 => {
                stride = 1;
                PaddingNd::Same
            }
            2 => PaddingNd::Valid,
            _ => PaddingNd::Explicit([[rng.random_range(0..=4), rng.random_range(0..=4)]]),
        };
        let [[before, after]] = padding.resolve([k], [dilation]);
        let span = dilation * (k - 1) + 1;
        let len = log_uniform(rng, 1, 4000).max(span.saturating_sub(before + after));
        let input = if rng.random_bool(0.15) {
            vec![c, len]
        } else {
            vec![rng.random_range(1..=4), c, len]
        };
        let config = Config {
            input,
            weight: vec![o, c / groups, k],
            bias: rng.random_bool(0.5),
            params: Conv1dParams {
                stride: [stride],
                padding,
                dilation: [dilation],
                groups,
                // True convolution in one configuration in five.
                flip_kernel: rng.random_bool(0.2),
                ..Conv1dParams::default()
            },
        };
        let Ok(shape) = config.shape() else {
            continue;
        };
        if shape.flops() / 2 <= max_macs as u64 {
            return config;
        }
    }
}

#[test]
fn random_conv1d_configs_match_the_reference_on_every_kernel() {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(0x0c0d_1d00);
    let mut forced = 0;
    for case in 0..CONFIGS {
        let cfg = random_config(&mut rng, MAX_MACS);
        let context = format!("case {case}: {}", cfg.describe());
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = cfg.bias.then(|| random_tensor(&mut rng, &cfg.weight[..1]));
        let (shape, want) =
            reference::conv_nd_f64(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        let k = cfg.weight[1] * cfg.weight[2];
        let tol = tolerance(k, max_abs(&x), max_abs(&w), b.as_ref().map_or(0.0, max_abs));
        let out_shape = shape.output_shape();
        // The one-shot call, with the engine's choice.
        let got = engine
            .conv1d(&x, &w, b.as_ref(), &cfg.params)
            .expect(&context);
        assert_eq!(got.shape(), &out_shape[..], "{context}");
        compare(&context, view4(&out_shape), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}"));
        // Every algorithm that covers the shape, each into an output that starts as NaN.
        let (gx, gw) = (engine.upload(&x).unwrap(), engine.upload(&w).unwrap());
        let gb = b.as_ref().map(|b| engine.upload(b).unwrap());
        let nan = Tensor::full(out_shape.clone(), f32::NAN).unwrap();
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = engine.upload(&nan).unwrap();
            let run =
                engine.conv1d_into_with(algorithm, &gx, &gw, gb.as_ref(), &cfg.params, &mut out);
            match run {
                Ok(()) => forced += 1,
                Err(Error::UnsupportedAlgorithm { .. }) if algorithm != Algorithm::Direct => {
                    continue
                }
                Err(e) => panic!("{context}, {algorithm:?}: {e}"),
            }
            let got = engine.download(&out).expect(&context);
            let context = format!("{context}, {algorithm:?}");
            compare(&context, view4(&out_shape), got.data(), &want, tol)
                .unwrap_or_else(|m| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}"));
        }
    }
    assert!(forced >= 2 * CONFIGS, "only {forced} forced-kernel runs");
}

#[test]
fn conv1d_gradients_match_central_differences_of_the_reference() {
    let mut rng = rng(0x0c0d_1d01);
    for _ in 0..48 {
        let cfg = random_config(&mut rng, 3000);
        check_against_central_differences(
            &cfg.describe(),
            &cfg.input,
            &cfg.weight,
            &cfg.params,
            &mut rng,
        );
    }
}

#[test]
fn conv1d_gradients_on_the_gpu_match_the_reference() {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(0x0c0d_1d02);
    for case in 0..100 {
        let cfg = random_config(&mut rng, 100_000);
        let context = format!("case {case}: {}", cfg.describe());
        let shape = cfg.shape().expect(&context);
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let gy = random_tensor(&mut rng, &shape.output_shape());
        let want = reference::conv_nd_backward_f64(&x, &w, &gy, &cfg.params).expect(&context);
        let up = |t: &Tensor| engine.upload(t).unwrap();
        let grads = engine
            .conv1d_backward(&up(&x), &up(&w), &up(&gy), &cfg.params, true)
            .expect(&context);
        assert_eq!(grads.input.shape(), x.shape(), "{context}");
        assert_eq!(grads.weight.shape(), w.shape(), "{context}");
        assert!(
            grads.bias.is_some(),
            "{context}: the bias gradient was asked for"
        );
        let scale = (max_abs(&x), max_abs(&w), max_abs(&gy));
        check_gpu_grads(engine, &context, &grads, &want, scale)
            .unwrap_or_else(|m| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}"));
    }
}

#[test]
fn packed_conv1d_weights_give_the_plain_result() {
    let engine = engine();
    let mut rng = rng(0x0c0d_1d03);
    let params = Conv1dParams::default().with_stride(4).with_padding(4);
    let x = random_tensor(&mut rng, &[2, 32, 1600]);
    let w = random_tensor(&mut rng, &[64, 32, 9]);
    let (gx, gw) = (engine.upload(&x).unwrap(), engine.upload(&w).unwrap());
    let plain = engine.conv1d_gpu(&gx, &gw, None, &params).unwrap();
    let packed = engine.pack_weights(engine.upload(&w).unwrap(), 1).unwrap();
    assert_eq!(packed.shape(), [64, 32, 9]);
    let from_packed = engine.conv1d_gpu(&gx, &packed, None, &params).unwrap();
    assert_eq!(from_packed.shape(), [2, 64, 400]);
    let (a, b) = (
        engine.download(&plain).unwrap(),
        engine.download(&from_packed).unwrap(),
    );
    let (_, want) = reference::conv_nd_f64(&x, &w, None, &params).unwrap();
    let tol = tolerance(32 * 9, max_abs(&x), max_abs(&w), 0.0);
    compare("plain", [2, 64, 1, 400], a.data(), &want, tol).unwrap();
    compare("packed", [2, 64, 1, 400], b.data(), &want, tol).unwrap();
}

#[test]
fn unbatched_conv1d_is_the_batch_of_one_without_its_batch_axis() {
    let engine = engine();
    let mut rng = rng(0x0c0d_1d04);
    let x = random_tensor(&mut rng, &[3, 50]);
    let w = random_tensor(&mut rng, &[5, 3, 4]);
    let b = random_tensor(&mut rng, &[5]);
    let params = Conv1dParams::default()
        .with_padding(PaddingNd::Same)
        .with_dilation(2);
    let y = engine.conv1d(&x, &w, Some(&b), &params).unwrap();
    assert_eq!(y.shape(), [5, 50]);
    let batched = Tensor::new([1, 3, 50], x.data().to_vec()).unwrap();
    let y1 = engine.conv1d(&batched, &w, Some(&b), &params).unwrap();
    assert_eq!(y1.shape(), [1, 5, 50]);
    assert_eq!(y.data(), y1.data());
}

/// The lecture's 1-D cross-correlation: `[0, 1, 2, 3, 4, 5, 6]` with `[1, 2]` is
/// `[2, 5, 8, 11, 14, 17]`, exactly (small integers are exact in f32).
#[test]
fn the_lectures_1d_cross_correlation_is_exact() {
    let engine = engine();
    let x = Tensor::new([1, 1, 7], (0..7).map(|v| v as f32).collect()).unwrap();
    let k = Tensor::new([1, 1, 2], vec![1.0, 2.0]).unwrap();
    let want = [2.0, 5.0, 8.0, 11.0, 14.0, 17.0];
    let params = Conv1dParams::default();
    assert_eq!(
        reference::conv1d(&x, &k, None, &params).unwrap().data(),
        want
    );
    assert_eq!(engine.conv1d(&x, &k, None, &params).unwrap().data(), want);
}
