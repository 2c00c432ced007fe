//! The backward passes at the edges of what they can index and hold: refusals are typed errors,
//! never wrong numbers or panics, and internal routes adapt to the device's limits and to the
//! engine's forced algorithm.

mod common;

use wgconv::gpu::plan;
use wgconv::{
    cpu, Algorithm, Conv2dParams, Conv2dShape, ConvTranspose2dParams, ConvTranspose2dShape, Engine,
    EngineOptions, Error, Padding, Tensor,
};

use common::{compare, max_abs, random_tensor, rng, tolerance};

fn engine_with(limits: Option<wgpu::Limits>, algorithm: Algorithm) -> Engine {
    Engine::with_options(EngineOptions {
        limits,
        algorithm,
        ..EngineOptions::default()
    })
    .expect("an engine (see tests/common/mod.rs for installing an adapter)")
}

/// The input gradient of a convolution, on `engine`, against the reference.
fn check_grad_input(engine: &Engine, input: [usize; 4], weight: [usize; 4], p: &Conv2dParams) {
    let mut rng = rng(0x11e5_0001);
    let x = random_tensor(&mut rng, &input);
    let w = random_tensor(&mut rng, &weight);
    let s = Conv2dShape::new(&input, &weight, None, p).unwrap();
    let gy = random_tensor(&mut rng, &s.output_shape());
    let want = cpu::reference::conv2d_backward_f64(&x, &w, &gy, p).unwrap();
    let got = engine
        .conv2d_grad_input(
            &engine.upload(&gy).unwrap(),
            &engine.upload(&w).unwrap(),
            &input,
            p,
        )
        .unwrap_or_else(|e| panic!("{input:?} {weight:?} {p:?}: {e}"));
    let got = engine.download(&got).unwrap();
    let k = s.out_channels_per_group() * s.kernel_h * s.kernel_w;
    compare(
        "grad input",
        input,
        got.data(),
        &want.input,
        tolerance(k, max_abs(&gy), max_abs(&w), 0.0),
    )
    .unwrap_or_else(|m| panic!("{m}"));
}

/// A strided input gradient whose spread-out `grad_output` would exceed one binding (while every
/// tensor of the problem fits) takes the gather kernel instead of failing.
#[test]
fn a_strided_input_gradient_too_big_to_spread_falls_back_to_the_gather() {
    let small = engine_with(
        Some(wgpu::Limits {
            max_storage_buffer_binding_size: 16384,
            ..wgpu::Limits::downlevel_defaults()
        }),
        Algorithm::Auto,
    );
    // grad_output [1, 8, 20, 20] (3200 values) spreads to [1, 8, 39, 39] (12168), over 4096.
    let p = Conv2dParams::default().with_stride(2).with_padding(1);
    check_grad_input(&small, [1, 2, 40, 40], [8, 2, 3, 3], &p);
}

/// An engine forced to one algorithm still computes gradients: the internal forward convolution
/// of a stride-1 input gradient picks its own kernel.
#[test]
fn gradients_work_on_an_engine_with_a_forced_algorithm() {
    for algorithm in [
        Algorithm::Pointwise,
        Algorithm::Direct,
        Algorithm::RegisterTiled,
    ] {
        let forced = engine_with(None, algorithm);
        let p = Conv2dParams::default().with_padding(1);
        check_grad_input(&forced, [2, 4, 9, 7], [8, 4, 3, 3], &p);
    }
}

/// Padding and strides past i32 reach are refused by the backward passes, not wrapped into wrong
/// sums (the forward pass splits such problems; the gradients do not yet).
#[test]
fn gradients_refuse_what_their_kernels_cannot_index() {
    let engine = common::engine();
    let x = engine
        .upload(&Tensor::new([1, 1, 2, 1], vec![1.0, 10.0]).unwrap())
        .unwrap();
    let w = engine
        .upload(&Tensor::full([1, 1, 1, 1], 1.0).unwrap())
        .unwrap();
    let p = Conv2dParams::default()
        .with_stride((1 << 31, 1))
        .with_padding(Padding::explicit((1 << 32) - 1, 0, 0, 0));
    let s = Conv2dShape::new(&[1, 1, 2, 1], &[1, 1, 1, 1], None, &p).unwrap();
    let gy = engine
        .upload(&Tensor::full(s.output_shape().to_vec(), 1.0).unwrap())
        .unwrap();
    for e in [
        engine
            .conv2d_grad_weight(&x, &gy, &[1, 1, 1, 1], &p)
            .unwrap_err(),
        engine
            .conv2d_grad_input(&gy, &w, &[1, 1, 2, 1], &p)
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("exceeds 2147483647"), "{e}");
    }
}

/// Sizes whose products overflow are errors, not arithmetic panics.
#[test]
fn transposed_sizes_that_overflow_are_errors() {
    let huge = ConvTranspose2dParams::default().with_stride((usize::MAX, 1));
    let e =
        ConvTranspose2dShape::new(&[1, 1, usize::MAX, 1], &[1, 1, 1, 1], None, &huge).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    let reach = ConvTranspose2dParams::default().with_dilation((usize::MAX, 1));
    let e =
        ConvTranspose2dShape::new(&[1, 1, 1, 1], &[1, 1, usize::MAX, 1], None, &reach).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e:?}");
    // A valid shape (output 1x1) whose reach no shader can index.
    let p = ConvTranspose2dParams::default()
        .with_padding((1 << 63, 0))
        .with_dilation((1 << 63, 1));
    let x = Tensor::full([1, 1, 1, 1], 1.0).unwrap();
    let w = Tensor::full([1, 1, 3, 1], 1.0).unwrap();
    let e = common::engine()
        .conv_transpose2d(&x, &w, None, &p)
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
}

/// A forced algorithm that refuses some split pieces (their padding) refuses the whole problem
/// before anything runs, rather than after writing part of the output.
#[test]
fn a_split_whose_edge_pieces_a_forced_algorithm_refuses_is_refused_whole() {
    let shape = Conv2dShape::new(
        &[1, 2, 5, 3],
        &[2, 2, 1, 1],
        None,
        &Conv2dParams::default().with_padding(Padding::explicit(1, 0, 0, 0)),
    )
    .unwrap();
    // 80 bytes per binding: the whole input (120 bytes) does not fit, pieces of 3 output rows
    // do, and the largest piece (no padding) suits the 1x1 kernel, but the first piece keeps
    // the top padding row, which the 1x1 kernel does not take.
    let limits = plan::PlanLimits {
        max_binding: 80,
        ..plan::PlanLimits::unlimited_cpu()
    };
    assert!(plan::schedule(&shape, &limits, Algorithm::Direct)
        .unwrap()
        .is_some());
    let e = plan::schedule(&shape, &limits, Algorithm::Pointwise).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeviceLimit {
                bytes: 120,
                limit: 80,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Tensors larger than one binding: the backward passes run over pieces of the batch (input
/// gradients placed piece by piece, weight and bias gradients summed in piece order).
#[test]
fn backward_passes_over_one_binding_run_by_pieces_of_the_batch() {
    let small = engine_with(
        Some(wgpu::Limits {
            max_storage_buffer_binding_size: 16384,
            ..wgpu::Limits::downlevel_defaults()
        }),
        Algorithm::Auto,
    );
    let mut rng = rng(0x11e5_0002);
    for (input, weight, p) in [
        // 6 images of 1800 values: 10800 > 4096 per binding.
        (
            [6, 2, 30, 30],
            [4, 2, 3, 3],
            Conv2dParams::default().with_padding(1),
        ),
        (
            [5, 4, 20, 20],
            [8, 2, 3, 2],
            Conv2dParams::default()
                .with_stride(2)
                .with_groups(2)
                .with_padding(Padding::explicit(1, 0, 2, 1)),
        ),
    ] {
        let context = format!("{input:?} {weight:?} {p:?}");
        let x = random_tensor(&mut rng, &input);
        let w = random_tensor(&mut rng, &weight);
        let s = Conv2dShape::new(&input, &weight, None, &p).unwrap();
        assert!(
            s.input_len() * 4 > 16384,
            "{context}: meant to exceed a binding"
        );
        let gy = random_tensor(&mut rng, &s.output_shape());
        let want = cpu::reference::conv2d_backward_f64(&x, &w, &gy, &p).unwrap();
        let (gx, gw, ggy) = (
            small.upload(&x).unwrap(),
            small.upload(&w).unwrap(),
            small.upload(&gy).unwrap(),
        );
        let got = small
            .conv2d_backward(&gx, &gw, &ggy, &p, true)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let (mx, mw, mg) = (max_abs(&x), max_abs(&w), max_abs(&gy));
        let rows = s.batch * s.out_h * s.out_w;
        let k_in = s.out_channels_per_group() * s.kernel_h * s.kernel_w;
        for (what, got, want, shape, tol) in [
            (
                "input",
                &got.input,
                &want.input,
                input,
                tolerance(k_in, mg, mw, 0.0),
            ),
            (
                "weight",
                &got.weight,
                &want.weight,
                weight,
                tolerance(rows, mg, mx, 0.0),
            ),
            (
                "bias",
                got.bias.as_ref().unwrap(),
                &want.bias,
                [1, weight[0], 1, 1],
                tolerance(rows, mg, 1.0, 0.0),
            ),
        ] {
            let got = small.download(got).unwrap();
            compare(
                &format!("{context}, grad {what}"),
                shape,
                got.data(),
                want,
                tol,
            )
            .unwrap_or_else(|m| panic!("{m}"));
        }
        // The transposed convolution of a batch over one binding, too.
        let t = ConvTranspose2dParams::default()
            .with_stride(2)
            .with_padding(1);
        let tx = random_tensor(&mut rng, &[6, 4, 12, 12]);
        let tw = random_tensor(&mut rng, &[4, 3, 3, 3]);
        let (ts, twant) = cpu::reference::conv_transpose2d_f64(&tx, &tw, None, &t).unwrap();
        let tgot = small.conv_transpose2d(&tx, &tw, None, &t).unwrap();
        compare(
            "transposed by pieces",
            ts.output_shape(),
            tgot.data(),
            &twant,
            tolerance(4 * 9, max_abs(&tx), max_abs(&tw), 0.0),
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
}
