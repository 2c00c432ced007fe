//! The fused epilogue `act(conv + bias + residual)` against the independent f64 reference:
//! hundreds of random conv1d, conv2d and conv3d configurations with every activation, with and
//! without a residual and a bias, on every kernel and through splits; the CPU baseline's
//! activation; and the errors (residual shape, activation parameters, the backward passes that
//! differentiate the convolution alone, custom kernels).
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every seed by N.

mod common;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use wgconv::cpu::{fast, reference};
use wgconv::{
    Activation, Algorithm, Conv2dParams, ConvNdParams, ConvNdShape, Engine, EngineOptions, Error,
    GpuTensor, PaddingMode, PaddingNd, Tensor,
};

use common::{
    axes, compare, engine, epilogue_tolerance, log_uniform, max_abs, random_tensor, rng,
    seed_offset, tolerance, view4,
};

/// Random configurations per run (the family's bar is at least 300).
const CONFIGS: usize = 330;

/// One random fused convolution over `N` axes, with its data.
struct Case<const N: usize> {
    params: ConvNdParams<N>,
    x: Tensor,
    w: Tensor,
    b: Option<Tensor>,
    r: Option<Tensor>,
}

impl<const N: usize> Case<N> {
    fn describe(&self) -> String {
        let p = &self.params;
        format!(
            "conv{N}d input {:?} weight {:?} bias {} residual {} stride {:?} padding {:?} \
             mode {} dilation {:?} groups {} activation {} flip {}",
            self.x.shape(),
            self.w.shape(),
            self.b.is_some(),
            self.r.is_some(),
            p.stride,
            p.padding,
            p.padding_mode,
            p.dilation,
            p.groups,
            p.activation,
            p.flip_kernel
        )
    }

    /// The reference's result and the derived tolerance (common::epilogue_tolerance).
    fn want(&self) -> (ConvNdShape<N>, Vec<f64>, f64) {
        let (b, r) = (self.b.as_ref(), self.r.as_ref());
        let (s, want) = reference::conv_nd_fused_f64(&self.x, &self.w, b, r, &self.params)
            .expect("a valid case");
        let k = self.w.shape()[1..].iter().product();
        let conv = tolerance(
            k,
            max_abs(&self.x),
            max_abs(&self.w),
            b.map_or(0.0, max_abs),
        );
        let act = self.params.activation;
        let tol = epilogue_tolerance(act, conv, self.max_pre(), r.map_or(0.0, max_abs));
        (s, want, tol)
    }

    /// The largest `|conv + bias + residual|`.
    fn max_pre(&self) -> f64 {
        let linear = ConvNdParams {
            activation: Activation::None,
            ..self.params
        };
        let (b, r) = (self.b.as_ref(), self.r.as_ref());
        let (_, pre) =
            reference::conv_nd_fused_f64(&self.x, &self.w, b, r, &linear).expect("a valid case");
        pre.iter().fold(0.0, |m, v| m.max(v.abs()))
    }
}

/// An activation for case `i`: every one in turn, the parameterized ones with random
/// parameters (a clamp's bounds inside the pre-activations' range, sometimes crossed).
fn activation(rng: &mut ChaCha8Rng, i: usize) -> Activation {
    match Activation::ALL[i % Activation::ALL.len()] {
        Activation::LeakyRelu(_) => Activation::LeakyRelu(rng.random_range(-0.5..0.5)),
        Activation::Clamp { .. } => Activation::Clamp {
            min: rng.random_range(-4.0..1.0),
            max: rng.random_range(-1.0..4.0),
        },
        other => other,
    }
}

/// Draws a valid configuration over `N` axes with at most `max_macs` multiply-adds (channels
/// 1-24, groups incl. depthwise, kernels 1-5 (1-3 in 3D), stride 1-3, dilation 1-2, explicit
/// padding under any mode or `same`, batched or not), and its data: values in [-1, 1], the
/// input, bias and residual then scaled by a power of two (exactly) so that the largest
/// pre-activation is about 8, past every activation's knees.
fn random_case<const N: usize>(rng: &mut ChaCha8Rng, i: usize, max_macs: usize) -> Case<N> {
    let act = activation(rng, i);
    loop {
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
        let max_len = [0, 300, 40, 12][N];
        let input_len: [usize; N] = std::array::from_fn(|_| log_uniform(rng, 1, max_len));
        let mode = [
            PaddingMode::Zeros,
            PaddingMode::Zeros,
            PaddingMode::Reflect,
            PaddingMode::Replicate,
            PaddingMode::Circular,
        ][rng.random_range(0..5)];
        let mut stride: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=3));
        let padding = if rng.random_bool(0.2) {
            stride = [1; N];
            PaddingNd::Same
        } else {
            PaddingNd::Explicit(std::array::from_fn(|a| {
                let limit = match mode {
                    PaddingMode::Reflect => input_len[a] - 1,
                    PaddingMode::Circular => input_len[a],
                    _ => 4,
                };
                let side = |rng: &mut ChaCha8Rng| rng.random_range(0..=limit.min(3));
                [side(rng), side(rng)]
            }))
        };
        let params = ConvNdParams {
            stride,
            padding,
            padding_mode: mode,
            dilation: std::array::from_fn(|_| rng.random_range(1..=2)),
            groups,
            activation: act,
            flip_kernel: rng.random_bool(0.2),
        };
        let mut input = vec![c];
        input.extend(input_len);
        if !rng.random_bool(0.15) {
            input.insert(0, rng.random_range(1..=3));
        }
        let mut weight = vec![o, c / groups];
        weight.extend(kernel);
        // Configurations whose kernel does not fit are redrawn.
        let Ok(shape) = ConvNdShape::new(&input, &weight, None, &params) else {
            continue;
        };
        if shape.flops() / 2 > max_macs as u64 {
            continue;
        }
        let x = random_tensor(rng, &input);
        let w = random_tensor(rng, &weight);
        let b = rng.random_bool(0.5).then(|| random_tensor(rng, &[o]));
        let r = rng
            .random_bool(0.5)
            .then(|| random_tensor(rng, &shape.output_shape()));
        let mut case = Case { params, x, w, b, r };
        let pre = case.max_pre();
        if pre > 0.0 {
            let s = 2f32.powi((8.0 / pre).log2().round() as i32);
            case.x = scaled(&case.x, s);
            case.b = case.b.as_ref().map(|b| scaled(b, s));
            case.r = case.r.as_ref().map(|r| scaled(r, s));
        }
        return case;
    }
}

/// `t` times `s` (a power of two: exact).
fn scaled(t: &Tensor, s: f32) -> Tensor {
    let data = t.data().iter().map(|v| v * s).collect();
    Tensor::new(t.shape().to_vec(), data).expect("same shape")
}

/// The fused tensors on the GPU.
type Sources<'a> = (
    &'a GpuTensor,
    &'a GpuTensor,
    Option<&'a GpuTensor>,
    Option<&'a GpuTensor>,
);

/// The fused forced-kernel call into a given output, per rank.
fn run_into<const N: usize>(
    engine: &Engine,
    algorithm: Algorithm,
    (x, w, b, r): Sources<'_>,
    params: &ConvNdParams<N>,
    out: &mut GpuTensor,
) -> wgconv::Result<()> {
    match N {
        1 => engine.conv1d_fused_into_with(algorithm, x, w, b, r, &axes(params), out),
        2 => {
            let p = Conv2dParams::from(&axes(params));
            engine.conv2d_fused_into_with(algorithm, x, w, b, r, &p, out)
        }
        _ => engine.conv3d_fused_into_with(algorithm, x, w, b, r, &axes(params), out),
    }
}

/// The fused one-shot call, per rank.
fn one_shot<const N: usize>(engine: &Engine, c: &Case<N>) -> wgconv::Result<Tensor> {
    let (x, w, b, r) = (&c.x, &c.w, c.b.as_ref(), c.r.as_ref());
    match N {
        1 => engine.conv1d_fused(x, w, b, r, &axes(&c.params)),
        2 => engine.conv2d_fused(x, w, b, r, &Conv2dParams::from(&axes(&c.params))),
        _ => engine.conv3d_fused(x, w, b, r, &axes(&c.params)),
    }
}

/// `count` random `N`-D fused configurations one-shot and on every kernel (each into an output
/// that starts as NaN), and through the CPU baseline when there is no residual; returns the
/// forced-kernel runs.
fn check_random<const N: usize>(seed: u64, count: usize, max_macs: usize) -> usize {
    let engine = engine();
    let offset = seed_offset();
    let mut rng = rng(seed);
    let mut forced = 0;
    for i in 0..count {
        let c = random_case::<N>(&mut rng, i, max_macs);
        let context = format!("case {i}: {}", c.describe());
        let (shape, want, tol) = c.want();
        let out_shape = shape.output_shape();
        let fail = |m: String| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}");
        let got = one_shot(engine, &c).expect(&context);
        compare(&context, view4(&out_shape), got.data(), &want, tol).unwrap_or_else(fail);
        if N != 1 && c.r.is_none() {
            let cpu = match N {
                2 => fast::conv2d(
                    &c.x,
                    &c.w,
                    c.b.as_ref(),
                    &Conv2dParams::from(&axes(&c.params)),
                ),
                _ => fast::conv3d(&c.x, &c.w, c.b.as_ref(), &axes(&c.params)),
            }
            .expect(&context);
            let context = format!("{context}, cpu::fast");
            compare(&context, view4(&out_shape), cpu.data(), &want, tol).unwrap_or_else(fail);
        }
        let up = |t: &Tensor| engine.upload(t).unwrap();
        let (x, w, b, r) = (
            up(&c.x),
            up(&c.w),
            c.b.as_ref().map(up),
            c.r.as_ref().map(up),
        );
        let nan = Tensor::full(out_shape.clone(), f32::NAN).unwrap();
        for algorithm in Algorithm::NAMED {
            let mut out = up(&nan);
            let given = (&x, &w, b.as_ref(), r.as_ref());
            match run_into(engine, algorithm, given, &c.params, &mut out) {
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
fn random_fused_configs_match_the_reference_on_every_kernel() {
    // 330 in all: 120 conv1d, 120 conv2d, 90 conv3d; every activation in turn.
    let forced = [
        check_random::<1>(0xe911_0001, 120, 60_000),
        check_random::<2>(0xe911_0002, 120, 60_000),
        check_random::<3>(0xe911_0003, CONFIGS - 240, 60_000),
    ];
    eprintln!("forced-kernel runs (1d, 2d, 3d): {forced:?}");
    assert!(
        forced.iter().sum::<usize>() >= 3 * CONFIGS,
        "only {forced:?} forced-kernel runs"
    );
}

/// An engine whose bindings hold 4096 values and whose dispatches have at most 2 workgroups per
/// dimension (as tests/split.rs); `max_buffer` bounds whole tensors.
fn small_engine(max_buffer: u64) -> Engine {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 16384,
        max_buffer_size: max_buffer,
        max_compute_workgroups_per_dimension: 2,
        ..wgpu::Limits::downlevel_defaults()
    };
    Engine::with_options(EngineOptions {
        limits: Some(limits),
        ..EngineOptions::default()
    })
    .expect("an engine with small limits (see tests/common/mod.rs for installing an adapter)")
}

/// Fused convolutions too large for one binding are split, the residual cut with the output:
/// on the GPU (pieces of GPU tensors) and on the host (one-shot calls whose tensors exceed one
/// buffer).
#[test]
fn split_fused_convolutions_match_the_reference() {
    let offset = seed_offset();
    let mut rng = rng(0xe911_0005);
    let (gpu_split, host_split) = (small_engine(1 << 30), small_engine(16384));
    let mut pieces = 0;
    for i in 0..40 {
        let mut c = random_case::<2>(&mut rng, i, 120_000);
        if c.r.is_none() {
            let shape = ConvNdShape::new(c.x.shape(), c.w.shape(), None, &c.params).unwrap();
            c.r = Some(random_tensor(&mut rng, &shape.output_shape()));
        }
        let context = format!("case {i}: {}", c.describe());
        let (shape, want, tol) = c.want();
        let split = gpu_split
            .schedule(&shape.as_conv2d())
            .ok()
            .flatten()
            .is_some();
        let fail = |m: String| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}");
        let out = view4(&shape.output_shape());
        for (name, engine) in [("GPU pieces", &gpu_split), ("host pieces", &host_split)] {
            let context = format!("{context}, {name}");
            match one_shot(engine, &c) {
                Ok(got) => {
                    compare(&context, out, got.data(), &want, tol).unwrap_or_else(fail);
                    pieces += usize::from(split && name == "GPU pieces");
                }
                // A problem whose pieces cannot be made small enough (a padding mode keeps
                // every row) is refused, never wrong.
                Err(Error::DeviceLimit { .. } | Error::TooLarge { .. }) => {}
                Err(e) => panic!("{context}: {e}"),
            }
        }
    }
    assert!(pieces >= 10, "only {pieces} of 40 cases ran split");
}

#[test]
fn a_residual_of_another_shape_is_refused_naming_both() {
    let e = engine();
    let x = Tensor::full(vec![1, 2, 5, 5], 0.0).unwrap();
    let w = Tensor::full(vec![3, 2, 3, 3], 0.0).unwrap();
    let r = Tensor::full(vec![1, 3, 5, 5], 0.0).unwrap();
    let err = e
        .conv2d_fused(&x, &w, None, Some(&r), &Conv2dParams::default())
        .unwrap_err();
    assert!(matches!(err, Error::ResidualShape { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("[1, 3, 5, 5]") && text.contains("[1, 3, 3, 3]"),
        "{text}"
    );
    // On the GPU tensors and the other ranks too, and in the reference.
    let (gx, gw, gr) = (
        e.upload(&x).unwrap(),
        e.upload(&w).unwrap(),
        e.upload(&r).unwrap(),
    );
    let p = Conv2dParams::default();
    let err = e
        .conv2d_fused_gpu(&gx, &gw, None, Some(&gr), &p)
        .unwrap_err();
    assert!(matches!(err, Error::ResidualShape { .. }), "{err}");
    let (x1, w1) = (
        Tensor::full(vec![2, 6], 0.0).unwrap(),
        Tensor::full(vec![1, 2, 3], 0.0).unwrap(),
    );
    let r1 = Tensor::full(vec![2, 4], 0.0).unwrap();
    let err = e
        .conv1d_fused(&x1, &w1, None, Some(&r1), &ConvNdParams::default())
        .unwrap_err();
    assert!(err.to_string().contains("[1, 4]"), "{err}");
    let x3 = Tensor::full(vec![1, 1, 3, 3, 3], 0.0).unwrap();
    let w3 = Tensor::full(vec![1, 1, 2, 2, 2], 0.0).unwrap();
    let r3 = Tensor::full(vec![1, 1, 3, 3, 3], 0.0).unwrap();
    let err = e
        .conv3d_fused(&x3, &w3, None, Some(&r3), &ConvNdParams::default())
        .unwrap_err();
    assert!(matches!(err, Error::ResidualShape { .. }), "{err}");
    let p3 = ConvNdParams::<3>::default();
    let err = reference::conv_nd_fused_f64(&x3, &w3, None, Some(&r3), &p3).unwrap_err();
    assert!(matches!(err, Error::ResidualShape { .. }), "{err}");
}

#[test]
fn activation_parameters_that_are_not_numbers_are_refused() {
    let e = engine();
    let x = Tensor::full(vec![1, 1, 4, 4], 0.0).unwrap();
    let w = Tensor::full(vec![1, 1, 3, 3], 0.0).unwrap();
    for (act, parameter) in [
        (Activation::LeakyRelu(f32::INFINITY), "slope"),
        (Activation::LeakyRelu(f32::NAN), "slope"),
        (
            Activation::Clamp {
                min: f32::NAN,
                max: 1.0,
            },
            "min",
        ),
        (
            Activation::Clamp {
                min: 0.0,
                max: f32::NAN,
            },
            "max",
        ),
    ] {
        let p = Conv2dParams::default().with_activation(act);
        for err in [
            e.conv2d(&x, &w, None, &p).unwrap_err(),
            reference::conv2d(&x, &w, None, &p).unwrap_err(),
            fast::conv2d(&x, &w, None, &p).unwrap_err(),
        ] {
            assert!(
                matches!(err, Error::ActivationParameter { parameter: got, .. } if got == parameter),
                "{act:?}: {err}"
            );
        }
    }
}

#[test]
fn backward_passes_of_the_convolution_alone_refuse_a_fused_activation() {
    let e = engine();
    let x = e
        .upload(&Tensor::full(vec![1, 2, 5, 5], 0.0).unwrap())
        .unwrap();
    let w = e
        .upload(&Tensor::full(vec![3, 2, 3, 3], 0.0).unwrap())
        .unwrap();
    let g = e
        .upload(&Tensor::full(vec![1, 3, 3, 3], 0.0).unwrap())
        .unwrap();
    let p = Conv2dParams::default().with_activation(Activation::Silu);
    let err = e.conv2d_backward(&x, &w, &g, &p, true).unwrap_err();
    assert!(matches!(err, Error::EpilogueGradient { .. }), "{err}");
    assert!(err.to_string().contains("silu"), "{err}");
    let err = e.conv2d_grad_input(&g, &w, x.shape(), &p).unwrap_err();
    assert!(matches!(err, Error::EpilogueGradient { .. }), "{err}");
    let err = e.conv2d_grad_weight(&x, &g, w.shape(), &p).unwrap_err();
    assert!(matches!(err, Error::EpilogueGradient { .. }), "{err}");
    let p1 = ConvNdParams::<1>::default().with_activation(Activation::Relu);
    let up = |shape: Vec<usize>| e.upload(&Tensor::full(shape, 0.0).unwrap()).unwrap();
    let (x1, w1, g1) = (up(vec![2, 25]), up(vec![3, 2, 9]), up(vec![3, 17]));
    let err = e.conv1d_backward(&x1, &w1, &g1, &p1, false).unwrap_err();
    assert!(matches!(err, Error::EpilogueGradient { .. }), "{err}");
    let p3 = ConvNdParams::<3>::default().with_activation(Activation::Gelu);
    let (x3, w3, g3) = (
        up(vec![1, 2, 3, 3, 3]),
        up(vec![3, 2, 2, 2, 2]),
        up(vec![1, 3, 2, 2, 2]),
    );
    let err = e.conv3d_backward(&x3, &w3, &g3, &p3, true).unwrap_err();
    assert!(matches!(err, Error::EpilogueGradient { .. }), "{err}");
}

#[test]
fn custom_kernels_refuse_the_fused_epilogue() {
    let e = engine();
    let custom = wgconv::gpu::kernels::CustomKernel {
        name: "plain",
        source: "@compute @workgroup_size(64) fn main() {}",
    };
    let x = e
        .upload(&Tensor::full(vec![1, 1, 4, 4], 0.0).unwrap())
        .unwrap();
    let w = e
        .upload(&Tensor::full(vec![1, 1, 3, 3], 0.0).unwrap())
        .unwrap();
    let mut out = e
        .upload(&Tensor::full(vec![1, 1, 2, 2], 0.0).unwrap())
        .unwrap();
    let p = Conv2dParams::default().with_activation(Activation::Tanh);
    let err = e
        .conv2d_into_with(Algorithm::Custom(custom), &x, &w, None, &p, &mut out)
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedAlgorithm { .. }), "{err}");
    assert!(err.to_string().contains("epilogue"), "{err}");
}

/// The layer types' backward pass through their fused activation (`layer::Conv1d`, `Conv2d`,
/// `Conv3d` with `params.activation`) against the reference's `conv_nd_fused_backward_f64`,
/// over random configurations with the smooth activations (whose slope has no kink a rounding
/// could cross; the piecewise ones are checked on the PyTorch goldens, whose pre-activations
/// keep clear of the kinks).
#[test]
fn layers_differentiate_through_their_fused_activation() {
    let smooth = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
    ];
    let e = engine();
    let offset = seed_offset();
    let mut rng = rng(0xe911_0006);
    for i in 0..36 {
        let act = smooth[i % smooth.len()];
        let fail = |m: String| panic!("{m}; reproduce with WGCONV_TEST_SEED={offset}");
        match i % 3 {
            0 => {
                let mut c = random_case::<1>(&mut rng, 0, 30_000);
                (c.params.activation, c.r) = (act, None);
                let layer = wgconv::layer::Conv1d::from_tensors(e, &c.w, c.b.as_ref(), c.params)
                    .unwrap_or_else(|e| panic!("case {i}: {}: {e}", c.describe()));
                check_layer(&c, &mut rng, |x, g| layer.backward(e, x, g)).unwrap_or_else(fail);
            }
            1 => {
                let mut c = random_case::<2>(&mut rng, 0, 30_000);
                (c.params.activation, c.r) = (act, None);
                let p = Conv2dParams::from(&c.params);
                let layer = wgconv::layer::Conv2d::from_tensors(e, &c.w, c.b.as_ref(), p)
                    .unwrap_or_else(|e| panic!("case {i}: {}: {e}", c.describe()));
                check_layer(&c, &mut rng, |x, g| layer.backward(e, x, g)).unwrap_or_else(fail);
            }
            _ => {
                let mut c = random_case::<3>(&mut rng, 0, 30_000);
                (c.params.activation, c.r) = (act, None);
                let layer = wgconv::layer::Conv3d::from_tensors(e, &c.w, c.b.as_ref(), c.params)
                    .unwrap_or_else(|e| panic!("case {i}: {}: {e}", c.describe()));
                check_layer(&c, &mut rng, |x, g| layer.backward(e, x, g)).unwrap_or_else(fail);
            }
        }
    }
}

/// One layer case's GPU gradients (from `backward(x, grad_output)`) against the reference's,
/// within the gradient tolerances for an output gradient `dz` off by up to
/// common::activation_grad_error.
fn check_layer<const N: usize>(
    c: &Case<N>,
    rng: &mut ChaCha8Rng,
    backward: impl Fn(&GpuTensor, &GpuTensor) -> wgconv::Result<wgconv::Conv2dGrads>,
) -> Result<(), String> {
    let e = engine();
    let (shape, _, tol) = c.want();
    let gy = random_tensor(rng, &shape.output_shape());
    let tensors = (&c.x, &c.w, c.b.as_ref(), None);
    let (want, dz) = reference::conv_nd_fused_backward_f64(tensors, &gy, &c.params)
        .map_err(|e| format!("{}: {e}", c.describe()))?;
    let (x, g) = (e.upload(&c.x).unwrap(), e.upload(&gy).unwrap());
    let grads = backward(&x, &g).map_err(|e| format!("{}: {e}", c.describe()))?;
    let eps = f64::from(f32::EPSILON);
    let dz_err = common::activation_grad_error(c.params.activation, tol, c.max_pre(), max_abs(&gy));
    let max_dz = dz.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = (max_abs(&c.x), max_abs(&c.w), max_dz + dz_err / eps);
    common::check_gpu_grads(e, &c.describe(), &grads, &want, scale)
}
