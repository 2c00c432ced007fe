//! The kernels written for real GPUs and run only when forced (`Algorithm::LargeTiled`, the
//! 128x128 double-buffered implicit GEMM, and `Algorithm::Depthwise`, which stages its input
//! window in workgroup memory) against the f64 CPU reference on hand-picked awkward shapes: 1,
//! primes and one past a tile in channels, pixels and the reduction; groups, stride, dilation,
//! asymmetric padding, batches, with and without bias. Outputs start as NaN, so a skipped element
//! fails. Then the shapes and devices each refuses, by name.
//!
//! Every run forces its algorithm, so this file also runs on adapters where the automatic plan's
//! kernels are slow to compile (SwiftShader).

mod common;

use wgconv::gpu::kernels::Kernel;
use wgconv::gpu::plan::{self, PlanLimits};
use wgconv::{cpu, Algorithm, Conv2dParams, Conv2dShape, Error, Padding, Tensor};

use common::{compare, describe, engine, max_abs, random_tensor, rng, tolerance};

/// One convolution: `input` `[N, C, H, W]`, `weight` `[O, C/groups, kh, kw]`, a bias or not.
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    bias: bool,
    params: Conv2dParams,
}

fn case(input: [usize; 4], weight: [usize; 4], bias: bool, params: Conv2dParams) -> Case {
    Case {
        input,
        weight,
        bias,
        params,
    }
}

fn params(
    stride: usize,
    padding: impl Into<Padding>,
    dilation: usize,
    groups: usize,
) -> Conv2dParams {
    Conv2dParams::default()
        .with_stride(stride)
        .with_padding(padding)
        .with_dilation(dilation)
        .with_groups(groups)
}

/// Runs every case with `algorithm` forced, into an output that starts as NaN, and compares it
/// with the reference within the derived tolerance. Checks first that the engine plans the case
/// with `kernel` in one dispatch, so a case cannot pass on another kernel or split in pieces.
/// With `packed`, the weights are packed once first (as a caller that reuses them does).
fn check(algorithm: Algorithm, kernel: Kernel, packed: bool, cases: &[Case]) {
    let engine = engine();
    let mut rng = rng(0x5eed_6001);
    for (i, c) in cases.iter().enumerate() {
        let context = format!(
            "{algorithm:?} case {i}: {}",
            describe(&c.input, &c.weight, c.bias, &c.params)
        );
        let bias_shape = [c.weight[0]];
        let shape = Conv2dShape::new(
            &c.input,
            &c.weight,
            c.bias.then_some(&bias_shape[..]),
            &c.params,
        )
        .expect(&context);
        let planned = plan::plan(&shape, &engine.limits(), algorithm).expect(&context);
        assert_eq!(planned.kernel, kernel, "{context}");

        let x = random_tensor(&mut rng, &c.input);
        let w = random_tensor(&mut rng, &c.weight);
        let b = c.bias.then(|| random_tensor(&mut rng, &bias_shape));
        let (out, want) =
            cpu::reference::conv2d_f64(&x, &w, b.as_ref(), &c.params).expect(&context);
        let tol = tolerance(
            out.reduction_len(),
            max_abs(&x),
            max_abs(&w),
            b.as_ref().map_or(0.0, max_abs),
        );

        let gx = engine.upload(&x).expect(&context);
        let gw = engine.upload(&w).expect(&context);
        let gb = b.as_ref().map(|b| engine.upload(b).expect(&context));
        let nan = Tensor::full(out.output_shape().to_vec(), f32::NAN).expect(&context);
        let mut gy = engine.upload(&nan).expect(&context);
        let run = if packed {
            let weights = engine.pack_weights(gw, c.params.groups).expect(&context);
            engine.conv2d_into_with(algorithm, &gx, &weights, gb.as_ref(), &c.params, &mut gy)
        } else {
            engine.conv2d_into_with(algorithm, &gx, &gw, gb.as_ref(), &c.params, &mut gy)
        };
        run.unwrap_or_else(|e| panic!("{context}: {e}"));
        let got = engine.download(&gy).expect(&context);
        compare(&context, out.output_shape(), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn large_tiled_matches_the_reference_at_channel_edges() {
    // Output channels 1, 3, 4, 5, 127, 128, 129 and 131 (a prime one past a tile of 128), over
    // 10 x 13 = 130 pixels (one past a tile plus one) and a reduction of 3 * 3 * 3 = 27 (not a
    // multiple of the step of 8).
    let cases: Vec<Case> = [1, 3, 4, 5, 127, 128, 129, 131]
        .into_iter()
        .map(|o| case([1, 3, 10, 13], [o, 3, 3, 3], o % 2 == 1, params(1, 1, 1, 1)))
        .collect();
    check(Algorithm::LargeTiled, Kernel::LargeTiled, false, &cases);
}

#[test]
fn large_tiled_matches_the_reference_at_pixel_and_reduction_edges() {
    check(
        Algorithm::LargeTiled,
        Kernel::LargeTiled,
        false,
        &[
            // One pixel, a reduction of one.
            case([1, 1, 1, 1], [8, 1, 1, 1], true, params(1, 0, 1, 1)),
            // Reductions of 7, 8 and 9 (one short of, exactly and one past a step).
            case([2, 7, 5, 5], [16, 7, 1, 1], false, params(1, 0, 1, 1)),
            case([1, 8, 5, 5], [16, 8, 1, 1], true, params(1, 0, 1, 1)),
            case([1, 9, 5, 5], [16, 9, 1, 1], false, params(1, 0, 1, 1)),
            // 127, 128 and 129 pixels, and 257 (two tiles and one).
            case([1, 4, 1, 127], [20, 4, 1, 1], true, params(1, 0, 1, 1)),
            case([1, 4, 8, 16], [20, 4, 1, 1], false, params(1, 0, 1, 1)),
            case([1, 4, 3, 43], [20, 4, 1, 1], true, params(1, 0, 1, 1)),
            case(
                [1, 5, 1, 257],
                [33, 5, 1, 3],
                false,
                params(1, (0, 1), 1, 1),
            ),
            // Two by two tiles with a large reduction (37 * 9 = 333 = 41 steps and 5).
            case([1, 37, 12, 12], [130, 37, 3, 3], true, params(1, 1, 1, 1)),
        ],
    );
}

#[test]
fn large_tiled_matches_the_reference_with_groups_stride_dilation_padding_and_batches() {
    check(
        Algorithm::LargeTiled,
        Kernel::LargeTiled,
        false,
        &[
            // Groups whose output channels are not a multiple of 4 (5 and 7 per group).
            case([2, 6, 9, 11], [15, 2, 3, 3], true, params(1, 1, 1, 3)),
            case([1, 8, 7, 7], [14, 4, 2, 2], false, params(1, 0, 1, 2)),
            // Stride 2, even kernel, asymmetric padding.
            case(
                [3, 5, 17, 19],
                [9, 5, 4, 2],
                true,
                params(2, [2, 0, 1, 3], 1, 1),
            ),
            // Dilation 2 and padding past the kernel's reach.
            case([1, 4, 11, 9], [6, 4, 3, 3], false, params(1, 3, 2, 1)),
            // Stride and dilation per axis.
            case(
                [2, 3, 20, 15],
                [11, 3, 3, 5],
                true,
                Conv2dParams::default()
                    .with_stride((2, 1))
                    .with_dilation((1, 2))
                    .with_padding((1, 4)),
            ),
            // Depthwise through the GEMM: tiles of one channel, and a channel multiplier of 3.
            case([1, 7, 6, 6], [7, 1, 3, 3], true, params(1, 1, 1, 7)),
            case([2, 3, 6, 5], [9, 1, 3, 3], false, params(2, 1, 1, 3)),
            // Seven images, one group each of a 1x1 product.
            case([7, 2, 3, 3], [3, 2, 1, 1], true, params(1, 0, 1, 1)),
        ],
    );
}

#[test]
fn large_tiled_reads_weights_packed_once() {
    check(
        Algorithm::LargeTiled,
        Kernel::LargeTiled,
        true,
        &[
            case([2, 6, 9, 11], [15, 2, 3, 3], true, params(1, 1, 1, 3)),
            case([1, 3, 10, 13], [129, 3, 3, 3], false, params(2, 1, 1, 1)),
        ],
    );
}

/// A depthwise case: `channels` input channels, `multiplier` output channels each, a `k`x`k`
/// kernel with `stride` and padding `k / 2` (the image size kept).
fn depthwise(
    batch: usize,
    channels: usize,
    multiplier: usize,
    (h, w): (usize, usize),
    k: usize,
    stride: usize,
    bias: bool,
) -> Case {
    case(
        [batch, channels, h, w],
        [channels * multiplier, 1, k, k],
        bias,
        params(stride, k / 2, 1, channels),
    )
}

#[test]
fn depthwise_matches_the_reference_for_3x3_5x5_7x7_at_stride_1_and_2() {
    let mut cases = Vec::new();
    // Sizes below, at and one past the 16 x 32 output tile, a prime, and 56 x 56.
    for (h, w) in [(1, 1), (16, 32), (17, 33), (13, 31), (56, 56)] {
        for k in [3, 5, 7] {
            for stride in [1, 2] {
                cases.push(depthwise(
                    1,
                    3,
                    1,
                    (h, w),
                    k,
                    stride,
                    (h + k + stride) % 2 == 0,
                ));
            }
        }
    }
    check(Algorithm::Depthwise, Kernel::Depthwise, false, &cases);
}

#[test]
fn depthwise_matches_the_reference_with_multipliers_dilation_padding_and_batches() {
    check(
        Algorithm::Depthwise,
        Kernel::Depthwise,
        false,
        &[
            // Channel multipliers 2 and 3.
            depthwise(1, 4, 2, (9, 10), 3, 1, true),
            depthwise(2, 5, 3, (20, 35), 5, 2, false),
            // One input channel (groups 1) into 4 outputs.
            depthwise(1, 1, 4, (12, 12), 3, 1, true),
            // Dilation 2, asymmetric padding wider than the kernel, non-square kernels.
            case(
                [1, 6, 19, 40],
                [6, 1, 3, 3],
                true,
                params(1, [3, 0, 2, 5], 2, 6),
            ),
            case([3, 2, 8, 70], [2, 1, 1, 5], false, params(1, (0, 2), 1, 2)),
            case(
                [1, 3, 33, 17],
                [6, 1, 5, 1],
                true,
                Conv2dParams::default()
                    .with_stride((2, 1))
                    .with_dilation((1, 3))
                    .with_padding((2, 0))
                    .with_groups(3),
            ),
            // No padding, an input smaller than the tile's window, 4 images.
            case([4, 2, 5, 6], [2, 1, 3, 3], false, params(1, 0, 1, 2)),
            // Channels past one tile row: a prime count of channels, and a 48-tile plane.
            depthwise(1, 37, 1, (7, 7), 3, 1, true),
            depthwise(1, 2, 1, (96, 250), 3, 1, false),
            // A wide window: 7x7 at stride 2 reads 37 x 69 = 2553 values per tile.
            depthwise(1, 2, 1, (31, 63), 7, 2, true),
        ],
    );
}

#[test]
fn depthwise_ignores_packed_weights_and_reads_the_plain_ones() {
    check(
        Algorithm::Depthwise,
        Kernel::Depthwise,
        true,
        &[depthwise(2, 4, 2, (17, 33), 3, 2, true)],
    );
}

/// The reason `engine` gives for refusing `algorithm` on `case`; fails when it does not refuse.
fn refusal(algorithm: Algorithm, c: &Case) -> (&'static str, String) {
    let engine = engine();
    let context = describe(&c.input, &c.weight, c.bias, &c.params);
    let x = Tensor::full(c.input.to_vec(), 1.0).expect(&context);
    let w = Tensor::full(c.weight.to_vec(), 1.0).expect(&context);
    let (gx, gw) = (engine.upload(&x).unwrap(), engine.upload(&w).unwrap());
    let shape = wgconv::output_shape(&c.input, &c.weight, &c.params).expect(&context);
    let mut out = engine.alloc(&shape).unwrap();
    match engine.conv2d_into_with(algorithm, &gx, &gw, None, &c.params, &mut out) {
        Err(Error::UnsupportedAlgorithm { algorithm, reason }) => (algorithm, reason),
        other => panic!("{context}: {algorithm:?} gave {other:?}, not UnsupportedAlgorithm"),
    }
}

#[test]
fn depthwise_refuses_more_than_one_input_channel_per_group_naming_them() {
    let (name, reason) = refusal(
        Algorithm::Depthwise,
        &case([1, 4, 8, 8], [4, 2, 3, 3], false, params(1, 1, 1, 2)),
    );
    assert_eq!(name, "depthwise");
    assert!(reason.contains("in_channels 4, groups 2"), "{reason}");
}

#[test]
fn depthwise_refuses_a_shape_it_cannot_cover_before_the_shape_is_found_too_large() {
    // Output rows 6 * (2^31 - 1) apart overflow the shaders' i32 in one dispatch, so the shape
    // would be split; but no piece has one input channel per group, and the refusal says so.
    let stride = (i32::MAX as usize, 69);
    let (name, reason) = refusal(
        Algorithm::Depthwise,
        &case(
            [3, 2, 6, 2],
            [4, 2, 1, 1],
            false,
            Conv2dParams::default()
                .with_stride(stride)
                .with_padding([7, 13_770_931_979, 38, 4])
                .with_dilation((2, 3)),
        ),
    );
    assert_eq!(name, "depthwise");
    assert!(reason.contains("in_channels 2, groups 1"), "{reason}");
}

#[test]
fn depthwise_refuses_a_window_past_workgroup_memory_naming_its_size() {
    // 9x9, stride 2, dilation 3: (15 * 2 + 8 * 3 + 1) x (31 * 2 + 8 * 3 + 1) = 55 x 87.
    let (name, reason) = refusal(
        Algorithm::Depthwise,
        &case([1, 2, 80, 80], [2, 1, 9, 9], false, params(2, 0, 3, 2)),
    );
    assert_eq!(name, "depthwise");
    for part in [
        "55x87 = 4785",
        "kernel 9x9",
        "stride (2, 2)",
        "dilation (3, 3)",
        "4096",
    ] {
        assert!(reason.contains(part), "{part} not in: {reason}");
    }
    // A stride of 5 alone, with a 1x1 kernel, makes 76 x 156.
    let (_, reason) = refusal(
        Algorithm::Depthwise,
        &case([1, 1, 100, 200], [1, 1, 1, 1], false, params(5, 0, 1, 1)),
    );
    assert!(reason.contains("76x156"), "{reason}");
}

#[test]
fn both_refuse_a_device_without_16_kib_of_workgroup_memory() {
    let small = PlanLimits {
        max_workgroup_storage: 16383,
        ..PlanLimits::unlimited_cpu()
    };
    let shape = Conv2dShape::new(&[1, 4, 8, 8], &[4, 1, 3, 3], None, &params(1, 1, 1, 4)).unwrap();
    for (algorithm, name) in [
        (Algorithm::LargeTiled, "large-tiled"),
        (Algorithm::Depthwise, "depthwise"),
    ] {
        assert!(plan::plan(&shape, &PlanLimits::unlimited_cpu(), algorithm).is_ok());
        match plan::plan(&shape, &small, algorithm) {
            Err(Error::UnsupportedAlgorithm { algorithm, reason }) => {
                assert_eq!(algorithm, name);
                assert!(reason.contains("16384 bytes"), "{reason}");
                assert!(reason.contains("16383 bytes"), "{reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn both_refuse_workgroups_of_fewer_than_256_invocations() {
    let small = PlanLimits {
        max_invocations: 128,
        ..PlanLimits::unlimited_cpu()
    };
    let shape = Conv2dShape::new(&[1, 4, 8, 8], &[4, 1, 3, 3], None, &params(1, 1, 1, 4)).unwrap();
    for algorithm in [Algorithm::LargeTiled, Algorithm::Depthwise] {
        assert!(
            matches!(
                plan::plan(&shape, &small, algorithm),
                Err(Error::UnsupportedAlgorithm { reason, .. }) if reason.contains("128 invocations")
            ),
            "{algorithm:?}"
        );
    }
}

#[test]
fn grids_past_the_device_are_split_into_pieces_that_fit() {
    // 300 output channels of 1 image: 3 channel tiles; with at most 2 workgroups per dimension
    // the large tiles need pieces, and the depthwise kernel's 300 channels too.
    let limits = PlanLimits {
        max_workgroups_per_dim: 2,
        ..PlanLimits::unlimited_cpu()
    };
    let gemm = Conv2dShape::new(&[1, 2, 4, 4], &[300, 2, 1, 1], None, &params(1, 0, 1, 1)).unwrap();
    let dw = Conv2dShape::new(
        &[1, 300, 4, 4],
        &[300, 1, 3, 3],
        None,
        &params(1, 1, 1, 300),
    )
    .unwrap();
    for (algorithm, shape) in [(Algorithm::LargeTiled, gemm), (Algorithm::Depthwise, dw)] {
        assert!(
            matches!(
                plan::plan(&shape, &limits, algorithm),
                Err(Error::UnsupportedAlgorithm { ref reason, .. })
                    if reason.contains("max_compute_workgroups_per_dimension 2")
            ),
            "{algorithm:?}"
        );
        let split = plan::schedule(&shape, &limits, algorithm).expect("pieces fit");
        assert!(split.is_some(), "{algorithm:?} is split");
    }
}
