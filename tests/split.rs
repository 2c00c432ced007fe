//! Problems beyond the device's limits are split into pieces (over batch, groups, output channels
//! and output rows, each reading its input halo) and give the same result as an unsplit run.
//!
//! The small limits used here are wgpu's downlevel defaults with the binding, buffer and dispatch
//! limits cut down, so that small random problems need many pieces. The real large problem is in
//! tests/large_input.rs.

mod common;

use wgconv::gpu::plan::{self, Algorithm, PlanLimits};
use wgconv::{cpu, Conv2dParams, Conv2dShape, Engine, EngineOptions, Padding, Tensor};

use rand::RngExt;

use common::{compare, engine, random_case, random_tensor, rng, Case};

/// Bytes of one storage binding on the small device: 4096 f32 values.
const SMALL_BINDING: u32 = 16384;

/// An engine whose bindings hold 4096 values and whose dispatches have at most 2 workgroups per
/// dimension; `max_buffer` bounds whole tensors.
fn small_engine(max_buffer: u64, algorithm: Algorithm) -> Engine {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: SMALL_BINDING.into(),
        max_buffer_size: max_buffer,
        max_compute_workgroups_per_dimension: 2,
        ..wgpu::Limits::downlevel_defaults()
    };
    Engine::with_options(EngineOptions {
        limits: Some(limits),
        algorithm,
        ..EngineOptions::default()
    })
    .expect("an engine with small limits (see tests/common/mod.rs for installing an adapter)")
}

/// Values in the largest tensor of the smallest piece a split can make: one output row of one
/// channel of one image, reading `C/groups` channels of the rows under the kernel.
fn smallest_piece(s: &Conv2dShape) -> usize {
    let rows = (s.dilation_h * (s.kernel_h - 1) + 1).min(s.in_h);
    let input = s.in_channels_per_group() * rows * s.in_w;
    input.max(s.reduction_len()).max(s.out_w)
}

/// The pieces' own convolutions, run on the CPU reference and put together, equal the whole
/// problem's reference bit for bit: the geometry (halo rows, adjusted padding, channel and weight
/// ranges, output placement) is exact, independently of any GPU.
#[test]
fn pieces_put_together_equal_the_whole_on_the_cpu_reference() {
    let mut rng = rng(0x5b11_0001);
    let mut split_cases = 0;
    for case in 0..300 {
        let Case {
            cfg, x, w, b, want, ..
        } = random_case(&mut rng, 200_000, false);
        let context = format!("case {case}: {}", cfg.describe());
        let bias_shape = cfg.bias.then_some(&cfg.weight[..1]);
        let shape = Conv2dShape::new(&cfg.input, &cfg.weight, bias_shape, &cfg.params).unwrap();
        // Bindings of 1-3 times the smallest piece's largest tensor force splits along every
        // axis the shape allows.
        let limits = PlanLimits {
            max_binding: 4 * smallest_piece(&shape) as u64 * rng.random_range(1..=3),
            max_workgroups_per_dim: 2,
            ..PlanLimits::unlimited_cpu()
        };
        let Some(split) = plan::schedule(&shape, &limits, Algorithm::Direct).expect(&context)
        else {
            continue;
        };
        split_cases += 1;
        let pieces = plan::pieces(&shape, &split).expect(&context);
        let mut got = vec![f64::NAN; want.len()];
        let mut written = vec![0u8; want.len()];
        for piece in &pieces {
            let mut px = vec![0.0f32; piece.shape.input_len()];
            for r in piece.input_runs(&shape) {
                px[r.dst..r.dst + r.len].copy_from_slice(&x.data()[r.src..r.src + r.len]);
            }
            let px = Tensor::new(piece.shape.input_shape(), px).unwrap();
            let pw = Tensor::new(
                piece.shape.weight_shape(),
                w.data()[piece.weight_range(&shape)].to_vec(),
            )
            .unwrap();
            let pb = b.as_ref().map(|b| {
                Tensor::new(
                    [piece.out_channels.len()],
                    b.data()[piece.out_channels.clone()].to_vec(),
                )
                .unwrap()
            });
            let (_, py) = cpu::reference::conv2d_f64(&px, &pw, pb.as_ref(), &piece.params())
                .unwrap_or_else(|e| panic!("{context}, piece {piece:?}: {e}"));
            for r in piece.output_runs(&shape) {
                got[r.dst..r.dst + r.len].copy_from_slice(&py[r.src..r.src + r.len]);
                written[r.dst..r.dst + r.len]
                    .iter_mut()
                    .for_each(|c| *c += 1);
            }
        }
        assert!(
            written.iter().all(|&c| c == 1),
            "{context}: pieces {split:?} must cover every output exactly once"
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{context}, split {split:?}: output {i} is {g} from pieces, {w} whole"
            );
        }
    }
    assert!(split_cases > 200, "only {split_cases} of 300 cases split");
}

/// Random problems on a device with tiny limits: split on the GPU, they match the reference, and
/// with the direct kernel they equal the unsplit run on the normal device bit for bit.
#[test]
fn random_problems_split_on_a_small_device_match_the_unsplit_run() {
    let small = small_engine(1 << 28, Algorithm::Direct);
    let small_auto = small_engine(1 << 28, Algorithm::Auto);
    let mut rng = rng(0x5b11_0002);
    let (mut split_cases, mut refused) = (0, 0);
    for case in 0..80 {
        let Case {
            cfg,
            x,
            w,
            b,
            shape,
            want,
            tol,
        } = random_case(&mut rng, 300_000, false);
        let context = format!("case {case}: {}", cfg.describe());
        let bias_shape = cfg.bias.then_some(&cfg.weight[..1]);
        let problem = Conv2dShape::new(&cfg.input, &cfg.weight, bias_shape, &cfg.params).unwrap();
        match small.schedule(&problem) {
            Ok(Some(_)) => split_cases += 1,
            Ok(None) => {}
            Err(e) => {
                // Only when even one output row of one channel does not fit, and then typed.
                assert!(
                    smallest_piece(&problem) * 4 > SMALL_BINDING as usize,
                    "{context}: {e}"
                );
                assert!(
                    matches!(e, wgconv::Error::DeviceLimit { .. }),
                    "{context}: {e:?}"
                );
                let e = small.conv2d(&x, &w, b.as_ref(), &cfg.params).unwrap_err();
                assert!(
                    matches!(e, wgconv::Error::DeviceLimit { .. }),
                    "{context}: {e:?}"
                );
                refused += 1;
                continue;
            }
        }
        // GPU tensors in, GPU tensor out, output pre-filled with NaN.
        let gx = small.upload(&x).expect(&context);
        let gw = small.upload(&w).expect(&context);
        let gb = b.as_ref().map(|b| small.upload(b).expect(&context));
        let nan = Tensor::full(shape.to_vec(), f32::NAN).unwrap();
        let mut out = small.upload(&nan).expect(&context);
        small
            .conv2d_into(&gx, &gw, gb.as_ref(), &cfg.params, &mut out)
            .expect(&context);
        let split = small.download(&out).expect(&context);
        compare(&context, shape, split.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));
        let mut unsplit_out = engine().upload(&nan).unwrap();
        let (ux, uw) = (engine().upload(&x).unwrap(), engine().upload(&w).unwrap());
        let ub = b.as_ref().map(|b| engine().upload(b).unwrap());
        engine()
            .conv2d_into_with(
                Algorithm::Direct,
                &ux,
                &uw,
                ub.as_ref(),
                &cfg.params,
                &mut unsplit_out,
            )
            .expect(&context);
        let unsplit = engine().download(&unsplit_out).unwrap();
        assert!(
            split.data() == unsplit.data(),
            "{context}: the split run differs from the unsplit one"
        );
        // The engine's own choice of kernels per piece, through the one-shot call.
        let auto = small_auto
            .conv2d(&x, &w, b.as_ref(), &cfg.params)
            .expect(&context);
        compare(&format!("{context}, auto"), shape, auto.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
    assert!(
        split_cases > 50 && refused < 15,
        "{split_cases} of 80 cases split, {refused} refused"
    );
}

/// Tensors larger than the device's `max_buffer_size` cannot live on the GPU at all; the one-shot
/// call cuts them into pieces on the host.
#[test]
fn tensors_over_max_buffer_size_are_cut_on_the_host() {
    // Buffers of 32 KiB: an input of 2 x 8 x 30 x 30 values (57.6 KB) does not fit one.
    let small = small_engine(32 << 10, Algorithm::Auto);
    let mut rng = rng(0x5b11_0003);
    let params = Conv2dParams::default()
        .with_padding(Padding::explicit(2, 1, 0, 3))
        .with_stride((2, 1))
        .with_dilation((2, 1))
        .with_groups(2);
    let x = random_tensor(&mut rng, &[2, 8, 30, 30]);
    let w = random_tensor(&mut rng, &[6, 4, 3, 2]);
    let b = random_tensor(&mut rng, &[6]);
    let (shape, want) = cpu::reference::conv2d_f64(&x, &w, Some(&b), &params).unwrap();
    let e = small.upload(&x).unwrap_err();
    assert!(
        matches!(
            e,
            wgconv::Error::DeviceLimit {
                limit_name: "max_buffer_size",
                ..
            }
        ),
        "{e:?}"
    );
    let got = small.conv2d(&x, &w, Some(&b), &params).unwrap();
    let tol = common::tolerance(shape.reduction_len(), 1.0, 1.0, 1.0);
    compare("host split", shape.output_shape(), got.data(), &want, tol)
        .unwrap_or_else(|m| panic!("{m}"));
    let got = pollster::block_on(small.conv2d_async(&x, &w, Some(&b), &params)).unwrap();
    compare(
        "host split, async",
        shape.output_shape(),
        got.data(),
        &want,
        tol,
    )
    .unwrap_or_else(|m| panic!("{m}"));
}

/// Weights too large for one binding: packing keeps them unpacked and convolutions split over
/// output channels.
#[test]
fn weights_over_one_binding_split_over_output_channels() {
    let small = small_engine(1 << 28, Algorithm::Auto);
    let mut rng = rng(0x5b11_0004);
    let params = Conv2dParams::default().with_padding(1);
    // 64 x 16 x 3 x 3 = 9216 weights, over 4096 per binding.
    let x = random_tensor(&mut rng, &[1, 16, 6, 5]);
    let w = random_tensor(&mut rng, &[64, 16, 3, 3]);
    let (shape, want) = cpu::reference::conv2d_f64(&x, &w, None, &params).unwrap();
    let split = small.schedule(&shape).unwrap().expect("a split");
    assert!(split.out_channels < 64, "{split:?}");
    let packed = small
        .pack_weights(small.upload(&w).unwrap(), 1)
        .expect("weights too large to pack are kept as they are");
    let gx = small.upload(&x).unwrap();
    let got = small.conv2d_gpu(&gx, &packed, None, &params).unwrap();
    let got = small.download(&got).unwrap();
    let tol = common::tolerance(shape.reduction_len(), 1.0, 1.0, 0.0);
    compare(
        "packed, split",
        shape.output_shape(),
        got.data(),
        &want,
        tol,
    )
    .unwrap_or_else(|m| panic!("{m}"));
}

/// A problem whose single smallest piece (one output row of one channel of one image) still does
/// not fit is refused with the unsplit problem's typed error.
#[test]
fn a_problem_whose_smallest_piece_does_not_fit_is_refused() {
    let small = small_engine(1 << 28, Algorithm::Auto);
    // One output row reads 3 rows of 1500 columns: 4500 values, over 4096.
    let x = Tensor::full([1, 1, 3, 1500], 1.0).unwrap();
    let w = Tensor::full([1, 1, 3, 3], 1.0).unwrap();
    let e = small
        .conv2d(&x, &w, None, &Conv2dParams::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            wgconv::Error::DeviceLimit {
                bytes: 18000,
                limit: 16384,
                ..
            }
        ),
        "{e:?}"
    );
}

/// More workgroups than one dispatch dimension allows (65535 on these adapters): a batch of
/// 70000 images puts 70000 workgroups on the register-tiled kernel's z axis, which is split over
/// the batch; the direct kernel's flat grid wraps rows instead (over 65535 x 64 outputs).
#[test]
fn dispatches_over_65535_workgroups_are_split_and_correct() {
    let engine = engine();
    assert!(engine.limits().max_workgroups_per_dim <= 65535);
    let mut rng = rng(0x5b11_0005);
    let params = Conv2dParams::default();
    let x = random_tensor(&mut rng, &[70_000, 1, 4, 4]);
    let w = random_tensor(&mut rng, &[4, 1, 3, 3]);
    let (shape, want) = cpu::reference::conv2d_f64(&x, &w, None, &params).unwrap();
    let tol = common::tolerance(shape.reduction_len(), 1.0, 1.0, 0.0);
    let limits = engine.limits();
    let split = plan::schedule(&shape, &limits, Algorithm::RegisterTiled)
        .unwrap()
        .expect("70000 images exceed the z dimension");
    assert!(split.batch <= 65535, "{split:?}");
    let gx = engine.upload(&x).unwrap();
    let gw = engine.upload(&w).unwrap();
    let nan = Tensor::full(shape.output_shape().to_vec(), f32::NAN).unwrap();
    for algorithm in [Algorithm::RegisterTiled, Algorithm::Direct, Algorithm::Auto] {
        let mut out = engine.upload(&nan).unwrap();
        engine
            .conv2d_into_with(algorithm, &gx, &gw, None, &params, &mut out)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        let got = engine.download(&out).unwrap();
        compare(
            &format!("{algorithm:?}"),
            shape.output_shape(),
            got.data(),
            &want,
            tol,
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
    // One image of 2100 x 2100 outputs through the direct kernel: 4.41M outputs, over 65535 x 64.
    let x = random_tensor(&mut rng, &[1, 1, 2102, 2102]);
    let w = random_tensor(&mut rng, &[1, 1, 3, 3]);
    let (shape, want) = cpu::reference::conv2d_f64(&x, &w, None, &params).unwrap();
    assert!(shape.output_len() > 65535 * 64);
    let gx = engine.upload(&x).unwrap();
    let gw = engine.upload(&w).unwrap();
    let mut out = engine
        .upload(&Tensor::full(shape.output_shape().to_vec(), f32::NAN).unwrap())
        .unwrap();
    engine
        .conv2d_into_with(Algorithm::Direct, &gx, &gw, None, &params, &mut out)
        .unwrap();
    let got = engine.download(&out).unwrap();
    compare(
        "direct, 4.41M outputs",
        shape.output_shape(),
        got.data(),
        &want,
        tol,
    )
    .unwrap_or_else(|m| panic!("{m}"));
}
