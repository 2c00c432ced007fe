//! PyTorch golden files over 1 to 3 spatial axes (tests/golden_nd, made by
//! tests/golden_nd/generate.py) against the CPU reference and the GPU.
//!
//! The files cover every feature of the convolution family. The cases these tests run are those
//! of the features wgconv has (`implemented`): every padding mode, the fused epilogue (bias,
//! residual, activation), true convolution (the kernel flipped), channels-first; every one of them runs, and each test asserts how many it ran, so a case that
//! goes missing fails, on the reference and on the GPU (conv1d on every kernel).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgconv::cpu::reference;
use wgconv::{io, Activation, Algorithm, ConvNdParams, Error, PaddingNd, Tensor};

use common::{compare, engine, epilogue_tolerance, max_abs, tolerance, view4};

struct Case {
    name: String,
    dims: usize,
    meta: Value,
    input: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    /// The epilogue's residual, added before the activation.
    residual: Option<Tensor>,
    output: Tensor,
    /// `grad_output, grad_input, grad_weight, grad_bias` when the case has gradients.
    grads: Option<(Tensor, Tensor, Tensor, Option<Tensor>)>,
    /// `dL/dresidual` when the case has gradients and a residual.
    grad_residual: Option<Tensor>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_nd")
}

fn numbers(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|n| n.as_u64().expect("an integer") as usize)
        .collect()
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.json"))
        .expect("tests/golden_nd/cases.json is readable");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json is a JSON list");
    cases
        .into_iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let file = |part: &str| {
                io::read_npy(dir().join(format!("{name}.{part}.npy"))).expect("golden .npy reads")
            };
            let has_bias = c["bias"].as_bool().expect("bias flag");
            let has_residual = c["residual"].as_bool().expect("residual flag");
            let has_grads = c["grad"].as_bool().expect("grad flag");
            let grads = has_grads.then(|| {
                (
                    file("grad_output"),
                    file("grad_input"),
                    file("grad_weight"),
                    has_bias.then(|| file("grad_bias")),
                )
            });
            Case {
                dims: c["dims"].as_u64().expect("dims") as usize,
                input: file("input"),
                weight: file("weight"),
                bias: has_bias.then(|| file("bias")),
                residual: has_residual.then(|| file("residual")),
                output: file("output"),
                grads,
                grad_residual: (has_grads && has_residual).then(|| file("grad_residual")),
                meta: c,
                name,
            }
        })
        .collect()
}

impl Case {
    /// Whether the case uses only features wgconv has so far.
    fn implemented(&self) -> bool {
        self.meta["layout"] == "channels_first"
    }

    /// The case's activation (`null` is none), with PyTorch's parameters.
    fn activation(&self) -> Activation {
        let a = &self.meta["activation"];
        let number = |key: &str| a[key].as_f64().expect("an activation parameter") as f32;
        match a["name"].as_str() {
            None => Activation::None,
            Some("leaky_relu") => Activation::LeakyRelu(number("slope")),
            Some("clamp") => Activation::Clamp {
                min: number("min"),
                max: number("max"),
            },
            Some(name) => name
                .replace('_', "-")
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", self.name)),
        }
    }

    fn params<const N: usize>(&self) -> ConvNdParams<N> {
        let axes = |key: &str| -> [usize; N] {
            numbers(&self.meta[key])
                .try_into()
                .expect("one value per axis")
        };
        let padding = match &self.meta["padding"] {
            Value::String(s) if s == "same" => PaddingNd::Same,
            Value::String(s) if s == "valid" => PaddingNd::Valid,
            Value::Array(pairs) => {
                let pairs: Vec<[usize; 2]> = pairs
                    .iter()
                    .map(|p| numbers(p).try_into().expect("a [before, after] pair"))
                    .collect();
                PaddingNd::Explicit(pairs.try_into().expect("one pair per axis"))
            }
            other => panic!("{}: bad padding {other}", self.name),
        };
        let mode = self.meta["padding_mode"].as_str().expect("padding_mode");
        ConvNdParams {
            stride: axes("stride"),
            padding,
            padding_mode: mode.parse().expect("a padding mode"),
            dilation: axes("dilation"),
            groups: self.meta["groups"].as_u64().expect("groups") as usize,
            activation: self.activation(),
            flip_kernel: self.meta["flip_kernel"].as_bool().expect("flip_kernel"),
        }
    }

    /// The GPU's tolerance: the derived one for `C/groups * prod(k)` products, through the
    /// epilogue (common::epilogue_tolerance, with the reference's largest pre-activation), plus
    /// the golden value's own rounding to f32.
    fn tolerance(&self) -> f64 {
        let k = self.weight.shape()[1..].iter().product();
        let max_b = self.bias.as_ref().map_or(0.0, max_abs);
        let conv = tolerance(k, max_abs(&self.input), max_abs(&self.weight), max_b);
        let max_r = self.residual.as_ref().map_or(0.0, max_abs);
        epilogue_tolerance(self.activation(), conv, self.max_pre(), max_r)
            + f64::from(f32::EPSILON) * max_abs(&self.output)
    }

    /// The largest `|conv + bias + residual|`, the activation's argument (the reference's).
    fn max_pre(&self) -> f64 {
        fn of<const N: usize>(c: &Case) -> Vec<f64> {
            let linear = ConvNdParams {
                activation: Activation::None,
                ..c.params::<N>()
            };
            let (b, r) = (c.bias.as_ref(), c.residual.as_ref());
            let (_, pre) =
                reference::conv_nd_fused_f64(&c.input, &c.weight, b, r, &linear).expect(&c.name);
            pre
        }
        let pre = match self.dims {
            1 => of::<1>(self),
            2 => of::<2>(self),
            _ => of::<3>(self),
        };
        pre.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| f64::from(v)).collect()
}

/// The reference's f64 result against PyTorch's f64 result rounded to f32: one rounding apart,
/// plus PyTorch's own f64 error where its formulas cancel: `0.5 x (1 + erf)` and
/// `0.5 x (1 + tanh)` in the negative tail lose the f64 ulps of 1 (the reference uses erfc and
/// the sigmoid, which do not), so a slack of 64 f64 ulps of `max(1, max|pre|) * max(1, |want|)`
/// is allowed, 2^-23 below anything an f32 result can show.
fn assert_close_to_golden(c: &Case, what: &str, got: &[f64], want: &Tensor) {
    let context = if what.is_empty() {
        c.name.clone()
    } else {
        format!("{}, {what}", c.name)
    };
    assert_eq!(got.len(), want.len(), "{context}: element count");
    let slack = 64.0 * f64::EPSILON * c.max_pre().max(1.0) * max_abs(want).max(1.0);
    for (i, (&g, &w)) in got.iter().zip(want.data()).enumerate() {
        let tol = f64::from(f32::EPSILON) * f64::from(w.abs()) + f64::from(f32::MIN_POSITIVE);
        assert!(
            (g - f64::from(w)).abs() <= tol + slack,
            "{context}: element {i}: reference {g:e}, PyTorch {w:e}"
        );
    }
}

#[test]
fn golden_nd_set_covers_every_feature_of_the_family() {
    let cases = load_cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    for dims in 1..=3 {
        assert!(count(&|c| c.dims == dims) >= 20, "conv{dims}d cases");
        assert!(count(&|c| c.dims == dims && c.grads.is_some()) >= 5);
        for mode in ["reflect", "replicate", "circular"] {
            assert!(count(&|c| c.dims == dims && c.meta["padding_mode"] == mode) >= 1);
        }
    }
    assert!(count(&|c| c.meta["unbatched"] == true) >= 10);
    assert!(count(&|c| c.meta["padding"] == "same") >= 10);
    assert!(count(&|c| c.meta["groups"].as_u64() > Some(1)) >= 10);
    assert!(count(&|c| !c.meta["activation"].is_null()) >= 30);
    assert!(count(&|c| c.meta["residual"] == true) >= 10);
    assert!(count(&|c| c.meta["layout"] == "channels_last") >= 10);
    assert!(count(&|c| c.meta["flip_kernel"] == true) >= 10);
    // True convolution runs (channels-first), with gradients in every rank.
    for dims in 1..=3 {
        let flipped = |c: &Case| c.dims == dims && c.implemented() && c.meta["flip_kernel"] == true;
        assert!(count(&flipped) >= 2, "conv{dims}d flip cases");
        assert!(count(&|c| flipped(c) && c.grads.is_some()) >= 1);
    }
}

/// Runs `check` on every implemented case of `dims` and returns how many there were.
fn each_implemented(dims: usize, mut check: impl FnMut(&Case)) -> usize {
    let cases: Vec<Case> = load_cases()
        .into_iter()
        .filter(|c| c.dims == dims && c.implemented())
        .collect();
    cases.iter().for_each(&mut check);
    cases.len()
}

#[test]
fn reference_matches_pytorch_in_1d_2d_and_3d() {
    fn check<const N: usize>(c: &Case) {
        let (b, r) = (c.bias.as_ref(), c.residual.as_ref());
        let (s, got) = reference::conv_nd_fused_f64(&c.input, &c.weight, b, r, &c.params::<N>())
            .expect(&c.name);
        assert_eq!(s.output_shape(), c.output.shape(), "{}", c.name);
        assert_close_to_golden(c, "", &got, &c.output);
    }
    let ran = [
        each_implemented(1, check::<1>),
        each_implemented(2, check::<2>),
        each_implemented(3, check::<3>),
    ];
    eprintln!("golden_nd reference cases (1d, 2d, 3d): {ran:?}");
    assert!(ran.iter().all(|&n| n >= 5), "{ran:?}");
}

#[test]
fn reference_gradients_match_pytorch_in_1d_2d_and_3d() {
    fn check<const N: usize>(c: &Case) {
        let Some((gy, gx, gw, gb)) = &c.grads else {
            return;
        };
        let params = c.params::<N>();
        let tensors = (&c.input, &c.weight, c.bias.as_ref(), c.residual.as_ref());
        let (g, dz) = reference::conv_nd_fused_backward_f64(tensors, gy, &params).expect(&c.name);
        if let Some(gr) = &c.grad_residual {
            assert_close_to_golden(c, "grad residual", &dz, gr);
        }
        if params.activation.is_none() {
            // The convolution's own backward pass agrees (and refuses a fused activation).
            let plain =
                reference::conv_nd_backward_f64(&c.input, &c.weight, gy, &params).expect(&c.name);
            assert_eq!(plain.input, g.input, "{}", c.name);
        } else {
            let e = reference::conv_nd_backward_f64(&c.input, &c.weight, gy, &params);
            assert!(
                matches!(e, Err(Error::EpilogueGradient { .. })),
                "{}",
                c.name
            );
        }
        assert_close_to_golden(c, "grad input", &g.input, gx);
        assert_close_to_golden(c, "grad weight", &g.weight, gw);
        if let Some(gb) = gb {
            assert_close_to_golden(c, "grad bias", &g.bias, gb);
        }
    }
    let cases = load_cases();
    let with_grads = |dims: usize| {
        cases
            .iter()
            .filter(|c| c.dims == dims && c.implemented() && c.grads.is_some())
            .count()
    };
    each_implemented(1, check::<1>);
    each_implemented(2, check::<2>);
    each_implemented(3, check::<3>);
    let counts = [with_grads(1), with_grads(2), with_grads(3)];
    assert!(
        counts.iter().all(|&n| n >= 1),
        "gradient cases per dims: {counts:?}"
    );
    let through_epilogue = cases
        .iter()
        .filter(|c| c.implemented() && c.grads.is_some() && !c.activation().is_none())
        .count();
    assert!(
        through_epilogue >= 3,
        "{through_epilogue} activation gradient cases"
    );
}

/// A forced-algorithm call into a given output: `(algorithm, x, w, bias, residual, params, out)`.
type RunInto<'a, const N: usize> = &'a dyn Fn(
    Algorithm,
    &wgconv::GpuTensor,
    &wgconv::GpuTensor,
    Option<&wgconv::GpuTensor>,
    Option<&wgconv::GpuTensor>,
    &ConvNdParams<N>,
    &mut wgconv::GpuTensor,
) -> wgconv::Result<()>;

/// Every implemented `N`-D case through the one-shot call `run`, then on every named kernel
/// through `run_into` into an output that starts as NaN; returns how many cases ran.
fn check_on_every_kernel<const N: usize>(
    run: &dyn Fn(&Case, &ConvNdParams<N>) -> wgconv::Result<Tensor>,
    run_into: RunInto<'_, N>,
) -> usize {
    let engine = engine();
    each_implemented(N, |c| {
        let (tol, want, shape) = (c.tolerance(), f64s(&c.output), view4(c.output.shape()));
        let params = c.params::<N>();
        let got = run(c, &params).expect(&c.name);
        assert_eq!(got.shape(), c.output.shape(), "{}: output shape", c.name);
        compare(&c.name, shape, got.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));
        let (x, w) = (upload(c, &c.input), upload(c, &c.weight));
        let b = c.bias.as_ref().map(|b| upload(c, b));
        let r = c.residual.as_ref().map(|r| upload(c, r));
        let nan = Tensor::full(c.output.shape().to_vec(), f32::NAN).expect(&c.name);
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = upload(c, &nan);
            match run_into(algorithm, &x, &w, b.as_ref(), r.as_ref(), &params, &mut out) {
                Ok(()) => {}
                Err(Error::UnsupportedAlgorithm { .. }) if algorithm != Algorithm::Direct => {
                    continue
                }
                Err(e) => panic!("{}, {algorithm:?}: {e}", c.name),
            }
            let got = engine.download(&out).expect(&c.name);
            let context = format!("{}, {algorithm:?}", c.name);
            compare(&context, shape, got.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));
        }
    })
}

#[test]
fn gpu_conv1d_and_conv3d_match_pytorch_on_every_kernel() {
    let e = engine();
    let one = check_on_every_kernel::<1>(
        &|c, p| e.conv1d_fused(&c.input, &c.weight, c.bias.as_ref(), c.residual.as_ref(), p),
        &|a, x, w, b, r, p, out| e.conv1d_fused_into_with(a, x, w, b, r, p, out),
    );
    let three = check_on_every_kernel::<3>(
        &|c, p| e.conv3d_fused(&c.input, &c.weight, c.bias.as_ref(), c.residual.as_ref(), p),
        &|a, x, w, b, r, p, out| e.conv3d_fused_into_with(a, x, w, b, r, p, out),
    );
    assert!(
        one >= 15 && three >= 15,
        "{one} conv1d and {three} conv3d cases"
    );
}

#[test]
fn gpu_conv2d_matches_pytorch_batched_and_unbatched() {
    let engine = engine();
    let mut unbatched = 0;
    let ran = each_implemented(2, |c| {
        let params = wgconv::Conv2dParams::from(&c.params::<2>());
        unbatched += usize::from(c.input.shape().len() == 3);
        let (b, r) = (c.bias.as_ref(), c.residual.as_ref());
        let got = engine
            .conv2d_fused(&c.input, &c.weight, b, r, &params)
            .expect(&c.name);
        assert_eq!(got.shape(), c.output.shape(), "{}: output shape", c.name);
        let (tol, want) = (c.tolerance(), f64s(&c.output));
        compare(&c.name, view4(c.output.shape()), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
        let x = engine.upload(&c.input).expect(&c.name);
        let w = engine.upload(&c.weight).expect(&c.name);
        let b = c.bias.as_ref().map(|b| engine.upload(b).expect(&c.name));
        let r = c
            .residual
            .as_ref()
            .map(|r| engine.upload(r).expect(&c.name));
        let y = engine
            .conv2d_fused_gpu(&x, &w, b.as_ref(), r.as_ref(), &params)
            .expect(&c.name);
        assert_eq!(y.shape(), c.output.shape(), "{}: conv2d_gpu shape", c.name);
        let got = engine.download(&y).expect(&c.name);
        compare(&c.name, view4(c.output.shape()), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    });
    assert!(
        ran >= 5 && unbatched >= 1,
        "{ran} conv2d cases, {unbatched} unbatched"
    );
}

/// A backward call on the GPU: `(x, w, grad_output, params, with_bias)`.
type Backward<'a, const N: usize> = &'a dyn Fn(
    &wgconv::GpuTensor,
    &wgconv::GpuTensor,
    &wgconv::GpuTensor,
    &ConvNdParams<N>,
    bool,
) -> wgconv::Result<wgconv::Conv2dGrads>;

/// A fused forward call on the GPU: `(x, w, bias, residual, params)`.
type Forward<'a, const N: usize> = &'a dyn Fn(
    &wgconv::GpuTensor,
    &wgconv::GpuTensor,
    Option<&wgconv::GpuTensor>,
    Option<&wgconv::GpuTensor>,
    &ConvNdParams<N>,
) -> wgconv::Result<wgconv::GpuTensor>;

/// The GPU's gradients of every implemented `N`-D case with gradients against PyTorch's: from
/// `backward`, and for a case with an activation through it, as the layer types differentiate
/// (the pre-activation from `forward` without the activation, `Engine::activation_grad`, then
/// `backward` of the convolution alone, which refuses the activation itself); returns how many
/// cases ran and how many of them went through an activation.
fn check_gpu_gradients<const N: usize>(
    backward: Backward<'_, N>,
    forward: Forward<'_, N>,
) -> (usize, usize) {
    let engine = engine();
    let (mut ran, mut through) = (0, 0);
    each_implemented(N, |c| {
        let Some((gy, gx, gw, gb)) = &c.grads else {
            return;
        };
        ran += 1;
        let params = c.params::<N>();
        let act = params.activation;
        let (x, w, g) = (upload(c, &c.input), upload(c, &c.weight), upload(c, gy));
        let (b, r) = (
            c.bias.as_ref().map(|b| upload(c, b)),
            c.residual.as_ref().map(|r| upload(c, r)),
        );
        let linear = ConvNdParams {
            activation: Activation::None,
            ..params
        };
        let (dz, dz_err) = if act.is_none() {
            (None, 0.0)
        } else {
            through += 1;
            let e = backward(&x, &w, &g, &params, gb.is_some()).expect_err(&c.name);
            assert!(
                matches!(e, Error::EpilogueGradient { .. }),
                "{}: {e}",
                c.name
            );
            let pre = forward(&x, &w, b.as_ref(), r.as_ref(), &linear).expect(&c.name);
            let dz = engine.activation_grad(&pre, &g, act).expect(&c.name);
            (
                Some(dz),
                common::activation_grad_error(act, c.tolerance(), c.max_pre(), max_abs(gy)),
            )
        };
        let g = dz.as_ref().unwrap_or(&g);
        let grads = backward(&x, &w, g, &linear, gb.is_some()).expect(&c.name);
        assert_eq!(grads.input.shape(), gx.shape(), "{}", c.name);
        assert_eq!(grads.weight.shape(), gw.shape(), "{}", c.name);
        let down = |t: &wgconv::GpuTensor| engine.download(t).expect(&c.name);
        let s = wgconv::ConvNdShape::new(c.input.shape(), c.weight.shape(), None, &linear)
            .expect(&c.name);
        // Each gradient within the derived tolerance of its own sums (see
        // common::compare_grads) for an output gradient of max|dz| off by up to dz_err
        // (common::activation_grad_error), plus the golden value's rounding to f32.
        let eps = f64::from(f32::EPSILON);
        let max_dz = dz.as_ref().map_or(max_abs(gy), |d| max_abs(&down(d)));
        let (mx, mw, mg) = (max_abs(&c.input), max_abs(&c.weight), max_dz + dz_err / eps);
        let rows = s.batch * s.output.iter().product::<usize>();
        let taps = common::padding_readers(&s) * s.out_channels / s.groups
            * s.kernel.iter().product::<usize>();
        let mut checks = vec![
            (
                "grad input",
                down(&grads.input),
                gx,
                tolerance(taps, mg, mw, 0.0),
            ),
            (
                "grad weight",
                down(&grads.weight),
                gw,
                tolerance(rows, mg, mx, 0.0),
            ),
        ];
        if let (Some(got), Some(want)) = (&grads.bias, gb) {
            checks.push(("grad bias", down(got), want, tolerance(rows, mg, 1.0, 0.0)));
        }
        if let (Some(dz), Some(want)) = (&dz, &c.grad_residual) {
            checks.push(("grad residual", down(dz), want, dz_err + eps * max_dz));
        }
        for (what, got, want, tol) in checks {
            let context = format!("{}, {what}", c.name);
            let tol = tol + eps * max_abs(want);
            let shape = match want.shape() {
                [o] => [1, *o, 1, 1],
                dims => view4(dims),
            };
            compare(&context, shape, got.data(), &f64s(want), tol)
                .unwrap_or_else(|m| panic!("{m}"));
        }
    });
    (ran, through)
}

fn upload(c: &Case, t: &Tensor) -> wgconv::GpuTensor {
    engine().upload(t).expect(&c.name)
}

#[test]
fn gpu_gradients_match_pytorch_in_1d_2d_and_3d() {
    let e = engine();
    let one = check_gpu_gradients::<1>(
        &|x, w, g, p, bias| e.conv1d_backward(x, w, g, p, bias),
        &|x, w, b, r, p| e.conv1d_fused_gpu(x, w, b, r, p),
    );
    let three = check_gpu_gradients::<3>(
        &|x, w, g, p, bias| e.conv3d_backward(x, w, g, p, bias),
        &|x, w, b, r, p| e.conv3d_fused_gpu(x, w, b, r, p),
    );
    // The conv2d gradient cases include an unbatched one: the backward pass of an unbatched input.
    let two = check_gpu_gradients::<2>(
        &|x, w, g, p, bias| e.conv2d_backward(x, w, g, &p.into(), bias),
        &|x, w, b, r, p| e.conv2d_fused_gpu(x, w, b, r, &p.into()),
    );
    eprintln!("GPU gradient cases (all, through an activation): {one:?} {two:?} {three:?}");
    assert!(
        one.0 >= 2 && two.0 >= 1 && three.0 >= 3 && one.1 + two.1 + three.1 >= 3,
        "{one:?} conv1d, {two:?} conv2d and {three:?} conv3d gradient cases"
    );
}
