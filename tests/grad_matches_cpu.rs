//! The GPU's backward passes against the independent f64 CPU reference over random
//! configurations: the input, weight and bias gradients of a convolution, and the transposed
//! convolution of PyTorch's `conv_transpose2d` with output padding.
//!
//! Tolerance: each gradient element is a sum of `K` products in f32, like a forward output, so
//! the forward's bound applies with that gradient's `K` and the two factors' largest magnitudes
//! (tests/common/numeric.rs explains the constant): input gradient `K = O/groups * kh * kw` over
//! grad_output and weight; weight gradient `K = N * P * Q` over grad_output and input; bias
//! gradient `K = N * P * Q` over grad_output (times 1). The weight and bias sums run as split
//! reductions (chunks, then the chunks added), which reorders the sum but keeps that bound.

mod common;

use rand::RngExt;
use wgconv::{cpu, Conv2dShape, ConvTranspose2dParams, Tensor};

use common::{
    compare, compare_grads, engine, max_abs, random_config, random_tensor, rng, seed_offset,
    tolerance, Grads,
};

/// Multiply-adds per configuration (each pass), to keep the suite quick on software adapters.
const MAX_MACS: usize = 400_000;

fn check_gradients(seed: u64, count: usize) {
    let offset = seed_offset();
    let mut rng = rng(seed);
    let engine = engine();
    for case in 0..count {
        let cfg = random_config(&mut rng, MAX_MACS, false);
        let context = format!("seed {seed:#x}+{offset}, case {case}: {}", cfg.describe());
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let s = Conv2dShape::new(&cfg.input, &cfg.weight, None, &cfg.params).expect(&context);
        let gy = random_tensor(&mut rng, &s.output_shape());
        let want = cpu::reference::conv2d_backward_f64(&x, &w, &gy, &cfg.params).expect(&context);

        let (gx, gw, ggy) = (
            engine.upload(&x).expect(&context),
            engine.upload(&w).expect(&context),
            engine.upload(&gy).expect(&context),
        );
        let got = engine
            .conv2d_backward(&gx, &gw, &ggy, &cfg.params, cfg.bias)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let input = engine.download(&got.input).expect(&context);
        assert_eq!(input.shape(), cfg.input);
        let weight = engine.download(&got.weight).expect(&context);
        assert_eq!(weight.shape(), cfg.weight);
        let bias = match (&got.bias, cfg.bias) {
            (Some(b), true) => Some(engine.download(b).expect(&context)),
            (None, false) => None,
            (b, with) => panic!("{context}: bias gradient {b:?} for a layer with bias {with}"),
        };
        let grads = Grads {
            input: input.data(),
            weight: weight.data(),
            bias: bias.as_ref().map(Tensor::data),
        };
        compare_grads(
            &context,
            &want,
            grads,
            (max_abs(&x), max_abs(&w), max_abs(&gy)),
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn random_gradients_match_reference_part1() {
    check_gradients(0x9a4d_0001, 110);
}

#[test]
fn random_gradients_match_reference_part2() {
    check_gradients(0x9a4d_0002, 110);
}

#[test]
fn random_gradients_match_reference_part3() {
    check_gradients(0x9a4d_0003, 110);
}

/// `conv_transpose2d` with PyTorch's parameters, output padding included, against the reference.
#[test]
fn random_transposed_convolutions_match_reference() {
    let mut rng = rng(0x9a4d_1001);
    let engine = engine();
    let mut ran = 0;
    for case in 0..200 {
        // A forward configuration gives channels, kernel, stride, dilation and groups; the
        // transposed convolution maps its output size back with symmetric padding.
        let cfg = random_config(&mut rng, MAX_MACS, false);
        let [_, cg, kh, kw] = cfg.weight;
        let o = cfg.weight[0];
        let (sh, sw) = cfg.params.stride;
        let (dh, dw) = cfg.params.dilation;
        let params = ConvTranspose2dParams {
            stride: cfg.params.stride,
            padding: (rng.random_range(0..=2), rng.random_range(0..=2)),
            output_padding: (
                rng.random_range(0..sh.max(dh)),
                rng.random_range(0..sw.max(dw)),
            ),
            dilation: cfg.params.dilation,
            groups: cfg.params.groups,
        };
        let input = [
            cfg.input[0],
            o,
            rng.random_range(1..=12),
            rng.random_range(1..=12),
        ];
        let weight = [o, cg, kh, kw];
        let bias = cfg.bias.then_some([cg * cfg.params.groups]);
        let context = format!(
            "case {case}: input {input:?} weight {weight:?} bias {} {params:?}",
            cfg.bias
        );
        let x = random_tensor(&mut rng, &input);
        let w = random_tensor(&mut rng, &weight);
        let b = bias.map(|b| random_tensor(&mut rng, &b));
        let want = match cpu::reference::conv_transpose2d_f64(&x, &w, b.as_ref(), &params) {
            Ok(want) => want,
            // Padding that leaves no output: both sides refuse it (checked below).
            Err(e) => {
                let got = engine.conv_transpose2d(&x, &w, b.as_ref(), &params);
                assert!(
                    got.is_err(),
                    "{context}: reference refuses ({e}), GPU does not"
                );
                continue;
            }
        };
        let (shape, want) = want;
        let got: Tensor = engine
            .conv_transpose2d(&x, &w, b.as_ref(), &params)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(got.shape(), shape.output_shape(), "{context}");
        let tol = tolerance(
            o / cfg.params.groups * kh * kw,
            max_abs(&x),
            max_abs(&w),
            b.as_ref().map_or(0.0, max_abs),
        );
        compare(&context, shape.output_shape(), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
        ran += 1;
    }
    assert!(
        ran > 150,
        "only {ran} of 200 transposed cases had an output"
    );
}
