//! PyTorch golden files over 1 to 3 spatial axes (tests/golden_nd, made by
//! tests/golden_nd/generate.py) against the CPU reference and the GPU.
//!
//! The files cover every feature of the convolution family. The cases these tests run are those
//! of the features wgconv has (`implemented`): every padding mode, channels-first, no fused
//! epilogue, no kernel flip; every one of them runs, and each test asserts how many it ran, so a case that
//! goes missing fails, on the reference and on the GPU (conv1d on every kernel).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgconv::cpu::reference;
use wgconv::{io, Algorithm, ConvNdParams, Error, PaddingNd, Tensor};

use common::{compare, engine, max_abs, tolerance, view4};

struct Case {
    name: String,
    dims: usize,
    meta: Value,
    input: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    output: Tensor,
    /// `grad_output, grad_input, grad_weight, grad_bias` when the case has gradients.
    grads: Option<(Tensor, Tensor, Tensor, Option<Tensor>)>,
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
            let grads = c["grad"].as_bool().expect("grad flag").then(|| {
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
                output: file("output"),
                grads,
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
            && self.meta["activation"].is_null()
            && self.meta["residual"] == false
            && self.meta["flip_kernel"] == false
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
        }
    }

    /// The GPU's tolerance: the derived one for `C/groups * prod(k)` products, plus the golden
    /// value's own rounding to f32.
    fn tolerance(&self) -> f64 {
        let k = self.weight.shape()[1..].iter().product();
        let max_b = self.bias.as_ref().map_or(0.0, max_abs);
        tolerance(k, max_abs(&self.input), max_abs(&self.weight), max_b)
            + f64::from(f32::EPSILON) * max_abs(&self.output)
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| f64::from(v)).collect()
}

/// The reference's f64 result against PyTorch's f64 result rounded to f32: one rounding apart.
fn assert_close_to_golden(context: &str, got: &[f64], want: &Tensor) {
    assert_eq!(got.len(), want.len(), "{context}: element count");
    for (i, (&g, &w)) in got.iter().zip(want.data()).enumerate() {
        let tol = f64::from(f32::EPSILON) * f64::from(w.abs()) + f64::from(f32::MIN_POSITIVE);
        assert!(
            (g - f64::from(w)).abs() <= tol,
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
        let (s, got) =
            reference::conv_nd_f64(&c.input, &c.weight, c.bias.as_ref(), &c.params::<N>())
                .expect(&c.name);
        assert_eq!(s.output_shape(), c.output.shape(), "{}", c.name);
        assert_close_to_golden(&c.name, &got, &c.output);
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
        let g = reference::conv_nd_backward_f64(&c.input, &c.weight, gy, &c.params::<N>())
            .expect(&c.name);
        assert_close_to_golden(&format!("{}, grad input", c.name), &g.input, gx);
        assert_close_to_golden(&format!("{}, grad weight", c.name), &g.weight, gw);
        if let Some(gb) = gb {
            assert_close_to_golden(&format!("{}, grad bias", c.name), &g.bias, gb);
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
}

/// A forced-algorithm call into a given output: `(algorithm, x, w, bias, params, out)`.
type RunInto<'a, const N: usize> = &'a dyn Fn(
    Algorithm,
    &wgconv::GpuTensor,
    &wgconv::GpuTensor,
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
        let nan = Tensor::full(c.output.shape().to_vec(), f32::NAN).expect(&c.name);
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = upload(c, &nan);
            match run_into(algorithm, &x, &w, b.as_ref(), &params, &mut out) {
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
        &|c, p| e.conv1d(&c.input, &c.weight, c.bias.as_ref(), p),
        &|a, x, w, b, p, out| e.conv1d_into_with(a, x, w, b, p, out),
    );
    let three = check_on_every_kernel::<3>(
        &|c, p| e.conv3d(&c.input, &c.weight, c.bias.as_ref(), p),
        &|a, x, w, b, p, out| e.conv3d_into_with(a, x, w, b, p, out),
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
        let got = engine
            .conv2d(&c.input, &c.weight, c.bias.as_ref(), &params)
            .expect(&c.name);
        assert_eq!(got.shape(), c.output.shape(), "{}: output shape", c.name);
        let (tol, want) = (c.tolerance(), f64s(&c.output));
        compare(&c.name, view4(c.output.shape()), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
        let x = engine.upload(&c.input).expect(&c.name);
        let w = engine.upload(&c.weight).expect(&c.name);
        let b = c.bias.as_ref().map(|b| engine.upload(b).expect(&c.name));
        let y = engine
            .conv2d_gpu(&x, &w, b.as_ref(), &params)
            .expect(&c.name);
        assert_eq!(y.shape(), c.output.shape(), "{}: conv2d_gpu shape", c.name);
    });
    assert!(
        ran >= 5 && unbatched >= 1,
        "{ran} conv2d cases, {unbatched} unbatched"
    );
}

/// The GPU's gradients of every implemented `N`-D case with gradients, from `backward`, against
/// PyTorch's; returns how many cases ran.
fn check_gpu_gradients<const N: usize>(
    backward: impl Fn(&Case, &ConvNdParams<N>) -> wgconv::Result<wgconv::Conv2dGrads>,
) -> usize {
    let engine = engine();
    let mut ran = 0;
    each_implemented(N, |c| {
        let Some((gy, gx, gw, gb)) = &c.grads else {
            return;
        };
        ran += 1;
        let params = c.params::<N>();
        let grads = backward(c, &params).expect(&c.name);
        assert_eq!(grads.input.shape(), gx.shape(), "{}", c.name);
        assert_eq!(grads.weight.shape(), gw.shape(), "{}", c.name);
        let down = |t: &wgconv::GpuTensor| engine.download(t).expect(&c.name);
        let s = wgconv::ConvNdShape::new(c.input.shape(), c.weight.shape(), None, &params)
            .expect(&c.name);
        // Each gradient within the derived tolerance of its own sums (see
        // common::compare_grads), plus the golden value's rounding to f32.
        let (mx, mw, mg) = (max_abs(&c.input), max_abs(&c.weight), max_abs(gy));
        let rows = s.batch * s.output.iter().product::<usize>();
        let taps = common::padding_readers(&s) * s.out_channels / s.groups
            * s.kernel.iter().product::<usize>();
        let eps = f64::from(f32::EPSILON);
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
    ran
}

fn upload(c: &Case, t: &Tensor) -> wgconv::GpuTensor {
    engine().upload(t).expect(&c.name)
}

#[test]
fn gpu_gradients_match_pytorch_in_1d_2d_and_3d() {
    let one = check_gpu_gradients::<1>(|c, params| {
        let (gy, _, _, gb) = c.grads.as_ref().expect("a gradient case");
        let (x, w, g) = (upload(c, &c.input), upload(c, &c.weight), upload(c, gy));
        engine().conv1d_backward(&x, &w, &g, params, gb.is_some())
    });
    let three = check_gpu_gradients::<3>(|c, params| {
        let (gy, _, _, gb) = c.grads.as_ref().expect("a gradient case");
        let (x, w, g) = (upload(c, &c.input), upload(c, &c.weight), upload(c, gy));
        engine().conv3d_backward(&x, &w, &g, params, gb.is_some())
    });
    // The conv2d gradient case is unbatched: the backward pass of an unbatched input.
    let two = check_gpu_gradients::<2>(|c, params| {
        let (gy, _, _, gb) = c.grads.as_ref().expect("a gradient case");
        let (x, w, g) = (upload(c, &c.input), upload(c, &c.weight), upload(c, gy));
        engine().conv2d_backward(&x, &w, &g, &params.into(), gb.is_some())
    });
    assert!(
        one >= 2 && two >= 1 && three >= 3,
        "{one} conv1d, {two} conv2d and {three} conv3d gradient cases"
    );
}
