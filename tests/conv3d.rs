//! conv3d against the independent f64 reference: hundreds of random configurations on every
//! kernel the folded 2D problem runs on, unbatched inputs, a hand-checked example, and the
//! reference's gradients against central differences.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every seed by N.

mod common;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use wgconv::cpu::reference;
use wgconv::{Algorithm, Conv3dParams, ConvNdShape, Error, PaddingNd, Tensor};

use common::{
    check_against_central_differences, check_gpu_grads, compare, engine, log_uniform, max_abs,
    random_tensor, rng, seed_offset, tolerance, view4,
};

/// Random configurations per run (the family's bar is at least 300).
const CONFIGS: usize = 320;

/// Upper bound on multiply-adds per configuration, to keep the suite quick on software adapters.
const MAX_MACS: usize = 150_000;

/// One random conv3d problem.
struct Config {
    input: Vec<usize>,
    weight: Vec<usize>,
    bias: bool,
    params: Conv3dParams,
}

impl Config {
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "conv3d input {:?} weight {:?} bias {} stride {:?} padding {:?} dilation {:?} groups {} flip {}",
            self.input, self.weight, self.bias, p.stride, p.padding, p.dilation, p.groups, p.flip_kernel
        )
    }

    fn shape(&self) -> wgconv::Result<ConvNdShape<3>> {
        let bias = [self.weight[0]];
        ConvNdShape::new(
            &self.input,
            &self.weight,
            self.bias.then_some(&bias[..]),
            &self.params,
        )
    }
}

/// Draws one valid configuration with at most `max_macs` multiply-adds: batch 1-3 or unbatched,
/// channels 1-24, groups incl. depthwise, kernels 1-4 per axis, stride 1-3, asymmetric padding
/// or same/valid, dilation 1-2, sizes 1 to 16 per axis, with or without bias.
fn random_config(rng: &mut ChaCha8Rng, max_macs: usize) -> Config {
    loop {
        let (groups, c, o) = match rng.random_range(0..10) {
            0..=5 => (1, log_uniform(rng, 1, 24), log_uniform(rng, 1, 24)),
            6..=7 => {
                let g = rng.random_range(2..=3);
                (g, g * rng.random_range(1..=6), g * rng.random_range(1..=6))
            }
            _ => {
                let c = log_uniform(rng, 1, 12);
                (c, c, c * rng.random_range(1..=2))
            }
        };
        let kernel: [usize; 3] = std::array::from_fn(|_| rng.random_range(1..=4));
        let mut stride: [usize; 3] = std::array::from_fn(|_| rng.random_range(1..=3));
        let dilation: [usize; 3] = std::array::from_fn(|_| rng.random_range(1..=2));
        let padding = match rng.random_range(0..10) {
            0..=1 => {
                stride = [1; 3];
                PaddingNd::Same
            }
            2 => PaddingNd::Valid,
            _ => PaddingNd::Explicit(std::array::from_fn(|_| {
                [rng.random_range(0..=2), rng.random_range(0..=2)]
            })),
        };
        let pads = padding.resolve(kernel, dilation);
        let spatial: [usize; 3] = std::array::from_fn(|a| {
            let span = dilation[a] * (kernel[a] - 1) + 1;
            log_uniform(rng, 1, 16).max(span.saturating_sub(pads[a][0] + pads[a][1]))
        });
        let mut input = vec![c];
        input.extend(spatial);
        if rng.random_bool(0.85) {
            input.insert(0, rng.random_range(1..=3));
        }
        let mut weight = vec![o, c / groups];
        weight.extend(kernel);
        let config = Config {
            input,
            weight,
            bias: rng.random_bool(0.5),
            params: Conv3dParams {
                stride,
                padding,
                dilation,
                groups,
                // True convolution in one configuration in five.
                flip_kernel: rng.random_bool(0.2),
                ..Conv3dParams::default()
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
fn random_conv3d_configs_match_the_reference_on_every_kernel() {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(0x0c0d_3d00);
    let mut forced = 0;
    for case in 0..CONFIGS {
        let cfg = random_config(&mut rng, MAX_MACS);
        let context = format!("case {case}: {}", cfg.describe());
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = cfg.bias.then(|| random_tensor(&mut rng, &cfg.weight[..1]));
        let (shape, want) =
            reference::conv_nd_f64(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        let k = cfg.weight[1..].iter().product();
        let tol = tolerance(k, max_abs(&x), max_abs(&w), b.as_ref().map_or(0.0, max_abs));
        let out_shape = shape.output_shape();
        let got = engine
            .conv3d(&x, &w, b.as_ref(), &cfg.params)
            .expect(&context);
        assert_eq!(got.shape(), &out_shape[..], "{context}");
        compare(&context, view4(&out_shape), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}"));
        // Every algorithm that covers the folded problem, each into an output that starts as NaN.
        let (gx, gw) = (engine.upload(&x).unwrap(), engine.upload(&w).unwrap());
        let gb = b.as_ref().map(|b| engine.upload(b).unwrap());
        let nan = Tensor::full(out_shape.clone(), f32::NAN).unwrap();
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = engine.upload(&nan).unwrap();
            let run =
                engine.conv3d_into_with(algorithm, &gx, &gw, gb.as_ref(), &cfg.params, &mut out);
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

/// The CPU baseline's conv3d (its own depth folding, then the GEMM) against the reference.
#[test]
fn cpu_fast_conv3d_matches_the_reference() {
    let mut rng = rng(0x0c0d_3d04);
    for case in 0..80 {
        let cfg = random_config(&mut rng, MAX_MACS);
        let context = format!("case {case}: {}", cfg.describe());
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = cfg.bias.then(|| random_tensor(&mut rng, &cfg.weight[..1]));
        let (shape, want) =
            reference::conv_nd_f64(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        let got = wgconv::cpu::fast::conv3d(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        assert_eq!(got.shape(), &shape.output_shape()[..], "{context}");
        let k = cfg.weight[1..].iter().product();
        let tol = tolerance(k, max_abs(&x), max_abs(&w), b.as_ref().map_or(0.0, max_abs));
        compare(&context, view4(got.shape()), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn conv3d_reference_gradients_match_central_differences() {
    let mut rng = rng(0x0c0d_3d01);
    for _ in 0..24 {
        let cfg = random_config(&mut rng, 2000);
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
fn conv3d_gradients_on_the_gpu_match_the_reference() {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(0x0c0d_3d03);
    for case in 0..100 {
        let cfg = random_config(&mut rng, 40_000);
        let context = format!("case {case}: {}", cfg.describe());
        let shape = cfg.shape().expect(&context);
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let gy = random_tensor(&mut rng, &shape.output_shape());
        let want = reference::conv_nd_backward_f64(&x, &w, &gy, &cfg.params).expect(&context);
        let up = |t: &Tensor| engine.upload(t).unwrap();
        let grads = engine
            .conv3d_backward(&up(&x), &up(&w), &up(&gy), &cfg.params, true)
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
fn unbatched_conv3d_is_the_batch_of_one_without_its_batch_axis() {
    let engine = engine();
    let mut rng = rng(0x0c0d_3d02);
    let x = random_tensor(&mut rng, &[3, 5, 6, 7]);
    let w = random_tensor(&mut rng, &[4, 3, 3, 2, 3]);
    let b = random_tensor(&mut rng, &[4]);
    let params = Conv3dParams::default()
        .with_padding(PaddingNd::Same)
        .with_dilation([2, 1, 1]);
    let y = engine.conv3d(&x, &w, Some(&b), &params).unwrap();
    assert_eq!(y.shape(), [4, 5, 6, 7]);
    let batched = Tensor::new([1, 3, 5, 6, 7], x.data().to_vec()).unwrap();
    let y1 = engine.conv3d(&batched, &w, Some(&b), &params).unwrap();
    assert_eq!(y1.shape(), [1, 4, 5, 6, 7]);
    assert_eq!(y.data(), y1.data());
}

/// A 2x2x2 box kernel of ones over `x[d, h, w] = 100 d + 10 h + w` (3x3x3): each output is
/// the sum of its 8 neighbours, exactly (small integers are exact in f32), e.g.
/// `y[1, 0, 0] = 8 * 55.5 = 444`, and the front padding plane adds nothing.
#[test]
fn a_box_kernel_sums_each_2x2x2_block_exactly() {
    let engine = engine();
    let x = Tensor::from_fn([1, 1, 3, 3, 3], |i| {
        let (d, h, w) = (i / 9, (i / 3) % 3, i % 3);
        (100 * d + 10 * h + w) as f32
    })
    .unwrap();
    let k = Tensor::full([1, 1, 2, 2, 2], 1.0).unwrap();
    let block = |d: usize, h: usize, w: usize| -> f32 {
        let mut sum = 0;
        for (a, i, j) in (0..8).map(|t| (t / 4, (t / 2) % 2, t % 2)) {
            let (dd, hh, ww) = ((d + a) as i64 - 1, h + i, w + j);
            if dd >= 0 {
                sum += 100 * dd as usize + 10 * hh + ww;
            }
        }
        sum as f32
    };
    // One zero plane in front: output depth 3 (the first reads the padding and plane 0).
    let params = Conv3dParams::default().with_padding([[1, 0], [0, 0], [0, 0]]);
    let want: Vec<f32> = (0..12).map(|t| block(t / 4, (t / 2) % 2, t % 2)).collect();
    assert_eq!(want[4], 444.0);
    let got = engine.conv3d(&x, &k, None, &params).unwrap();
    assert_eq!(got.shape(), [1, 1, 3, 2, 2]);
    assert_eq!(got.data(), want);
    assert_eq!(
        reference::conv_nd(&x, &k, None, &params).unwrap().data(),
        want
    );
}

/// On a device whose bindings hold 16384 values (65536 bytes), a conv3d whose folded input (3
/// times the input) does not fit runs piece by piece over its folded images, and matches the
/// reference; its backward pass runs over pieces of the batch and matches too, and one 3D image
/// too large for that is refused with the binding limit named; a folded image larger than a
/// binding is refused before any work.
#[test]
fn a_conv3d_past_the_binding_limit_is_split_over_its_folded_images() {
    let small = common::small_binding_engine(65536);
    let mut rng = rng(0x0c0d_3d05);
    // Input 2*2*8*16*16 = 8192 values, output 2*3*8*16*16 = 12288; folded, the input is
    // 2*8 images of 3*2*16*16: 24576 values, past 16384.
    let x = random_tensor(&mut rng, &[2, 2, 8, 16, 16]);
    let w = random_tensor(&mut rng, &[3, 2, 3, 3, 3]);
    let b = random_tensor(&mut rng, &[3]);
    let params = Conv3dParams::default().with_padding(1);
    let (shape, want) = reference::conv_nd_f64(&x, &w, Some(&b), &params).unwrap();
    assert!(shape.folded().unwrap().input_len() > 16384);
    let got = small.conv3d(&x, &w, Some(&b), &params).unwrap();
    let tol = tolerance(2 * 27, max_abs(&x), max_abs(&w), max_abs(&b));
    compare("split conv3d", view4(got.shape()), got.data(), &want, tol).unwrap();
    // The same on the unsplit engine.
    let whole = engine().conv3d(&x, &w, Some(&b), &params).unwrap();
    compare(
        "unsplit conv3d",
        view4(whole.shape()),
        whole.data(),
        &want,
        tol,
    )
    .unwrap();

    // The backward pass runs over pieces of the batch (one 3D image each here), for a plain and
    // a turned kernel, and matches the reference.
    let up = |t: &Tensor| small.upload(t).unwrap();
    let gy = random_tensor(&mut rng, &shape.output_shape());
    for flip in [false, true] {
        let params = params.with_flip_kernel(flip);
        let want = reference::conv_nd_backward_f64(&x, &w, &gy, &params).unwrap();
        let grads = small
            .conv3d_backward(&up(&x), &up(&w), &up(&gy), &params, true)
            .unwrap();
        let scale = (max_abs(&x), max_abs(&w), max_abs(&gy));
        check_gpu_grads(
            &small,
            &format!("split conv3d backward, flip {flip}"),
            &grads,
            &want,
            scale,
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
    // One image whose folded tensors do not fit cannot be cut further: the binding limit named.
    // (1*2*16*16*16 = 8192 values, folded 16 images of 3*2*16*16: 24576.)
    let x1 = random_tensor(&mut rng, &[1, 2, 16, 16, 16]);
    let gy1 = random_tensor(&mut rng, &[1, 3, 16, 16, 16]);
    let e = small
        .conv3d_backward(&up(&x1), &up(&w), &up(&gy1), &params, true)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeviceLimit {
                limit_name: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{e:?}"
    );
    // An input of 8*40*40 = 12800 values fits, but its one folded image of 3*8*40*40 = 38400
    // values cannot be cut further.
    let x = random_tensor(&mut rng, &[1, 8, 1, 40, 40]);
    let w = random_tensor(&mut rng, &[1, 8, 3, 1, 1]);
    let e = small
        .conv3d(
            &x,
            &w,
            None,
            &Conv3dParams::default().with_padding([[1, 1], [0, 0], [0, 0]]),
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::DeviceLimit { ref what, .. } if what.contains("folded input")),
        "{e:?}"
    );
}

/// Depth coordinates past i32 are refused before any work (the shaders form them in i32), and
/// the CPU baseline refuses a folded input whose size overflows, where the reference runs out of
/// memory cleanly: errors, not wrong values or panics.
#[test]
fn huge_depth_padding_or_dilation_is_refused_not_miscomputed() {
    let engine = engine();
    let x = Tensor::full([1, 1, 1, 2, 2], 1.0).unwrap();
    let w = Tensor::full([1, 1, 1, 1, 1], 1.0).unwrap();
    let params = Conv3dParams::default()
        .with_stride([1 << 31, 1, 1])
        .with_padding([[0, 1 << 33], [0, 0], [0, 0]]);
    let e = engine.conv3d(&x, &w, None, &params).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { ref what, .. } if what == "padded input depth"),
        "{e:?}"
    );
    let x = Tensor::full([1, 1024, 1, 32, 32], 1.0).unwrap();
    let w = Tensor::full([1, 1024, 2, 1, 1], 1.0).unwrap();
    let params = Conv3dParams::default()
        .with_dilation([1 << 44, 1, 1])
        .with_padding([[1 << 45, 1 << 45], [0, 0], [0, 0]]);
    let e = wgconv::cpu::fast::conv3d(&x, &w, None, &params).unwrap_err();
    assert!(
        matches!(e, Error::SizeOverflow { .. } | Error::HostMemory { .. }),
        "{e:?}"
    );
}

/// Planes of at least 256 elements fold and unfold as buffer copies (src/gpu/plan/fold.rs):
/// under every padding mode (the depth padding read from the plane it names, or zeros), with a
/// stride and dilation in depth, with a fused activation (whose unfold runs as the kernel), on
/// the reference's values.
#[test]
fn large_planes_fold_as_copies_and_match_the_reference() {
    let e = engine();
    let mut rng = rng(0x0c0d_3d07);
    let x = random_tensor(&mut rng, &[2, 3, 5, 16, 20]);
    let w = random_tensor(&mut rng, &[4, 3, 3, 3, 3]);
    let b = random_tensor(&mut rng, &[4]);
    const { assert!(16 * 20 >= wgconv::gpu::plan::fold::MIN_PLANE) };
    for mode in ["zeros", "reflect", "replicate", "circular"] {
        for activation in [wgconv::Activation::None, wgconv::Activation::Silu] {
            for (stride, dilation) in [(1, 1), (2, 2)] {
                let params = Conv3dParams::default()
                    .with_padding([[2, 1], [1, 1], [0, 1]])
                    .with_padding_mode(mode.parse().unwrap())
                    .with_stride([stride, 1, 1])
                    .with_dilation([dilation, 1, 1])
                    .with_activation(activation);
                let context = format!("{mode} {activation} stride {stride} dilation {dilation}");
                let (s, want) = reference::conv_nd_f64(&x, &w, Some(&b), &params).expect(&context);
                let got = e.conv3d(&x, &w, Some(&b), &params).expect(&context);
                assert_eq!(got.shape(), s.output_shape(), "{context}");
                // The convolution's tolerance through the activation (common::epilogue_tolerance).
                let linear = params.with_activation(wgconv::Activation::None);
                let (_, pre) = reference::conv_nd_f64(&x, &w, Some(&b), &linear).unwrap();
                let max_pre = pre.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let conv = tolerance(3 * 27, max_abs(&x), max_abs(&w), max_abs(&b));
                let tol = common::epilogue_tolerance(activation, conv, max_pre, 0.0);
                compare(&context, view4(got.shape()), got.data(), &want, tol)
                    .unwrap_or_else(|m| panic!("{m}"));
            }
        }
    }
}
