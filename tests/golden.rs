//! PyTorch golden files (tests/golden, made by tests/golden/generate.py) against the CPU
//! reference and the GPU.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgconv::{cpu, io, Algorithm, Conv2dParams, Error, Padding, Tensor};

use common::{compare, engine, max_abs, tolerance};

struct Case {
    name: String,
    input: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv2dParams,
    output: Tensor,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().expect("pair is a list");
    (
        a[0].as_u64().expect("int") as usize,
        a[1].as_u64().expect("int") as usize,
    )
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.json"))
        .expect("tests/golden/cases.json is readable");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json is a JSON list");
    cases
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let file = |part: &str| {
                io::read_npy(dir().join(format!("{name}.{part}.npy"))).expect("golden .npy reads")
            };
            let padding = match &c["padding"] {
                Value::String(s) if s == "same" => Padding::Same,
                Value::String(s) if s == "valid" => Padding::Valid,
                Value::Array(a) => {
                    let n: Vec<usize> = a
                        .iter()
                        .map(|v| v.as_u64().expect("int") as usize)
                        .collect();
                    Padding::explicit(n[0], n[1], n[2], n[3])
                }
                other => panic!("case {name}: bad padding {other}"),
            };
            let params = Conv2dParams {
                stride: pair(&c["stride"]),
                padding,
                dilation: pair(&c["dilation"]),
                groups: c["groups"].as_u64().expect("groups") as usize,
                ..wgconv::Conv2dParams::default()
            };
            Case {
                input: file("input"),
                weight: file("weight"),
                bias: c["bias"]
                    .as_bool()
                    .expect("bias flag")
                    .then(|| file("bias")),
                output: file("output"),
                params,
                name,
            }
        })
        .collect()
}

fn shape4(t: &Tensor) -> [usize; 4] {
    t.shape().try_into().expect("4D output")
}

#[test]
fn golden_set_is_large_and_varied() {
    let cases = load_cases();
    assert!(cases.len() >= 20, "only {} golden cases", cases.len());
    assert!(cases.iter().any(|c| c.params.padding == Padding::Same));
    assert!(cases
        .iter()
        .any(|c| c.params.groups > 1 && c.params.groups == c.input.shape()[1]));
    assert!(cases.iter().any(|c| c.params.dilation != (1, 1)));
    assert!(cases.iter().any(|c| c.bias.is_none()) && cases.iter().any(|c| c.bias.is_some()));
}

/// The reference rounds one f64 result to f32, as the generator did with PyTorch's f64 result:
/// they agree to within one rounding of each (eps * |y|) plus f64 summation-order noise.
#[test]
fn cpu_reference_matches_pytorch() {
    for case in load_cases() {
        let (shape, got) =
            cpu::reference::conv2d_f64(&case.input, &case.weight, case.bias.as_ref(), &case.params)
                .expect(&case.name);
        assert_eq!(
            shape.output_shape().as_slice(),
            case.output.shape(),
            "{}: output shape",
            case.name
        );
        for (i, (&g, &want)) in got.iter().zip(case.output.data()).enumerate() {
            let tol =
                f64::from(f32::EPSILON) * f64::from(want.abs()) + f64::from(f32::MIN_POSITIVE);
            assert!(
                (g - f64::from(want)).abs() <= tol,
                "{}: element {i}: reference {g:e}, PyTorch {want:e}",
                case.name
            );
        }
    }
}

#[test]
fn gpu_matches_pytorch_on_every_kernel() {
    let engine = engine();
    for case in load_cases() {
        let k = case.weight.shape()[1..].iter().product();
        let max_b = case.bias.as_ref().map_or(0.0, max_abs);
        // Golden values are themselves rounded to f32: allow that rounding on top.
        let tol = tolerance(k, max_abs(&case.input), max_abs(&case.weight), max_b)
            + f64::from(f32::EPSILON) * max_abs(&case.output);
        let want: Vec<f64> = case.output.data().iter().map(|&v| f64::from(v)).collect();

        // The one-shot call, with the engine's own choice of kernel.
        let got = engine
            .conv2d(&case.input, &case.weight, case.bias.as_ref(), &case.params)
            .expect(&case.name);
        assert_eq!(
            got.shape(),
            case.output.shape(),
            "{}: output shape",
            case.name
        );
        compare(&case.name, shape4(&case.output), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));

        // Every kernel that covers the case, forced, into an output that starts as NaN.
        let x = engine.upload(&case.input).expect(&case.name);
        let w = engine.upload(&case.weight).expect(&case.name);
        let b = case
            .bias
            .as_ref()
            .map(|b| engine.upload(b).expect(&case.name));
        let nan = Tensor::full(case.output.shape().to_vec(), f32::NAN).expect(&case.name);
        // Every named algorithm but Auto, which the loop above runs.
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = engine.upload(&nan).expect(&case.name);
            match engine.conv2d_into_with(algorithm, &x, &w, b.as_ref(), &case.params, &mut out) {
                Ok(()) => {}
                Err(Error::UnsupportedAlgorithm { .. }) if algorithm != Algorithm::Direct => {
                    continue
                }
                Err(e) => panic!("{}, {algorithm:?}: {e}", case.name),
            }
            let got = engine.download(&out).expect(&case.name);
            let context = format!("{}, {algorithm:?}", case.name);
            compare(&context, shape4(&case.output), got.data(), &want, tol)
                .unwrap_or_else(|m| panic!("{m}"));
        }
    }
}
