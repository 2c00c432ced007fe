//! PyTorch golden gradients and transposed convolutions (tests/golden_grad, made by
//! tests/golden_grad/generate.py) against the CPU reference and the GPU.
//!
//! The loaders ([`load_grad_cases`], [`load_transpose_cases`]) know nothing of the CPU or the GPU,
//! so the engine's backward passes are checked against the same files here.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgconv::cpu::reference::{conv2d_backward_f64, conv_transpose2d_f64};
use wgconv::{io, Conv2dParams, Conv2dShape, ConvTranspose2dParams, Padding, Tensor};

/// One `conv2d_backward` golden: the convolution, `G = grad_output`, and PyTorch's gradients of
/// `L = sum(G * conv2d(input, weight, bias))`.
struct GradCase {
    name: String,
    input: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv2dParams,
    grad_output: Tensor,
    grad_input: Tensor,
    grad_weight: Tensor,
    /// Present exactly when `bias` is.
    grad_bias: Option<Tensor>,
}

/// One `conv_transpose2d` golden: PyTorch's output for the input, weight, bias and parameters.
struct TransposeCase {
    name: String,
    input: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvTranspose2dParams,
    output: Tensor,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_grad")
}

fn cases_json(kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json"))
        .expect("tests/golden_grad/cases.json is readable");
    let all: Value = serde_json::from_str(&text).expect("cases.json is JSON");
    all[kind]
        .as_array()
        .unwrap_or_else(|| panic!("cases.json has a list \"{kind}\""))
        .clone()
}

fn read(name: &str, part: &str) -> Tensor {
    let path = dir().join(format!("{name}.{part}.npy"));
    io::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().expect("pair is a list");
    (
        a[0].as_u64().expect("int") as usize,
        a[1].as_u64().expect("int") as usize,
    )
}

fn has_bias(c: &Value) -> bool {
    c["bias"].as_bool().expect("bias flag")
}

/// Every `conv2d_backward` case of tests/golden_grad/cases.json with its tensors.
fn load_grad_cases() -> Vec<GradCase> {
    cases_json("conv2d_backward")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
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
            let bias = has_bias(c);
            GradCase {
                input: read(&name, "input"),
                weight: read(&name, "weight"),
                bias: bias.then(|| read(&name, "bias")),
                params,
                grad_output: read(&name, "grad_output"),
                grad_input: read(&name, "grad_input"),
                grad_weight: read(&name, "grad_weight"),
                grad_bias: bias.then(|| read(&name, "grad_bias")),
                name,
            }
        })
        .collect()
}

/// Every `conv_transpose2d` case of tests/golden_grad/cases.json with its tensors.
fn load_transpose_cases() -> Vec<TransposeCase> {
    cases_json("conv_transpose2d")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_string();
            let params = ConvTranspose2dParams {
                stride: pair(&c["stride"]),
                padding: pair(&c["padding"]),
                output_padding: pair(&c["output_padding"]),
                dilation: pair(&c["dilation"]),
                groups: c["groups"].as_u64().expect("groups") as usize,
            };
            TransposeCase {
                input: read(&name, "input"),
                weight: read(&name, "weight"),
                bias: has_bias(c).then(|| read(&name, "bias")),
                output: read(&name, "output"),
                params,
                name,
            }
        })
        .collect()
}

/// The same tensor with every element replaced by its absolute value.
fn abs(t: &Tensor) -> Tensor {
    Tensor::new(t.shape(), t.data().iter().map(|v| v.abs()).collect()).expect("same shape")
}

/// Checks the f64 reference `got` against PyTorch's `want` element by element:
/// `|got - want| <= eps32 * |want| + terms * eps64 * magnitude + f32::MIN_POSITIVE`.
///
/// Why: `want` is PyTorch's f64 result rounded once to f32, at most half an f32 ulp
/// (`eps32/2 * |want|`, to first order) from its f64 value. Both f64 results are sums of at most
/// `terms` products of the same f32 numbers (products exact in f64 for f32 factors, in any
/// summation order) and each lies within `terms * eps64/2 * magnitude` of the exact sum, where
/// `magnitude` is the sum of the terms' absolute values (the same computation on `|data|`). The
/// bound is twice the sum of these, so it fails only on a real difference; a wrong index
/// misses by a whole term, of the order of the data, far above it. `MIN_POSITIVE` covers the
/// subnormal range, where an f32 ulp is absolute. Elements that no term reaches (rows a stride
/// skips) must be exactly zero on both sides.
fn check_close(context: &str, got: &[f64], want: &Tensor, magnitude: &[f64], terms: usize) {
    assert_eq!(got.len(), want.len(), "{context}: element count");
    assert_eq!(magnitude.len(), want.len(), "{context}: magnitude count");
    let (eps32, eps64) = (f64::from(f32::EPSILON), f64::EPSILON);
    let mut worst_rel = 0.0f64;
    let mut first_bad = None;
    for (i, ((&g, &w), &m)) in got.iter().zip(want.data()).zip(magnitude).enumerate() {
        let w = f64::from(w);
        let tol = eps32 * w.abs() + terms as f64 * eps64 * m + f64::from(f32::MIN_POSITIVE);
        let diff = (g - w).abs();
        worst_rel = worst_rel.max(diff / w.abs().max(f64::from(f32::MIN_POSITIVE)));
        let within = diff <= tol; // false for NaN
        if !within && first_bad.is_none() {
            first_bad = Some((i, g, w, diff, tol));
        }
    }
    if let Some((i, g, w, diff, tol)) = first_bad {
        // The flat index as a multi-index of the golden's shape.
        let mut index = vec![0; want.shape().len()];
        let mut rest = i;
        for (k, &d) in want.shape().iter().enumerate().rev() {
            index[k] = rest % d;
            rest /= d;
        }
        panic!(
            "{context}: first bad element at {index:?} (flat {i}) of {:?}: reference {g:e}, \
             PyTorch {w:e}, |diff| {diff:e} > tolerance {tol:e}; worst relative error {worst_rel:e}",
            want.shape()
        );
    }
}

#[test]
fn golden_gradient_set_is_large_and_varied() {
    let cases = load_grad_cases();
    assert!(cases.len() >= 30, "only {} gradient cases", cases.len());
    let any = |f: &dyn Fn(&GradCase) -> bool| cases.iter().any(f);
    assert!(any(&|c| c.weight.shape()[2..] == [1, 1]));
    assert!(any(&|c| c.weight.shape()[2] % 2 == 0));
    assert!(any(&|c| c.weight.shape()[2] != c.weight.shape()[3]));
    assert!(any(&|c| c.params.stride.0 >= 2) && any(&|c| c.params.stride.0 == 3));
    assert!(any(
        &|c| matches!(c.params.padding, Padding::Explicit { top, bottom, .. } if top != bottom)
    ));
    assert!(any(&|c| c.params.padding == Padding::Same));
    assert!(any(&|c| c.params.padding == Padding::Valid));
    assert!(any(&|c| c.params.dilation.0 == 2) && any(&|c| c.params.dilation.0 == 3));
    assert!(any(
        &|c| c.params.groups > 1 && c.params.groups < c.input.shape()[1]
    ));
    // Depthwise with a channel multiplier: one input channel per group, several outputs.
    assert!(any(
        &|c| c.params.groups == c.input.shape()[1] && c.weight.shape()[0] > c.params.groups
    ));
    assert!(any(&|c| c.input.shape()[0] > 1));
    assert!(any(&|c| c.bias.is_none()) && any(&|c| c.bias.is_some()));
    assert!(any(
        &|c| c.input.shape()[2..] == [6, 8] && c.weight.shape()[2..] == [1, 2]
    ));
    for c in &cases {
        assert_eq!(c.bias.is_some(), c.grad_bias.is_some(), "{}", c.name);
    }
}

#[test]
fn golden_transpose_set_is_large_and_varied() {
    let cases = load_transpose_cases();
    assert!(cases.len() >= 10, "only {} transposed cases", cases.len());
    let any = |f: &dyn Fn(&TransposeCase) -> bool| cases.iter().any(f);
    let p = |c: &TransposeCase| c.params;
    assert!(any(&|c| p(c).stride.0 > 1));
    assert!(any(&|c| p(c).padding.0 > 0));
    assert!(any(
        &|c| p(c).output_padding.0 > 0 && p(c).output_padding.0 < p(c).stride.0
    ));
    // Output padding at or above the stride, allowed because it is below the dilation.
    assert!(any(
        &|c| p(c).output_padding.0 >= p(c).stride.0 && p(c).output_padding.0 < p(c).dilation.0
    ));
    assert!(any(&|c| p(c).dilation.0 > 1));
    assert!(any(&|c| p(c).groups > 1));
    assert!(any(&|c| c.bias.is_none()) && any(&|c| c.bias.is_some()));
}

#[test]
fn cpu_backward_reference_matches_pytorch_gradients() {
    for case in load_grad_cases() {
        let grads = conv2d_backward_f64(&case.input, &case.weight, &case.grad_output, &case.params)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // The same sums over |data|: the size of the terms each gradient element adds up.
        let magnitude = conv2d_backward_f64(
            &abs(&case.input),
            &abs(&case.weight),
            &abs(&case.grad_output),
            &case.params,
        )
        .expect(&case.name);
        let s = grads.shape;
        assert_eq!(
            s.output_shape().as_slice(),
            case.grad_output.shape(),
            "{}",
            case.name
        );
        // Terms per element: (o, i, j) for the input (each reaches an input element from at most
        // one (p, q)), (n, p, q) for the weight and the bias.
        let input_terms = s.out_channels_per_group() * s.kernel_h * s.kernel_w;
        let weight_terms = s.batch * s.out_h * s.out_w;
        let name = &case.name;
        check_close(
            &format!("{name}: grad_input"),
            &grads.input,
            &case.grad_input,
            &magnitude.input,
            input_terms,
        );
        check_close(
            &format!("{name}: grad_weight"),
            &grads.weight,
            &case.grad_weight,
            &magnitude.weight,
            weight_terms,
        );
        if let Some(grad_bias) = &case.grad_bias {
            check_close(
                &format!("{name}: grad_bias"),
                &grads.bias,
                grad_bias,
                &magnitude.bias,
                weight_terms,
            );
        }
    }
}

#[test]
fn cpu_transposed_reference_matches_pytorch() {
    for case in load_transpose_cases() {
        let (s, got) =
            conv_transpose2d_f64(&case.input, &case.weight, case.bias.as_ref(), &case.params)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            s.output_shape().as_slice(),
            case.output.shape(),
            "{}: output shape",
            case.name
        );
        let (_, magnitude) = conv_transpose2d_f64(
            &abs(&case.input),
            &abs(&case.weight),
            case.bias.as_ref().map(abs).as_ref(),
            &case.params,
        )
        .expect(&case.name);
        // Terms per output element: (ci in its group, i, j), plus the bias.
        let terms = s.in_channels / s.groups * s.kernel_h * s.kernel_w + 1;
        check_close(&case.name, &got, &case.output, &magnitude, terms);
    }
}

/// A GPU result against a golden: the forward tolerance of tests/common/mod.rs with the sum's
/// length `k` and its factors' largest magnitudes (the golden is exact to half an f32 ulp, far
/// inside it).
fn check_gpu(context: &str, got: &Tensor, want: &Tensor, k: usize, max_a: f64, max_b: f64) {
    assert_eq!(got.shape(), want.shape(), "{context}: shape");
    let want64: Vec<f64> = want.data().iter().map(|&v| f64::from(v)).collect();
    let shape = match *got.shape() {
        [n, c, h, w] => [n, c, h, w],
        [o] => [1, o, 1, 1],
        ref other => panic!("{context}: unexpected rank {other:?}"),
    };
    common::compare(
        context,
        shape,
        got.data(),
        &want64,
        common::tolerance(k, max_a, max_b, 0.0),
    )
    .unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn gpu_gradients_match_pytorch() {
    let engine = common::engine();
    for case in load_grad_cases() {
        let ctx = |what: &str| format!("{} ({}), {what}", case.name, engine.adapter());
        let s = Conv2dShape::new(case.input.shape(), case.weight.shape(), None, &case.params)
            .expect(&case.name);
        let (x, w, gy) = (
            engine.upload(&case.input).unwrap(),
            engine.upload(&case.weight).unwrap(),
            engine.upload(&case.grad_output).unwrap(),
        );
        let grads = engine
            .conv2d_backward(&x, &w, &gy, &case.params, case.bias.is_some())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let (mx, mw, mg) = (
            common::max_abs(&case.input),
            common::max_abs(&case.weight),
            common::max_abs(&case.grad_output),
        );
        let rows = s.batch * s.out_h * s.out_w;
        let og_taps = s.out_channels_per_group() * s.kernel_h * s.kernel_w;
        check_gpu(
            &ctx("grad input"),
            &engine.download(&grads.input).unwrap(),
            &case.grad_input,
            og_taps,
            mg,
            mw,
        );
        check_gpu(
            &ctx("grad weight"),
            &engine.download(&grads.weight).unwrap(),
            &case.grad_weight,
            rows,
            mg,
            mx,
        );
        match (&grads.bias, &case.grad_bias) {
            (Some(got), Some(want)) => check_gpu(
                &ctx("grad bias"),
                &engine.download(got).unwrap(),
                want,
                rows,
                mg,
                1.0,
            ),
            (None, None) => {}
            _ => panic!("{}: bias gradient presence differs", case.name),
        }
    }
}

#[test]
fn gpu_transposed_convolution_matches_pytorch() {
    let engine = common::engine();
    for case in load_transpose_cases() {
        let got = engine
            .conv_transpose2d(&case.input, &case.weight, case.bias.as_ref(), &case.params)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let [ci, _, kh, kw] = *case.weight.shape() else {
            panic!("{}: weight rank", case.name)
        };
        let ci_per_group = ci / case.params.groups;
        check_gpu(
            &format!("{} ({})", case.name, engine.adapter()),
            &got,
            &case.output,
            ci_per_group * kh * kw + 1,
            common::max_abs(&case.input),
            common::max_abs(&case.weight) + case.bias.as_ref().map_or(0.0, common::max_abs),
        );
    }
}
