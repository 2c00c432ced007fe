//! The padding modes (reflect, replicate, circular) against the independent f64 reference:
//! hundreds of random conv1d, conv2d and conv3d configurations on every kernel, gradients on the
//! GPU and against central differences, splitting, and PyTorch's rules and messages.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every seed by N.

mod common;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use wgconv::cpu::{fast, reference};
use wgconv::{
    Algorithm, Conv2dParams, ConvNdParams, ConvNdShape, Engine, Error, GpuTensor, PaddingMode,
    PaddingNd, Tensor,
};

use common::{
    axes, check_against_central_differences, check_gpu_grads, compare, engine, log_uniform,
    max_abs, random_tensor, rng, seed_offset, tolerance, view4,
};

/// Random configurations per run (the family's bar is at least 300).
const CONFIGS: usize = 330;

/// The modes that read the input.
const MODES: [PaddingMode; 3] = [
    PaddingMode::Reflect,
    PaddingMode::Replicate,
    PaddingMode::Circular,
];

/// One random problem over `N` axes with a padding mode.
struct Config<const N: usize> {
    input: Vec<usize>,
    weight: Vec<usize>,
    bias: bool,
    params: ConvNdParams<N>,
}

impl<const N: usize> Config<N> {
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "conv{N}d input {:?} weight {:?} bias {} stride {:?} padding {:?} mode {} \
             dilation {:?} groups {} flip {}",
            self.input,
            self.weight,
            self.bias,
            p.stride,
            p.padding,
            p.padding_mode,
            p.dilation,
            p.groups,
            p.flip_kernel
        )
    }

    fn shape(&self) -> wgconv::Result<ConvNdShape<N>> {
        let bias = [self.weight[0]];
        ConvNdShape::new(
            &self.input,
            &self.weight,
            self.bias.then_some(&bias[..]),
            &self.params,
        )
    }
}

/// Draws a valid configuration over `N` axes with at most `max_macs` multiply-adds: a mode other
/// than zeros, per-side amounts up to the mode's limit (reflect below the input length, circular
/// up to it, replicate up to 6) or `same`, kernels 1-5 (1-3 in 3D), stride 1-3, dilation 1-2,
/// groups incl. depthwise, batched or not.
fn random_config<const N: usize>(rng: &mut ChaCha8Rng, max_macs: usize) -> Config<N> {
    loop {
        let mode = MODES[rng.random_range(0..3)];
        let (groups, c, o) = match rng.random_range(0..8) {
            0..=4 => (1, log_uniform(rng, 1, 24), log_uniform(rng, 1, 24)),
            5 => {
                let g = rng.random_range(2..=3);
                (g, g * rng.random_range(1..=6), g * rng.random_range(1..=6))
            }
            _ => {
                let c = log_uniform(rng, 1, 16);
                (c, c, c * rng.random_range(1..=2))
            }
        };
        let max_k = if N == 3 { 3 } else { 5 };
        let kernel: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=max_k));
        let dilation: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=2));
        let mut stride: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=3));
        let max_len = [0, 300, 40, 12][N];
        let input_len: [usize; N] = std::array::from_fn(|_| log_uniform(rng, 1, max_len));
        let padding = if rng.random_bool(0.2) {
            stride = [1; N];
            PaddingNd::Same
        } else {
            PaddingNd::Explicit(std::array::from_fn(|a| {
                let limit = match mode {
                    PaddingMode::Reflect => input_len[a] - 1,
                    PaddingMode::Circular => input_len[a],
                    _ => 6,
                };
                let side = |rng: &mut ChaCha8Rng| rng.random_range(0..=limit.min(4));
                [side(rng), side(rng)]
            }))
        };
        let mut input = vec![c];
        input.extend(input_len);
        if !rng.random_bool(0.15) {
            input.insert(0, rng.random_range(1..=3));
        }
        let mut weight = vec![o, c / groups];
        weight.extend(kernel);
        let config = Config {
            input,
            weight,
            bias: rng.random_bool(0.5),
            params: ConvNdParams {
                stride,
                padding,
                padding_mode: mode,
                dilation,
                groups,
                activation: wgconv::Activation::None,
                // True convolution in one configuration in five: the turned kernel meets
                // every mode's padding.
                flip_kernel: rng.random_bool(0.2),
            },
        };
        // Configurations whose kernel does not fit (or `same` past a mode's limit) are redrawn.
        let Ok(shape) = config.shape() else {
            continue;
        };
        if shape.flops() / 2 <= max_macs as u64 && shape.padding.iter().flatten().any(|&p| p > 0) {
            return config;
        }
    }
}

/// The forced-kernel call into a given output, per rank.
fn run_into<const N: usize>(
    engine: &Engine,
    algorithm: Algorithm,
    (x, w, b): (&GpuTensor, &GpuTensor, Option<&GpuTensor>),
    params: &ConvNdParams<N>,
    out: &mut GpuTensor,
) -> wgconv::Result<()> {
    match N {
        1 => engine.conv1d_into_with(algorithm, x, w, b, &axes(params), out),
        2 => engine.conv2d_into_with(algorithm, x, w, b, &Conv2dParams::from(&axes(params)), out),
        _ => engine.conv3d_into_with(algorithm, x, w, b, &axes(params), out),
    }
}

/// `count` random `N`-D configurations on every kernel (each into an output that starts as NaN)
/// and through the CPU baseline; returns the forced-kernel runs.
fn check_random<const N: usize>(seed: u64, count: usize, max_macs: usize) -> usize {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(seed);
    let mut forced = 0;
    for case in 0..count {
        let cfg = random_config::<N>(&mut rng, max_macs);
        let context = format!("case {case}: {}", cfg.describe());
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = cfg.bias.then(|| random_tensor(&mut rng, &cfg.weight[..1]));
        let (shape, want) =
            reference::conv_nd_f64(&x, &w, b.as_ref(), &cfg.params).expect(&context);
        let k = cfg.weight[1..].iter().product();
        let tol = tolerance(k, max_abs(&x), max_abs(&w), b.as_ref().map_or(0.0, max_abs));
        let out_shape = shape.output_shape();
        let fail = |m: String| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}");
        if N != 1 {
            // The CPU baseline pads a copy, as PyTorch does.
            let cpu = match N {
                2 => fast::conv2d(&x, &w, b.as_ref(), &Conv2dParams::from(&axes(&cfg.params))),
                _ => fast::conv3d(&x, &w, b.as_ref(), &axes(&cfg.params)),
            }
            .expect(&context);
            let context = format!("{context}, cpu::fast");
            compare(&context, view4(&out_shape), cpu.data(), &want, tol).unwrap_or_else(fail);
        }
        let up = |t: &Tensor| engine.upload(t).unwrap();
        let (gx, gw, gb) = (up(&x), up(&w), b.as_ref().map(up));
        let nan = Tensor::full(out_shape.clone(), f32::NAN).unwrap();
        for algorithm in Algorithm::NAMED {
            let mut out = up(&nan);
            let given = (&gx, &gw, gb.as_ref());
            match run_into(engine, algorithm, given, &cfg.params, &mut out) {
                Ok(()) => forced += 1,
                Err(Error::UnsupportedAlgorithm { .. })
                    if ![Algorithm::Direct, Algorithm::Auto].contains(&algorithm) =>
                {
                    continue
                }
                Err(e) => panic!("{context}, {algorithm:?}: {e}"),
            }
            let got = engine.download(&out).expect(&context);
            let context = format!("{context}, {algorithm:?}");
            compare(&context, view4(&out_shape), got.data(), &want, tol).unwrap_or_else(fail);
        }
    }
    forced
}

#[test]
fn random_padding_mode_configs_match_the_reference_on_every_kernel() {
    // 330 in all: 130 conv1d, 130 conv2d, 70 conv3d.
    let forced = [
        check_random::<1>(0x0bad_0001, 130, 200_000),
        check_random::<2>(0x0bad_0002, 130, 200_000),
        check_random::<3>(0x0bad_0003, CONFIGS - 260, 200_000),
    ];
    eprintln!("forced-kernel runs (1d, 2d, 3d): {forced:?}");
    assert!(
        forced.iter().sum::<usize>() >= 3 * CONFIGS,
        "only {forced:?} forced-kernel runs"
    );
}

/// The GPU backward pass of `count` random `N`-D configurations against the reference's.
fn check_gpu_backward<const N: usize>(seed: u64, count: usize) {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(seed);
    for case in 0..count {
        let cfg = random_config::<N>(&mut rng, 60_000);
        let context = format!("case {case}: {}", cfg.describe());
        let shape = cfg.shape().expect(&context);
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let gy = random_tensor(&mut rng, &shape.output_shape());
        let want = reference::conv_nd_backward_f64(&x, &w, &gy, &cfg.params).expect(&context);
        let up = |t: &Tensor| engine.upload(t).unwrap();
        let (x_, w_, gy_) = (up(&x), up(&w), up(&gy));
        let grads = match N {
            1 => engine.conv1d_backward(&x_, &w_, &gy_, &axes(&cfg.params), true),
            2 => {
                let p = Conv2dParams::from(&axes(&cfg.params));
                engine.conv2d_backward(&x_, &w_, &gy_, &p, true)
            }
            _ => engine.conv3d_backward(&x_, &w_, &gy_, &axes(&cfg.params), true),
        }
        .expect(&context);
        assert_eq!(grads.input.shape(), x.shape(), "{context}");
        assert_eq!(grads.weight.shape(), w.shape(), "{context}");
        let scale = (max_abs(&x), max_abs(&w), max_abs(&gy));
        check_gpu_grads(engine, &context, &grads, &want, scale)
            .unwrap_or_else(|m| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}"));
    }
}

#[test]
fn padding_mode_gradients_on_the_gpu_match_the_reference() {
    check_gpu_backward::<1>(0x0bad_0011, 50);
    check_gpu_backward::<2>(0x0bad_0012, 50);
    check_gpu_backward::<3>(0x0bad_0013, 30);
}

#[test]
fn padding_mode_gradients_match_central_differences_of_the_reference() {
    let mut rng = rng(0x0bad_0021);
    for _ in 0..16 {
        let one = random_config::<1>(&mut rng, 2000);
        check_against_central_differences(
            &one.describe(),
            &one.input,
            &one.weight,
            &one.params,
            &mut rng,
        );
        let two = random_config::<2>(&mut rng, 2000);
        check_against_central_differences(
            &two.describe(),
            &two.input,
            &two.weight,
            &two.params,
            &mut rng,
        );
        let three = random_config::<3>(&mut rng, 2000);
        check_against_central_differences(
            &three.describe(),
            &three.input,
            &three.weight,
            &three.params,
            &mut rng,
        );
    }
}

/// `[a b c d]` padded 2 and 2 by each mode, through a 1-tap kernel of weight 1: exactly the
/// padded row of the mode's documentation, on the reference and the GPU.
#[test]
fn each_mode_pads_a_short_row_as_documented() {
    let x = Tensor::new([1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let one = Tensor::new([1, 1, 1], vec![1.0]).unwrap();
    for (mode, want) in [
        (PaddingMode::Zeros, [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]),
        (
            PaddingMode::Reflect,
            [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0],
        ),
        (
            PaddingMode::Replicate,
            [1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0],
        ),
        (
            PaddingMode::Circular,
            [3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0],
        ),
    ] {
        let p = wgconv::Conv1dParams::default()
            .with_padding(2)
            .with_padding_mode(mode);
        assert_eq!(reference::conv1d(&x, &one, None, &p).unwrap().data(), want);
        assert_eq!(engine().conv1d(&x, &one, None, &p).unwrap().data(), want);
    }
}

/// A conv2d whose padding reads the input, on a device too small for it whole, is split over
/// its images and output channels but never its rows (a piece cut from the middle would mirror
/// the wrong rows), and matches the reference.
#[test]
fn a_split_padding_mode_convolution_keeps_every_row() {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 65536,
        ..wgpu::Limits::downlevel_defaults()
    };
    let small = Engine::with_options(wgconv::EngineOptions {
        limits: Some(limits),
        ..wgconv::EngineOptions::default()
    })
    .expect("an engine with small limits (see tests/common/mod.rs for installing an adapter)");
    let mut rng = rng(0x0bad_0031);
    // Input 4*4*48*48 = 36864 values and output 4*8*48*48 = 73728: neither fits 16384.
    let x = random_tensor(&mut rng, &[4, 4, 48, 48]);
    let w = random_tensor(&mut rng, &[8, 4, 3, 3]);
    for mode in MODES {
        let params = Conv2dParams::default()
            .with_padding(wgconv::Padding::explicit(2, 1, 1, 2))
            .with_padding_mode(mode);
        let (_, want) = reference::conv2d_f64(&x, &w, None, &params).unwrap();
        let got = small.conv2d(&x, &w, None, &params).unwrap();
        let tol = tolerance(36, max_abs(&x), max_abs(&w), 0.0);
        compare(
            &format!("split {mode}"),
            view4(got.shape()),
            got.data(),
            &want,
            tol,
        )
        .unwrap();
    }
}

/// PyTorch's rules: reflect needs each amount below the input length along its axis, circular
/// at most the length; replicate takes any. The messages are PyTorch's, checked in its order
/// (the last axis first, before the channel checks).
#[test]
fn padding_mode_amounts_follow_pytorchs_rules_and_messages() {
    let reflect = ConvNdParams::<1>::default()
        .with_padding(3)
        .with_padding_mode(PaddingMode::Reflect);
    let e = ConvNdShape::new(&[1, 1, 3], &[1, 1, 1], None, &reflect).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Argument #4: Padding size should be less than the corresponding input dimension, but \
         got: padding (3, 3) at dimension 2 of input [1, 1, 3]"
    );
    // Height padded 3 over 3 rows: argument #6, dimension 2; unbatched, the dimension is 1.
    let p2 = ConvNdParams::<2>::default()
        .with_padding([3, 0])
        .with_padding_mode(PaddingMode::Reflect);
    let e = ConvNdShape::new(&[1, 1, 3, 3], &[1, 1, 1, 1], None, &p2).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ReflectPaddingTooLarge {
                argument: 6,
                padding: [3, 3],
                dim: 2,
                ..
            }
        ),
        "{e:?}"
    );
    let e = ConvNdShape::new(&[1, 3, 3], &[1, 1, 1, 1], None, &p2).unwrap_err();
    assert!(
        e.to_string().ends_with("at dimension 1 of input [1, 3, 3]"),
        "{e}"
    );
    // The padding is checked before the channels, as PyTorch pads before it convolves.
    let e = ConvNdShape::new(&[1, 3, 1], &[1, 2, 3], None, &reflect).unwrap_err();
    assert!(matches!(e, Error::ReflectPaddingTooLarge { .. }), "{e:?}");
    // `same` resolves first: kernel 5 pads 2 and 2, too much for a length of 2.
    let same = ConvNdParams::<1>::default()
        .with_padding(PaddingNd::Same)
        .with_padding_mode(PaddingMode::Reflect);
    let e = ConvNdShape::new(&[1, 1, 2], &[1, 1, 5], None, &same).unwrap_err();
    assert!(
        e.to_string().contains("padding (2, 2) at dimension 2"),
        "{e}"
    );
    let circular = ConvNdParams::<3>::default()
        .with_padding([1, 1, 4])
        .with_padding_mode(PaddingMode::Circular);
    let e = ConvNdShape::new(&[1, 1, 4, 4, 3], &[1, 1, 1, 1, 1], None, &circular).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Padding value causes wrapping around more than once: padding (4, 4) at dimension 4 of \
         input [1, 1, 4, 4, 3]"
    );
    // Circular up to the length, reflect one less, replicate anything.
    let ok = |mode, pad| {
        let p = ConvNdParams::<1>::default()
            .with_padding(pad)
            .with_padding_mode(mode);
        ConvNdShape::new(&[1, 1, 3], &[1, 1, 1], None, &p).is_ok()
    };
    assert!(ok(PaddingMode::Circular, 3) && !ok(PaddingMode::Circular, 4));
    assert!(ok(PaddingMode::Reflect, 2) && !ok(PaddingMode::Reflect, 3));
    assert!(ok(PaddingMode::Replicate, 40) && ok(PaddingMode::Zeros, 40));
    // The mode's name, and PyTorch's message for a bad one.
    assert_eq!("circular".parse::<PaddingMode>(), Ok(PaddingMode::Circular));
    assert_eq!(
        "mirror".parse::<PaddingMode>().unwrap_err(),
        "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, but got \
         padding_mode='mirror'"
    );
}

/// A custom kernel knows only zero padding, so a padding mode refuses it with the reason.
#[test]
fn a_custom_kernel_is_refused_for_a_padding_mode() {
    let custom = Algorithm::Custom(wgconv::gpu::kernels::CustomKernel {
        name: "copy_of_direct",
        source: include_str!("../shaders/conv2d_direct.wgsl"),
    });
    let engine = engine();
    let x = engine
        .upload(&Tensor::full([1, 1, 4, 4], 1.0).unwrap())
        .unwrap();
    let w = engine
        .upload(&Tensor::full([1, 1, 3, 3], 1.0).unwrap())
        .unwrap();
    let mut out = engine.alloc(&[1, 1, 4, 4]).unwrap();
    let p = Conv2dParams::default()
        .with_padding(1)
        .with_padding_mode(PaddingMode::Reflect);
    let e = engine
        .conv2d_into_with(custom, &x, &w, None, &p, &mut out)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedAlgorithm {
                algorithm: "custom",
                ..
            }
        ),
        "{e:?}"
    );
    let zeros = Conv2dParams::default().with_padding(1);
    engine
        .conv2d_into_with(custom, &x, &w, None, &zeros, &mut out)
        .unwrap();
}
