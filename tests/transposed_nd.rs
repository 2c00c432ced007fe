//! conv_transpose1d and conv_transpose3d: PyTorch's golden files (tests/golden_transposed_nd,
//! made by its generate.py) on the reference and the GPU, random configurations on the GPU
//! against the f64 reference (output paddings past the stride included), the adjoint identity
//! with the forward convolution, unbatched inputs, and PyTorch's errors word for word.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every seed by N.

mod common;

use std::path::{Path, PathBuf};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use wgconv::cpu::reference;
use wgconv::{io, ConvNdParams, ConvTransposeNdParams, ConvTransposeNdShape, Error, Tensor};

use common::{compare, engine, log_uniform, max_abs, random_tensor, rng, seed_offset, tolerance};

/// Random configurations per rank and run.
const CONFIGS: usize = 160;

/// Upper bound on multiply-adds per configuration.
const MAX_MACS: usize = 150_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_transposed_nd")
}

fn numbers(v: &Value) -> Vec<usize> {
    let list = v.as_array().expect("a list");
    list.iter()
        .map(|n| n.as_u64().expect("an integer") as usize)
        .collect()
}

/// The GPU result of `params` through the host API and the GPU-tensor API (which must agree
/// bit for bit), for ranks 1 and 3.
fn gpu<const N: usize>(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    params: &ConvTransposeNdParams<N>,
) -> wgconv::Result<Tensor> {
    let e = engine();
    let p = |v: &ConvTransposeNdParams<N>| -> ConvTransposeNdParams<3> {
        ConvTransposeNdParams {
            stride: std::array::from_fn(|a| v.stride[a]),
            padding: std::array::from_fn(|a| v.padding[a]),
            output_padding: std::array::from_fn(|a| v.output_padding[a]),
            dilation: std::array::from_fn(|a| v.dilation[a]),
            groups: v.groups,
        }
    };
    let one = |v: &ConvTransposeNdParams<N>| -> ConvTransposeNdParams<1> {
        ConvTransposeNdParams {
            stride: [v.stride[0]],
            padding: [v.padding[0]],
            output_padding: [v.output_padding[0]],
            dilation: [v.dilation[0]],
            groups: v.groups,
        }
    };
    let (gx, gw) = (e.upload(x)?, e.upload(w)?);
    let gb = b.map(|b| e.upload(b)).transpose()?;
    let (host, device) = if N == 1 {
        let p = one(params);
        let host = e.conv_transpose1d(x, w, b, &p)?;
        (host, e.conv_transpose1d_gpu(&gx, &gw, gb.as_ref(), &p)?)
    } else {
        let p = p(params);
        let host = e.conv_transpose3d(x, w, b, &p)?;
        (host, e.conv_transpose3d_gpu(&gx, &gw, gb.as_ref(), &p)?)
    };
    assert_eq!(
        e.download(&device)?,
        host,
        "host and GPU-tensor calls differ"
    );
    Ok(host)
}

/// The derived tolerance for a transposed output: each element sums at most
/// `Ci/groups * prod(kernel)` products.
fn transposed_tolerance(x: &Tensor, w: &Tensor, b: Option<&Tensor>, groups: usize) -> f64 {
    let k = w.shape()[0] / groups * w.shape()[2..].iter().product::<usize>();
    tolerance(k, max_abs(x), max_abs(w), b.map_or(0.0, max_abs))
}

fn view4(shape: &[usize]) -> [usize; 4] {
    let rest: usize = shape[2..].iter().product();
    [shape[0], shape[1], 1, rest]
}

#[test]
fn pytorch_goldens_match_on_the_reference_and_the_gpu() {
    fn check<const N: usize>(c: &Value, name: &str) {
        let file = |part: &str| {
            io::read_npy(dir().join(format!("{name}.{part}.npy"))).expect("golden .npy reads")
        };
        let axes = |key: &str| -> [usize; N] { numbers(&c[key]).try_into().expect("per axis") };
        let params = ConvTransposeNdParams::<N> {
            stride: axes("stride"),
            padding: axes("padding"),
            output_padding: axes("output_padding"),
            dilation: axes("dilation"),
            groups: c["groups"].as_u64().expect("groups") as usize,
        };
        let (x, w, y) = (file("input"), file("weight"), file("output"));
        let b = c["bias"].as_bool().expect("bias").then(|| file("bias"));
        assert_eq!(y.shape(), numbers(&c["output_shape"]), "{name}");
        let (s, got) = reference::conv_transpose_nd_f64(&x, &w, b.as_ref(), &params).expect(name);
        assert_eq!(s.output_shape(), y.shape(), "{name}");
        // The reference in f64 against PyTorch's f64 rounded to f32: one rounding apart.
        for (i, (&g, &want)) in got.iter().zip(y.data()).enumerate() {
            let tol = f64::from(f32::EPSILON) * f64::from(want.abs()) + 1e-30;
            assert!(
                (g - f64::from(want)).abs() <= tol,
                "{name}: element {i}: {g} vs {want}"
            );
        }
        let out = gpu(&x, &w, b.as_ref(), &params).expect(name);
        let tol = transposed_tolerance(&x, &w, b.as_ref(), params.groups)
            + f64::from(f32::EPSILON) * max_abs(&y);
        let shape = if s.unbatched {
            [&[1][..], y.shape()].concat()
        } else {
            y.shape().to_vec()
        };
        let want: Vec<f64> = y.data().iter().map(|&v| f64::from(v)).collect();
        compare(name, view4(&shape), out.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));
    }
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("a JSON list");
    let mut ran = [0usize; 2];
    for c in &cases {
        let name = c["name"].as_str().expect("name");
        if c["dims"].as_u64() == Some(1) {
            check::<1>(c, name);
            ran[0] += 1;
        } else {
            check::<3>(c, name);
            ran[1] += 1;
        }
    }
    assert!(ran[0] >= 10 && ran[1] >= 10, "cases (1d, 3d): {ran:?}");
}

/// One random transposed problem over `N` axes with at most `max_macs` multiply-adds: batch 1-3
/// or unbatched, groups incl. depthwise, kernels 1-5 (1-3 in 3D), stride 1-3, dilation 1-3,
/// padding, output padding below the stride or the dilation, with or without bias.
fn random_config<const N: usize>(
    rng: &mut ChaCha8Rng,
    max_macs: usize,
) -> (Vec<usize>, Vec<usize>, bool, ConvTransposeNdParams<N>) {
    loop {
        let groups = *[1, 1, 2, 3].get(rng.random_range(0..4)).unwrap();
        let ci = groups * log_uniform(rng, 1, 8);
        let co = groups * log_uniform(rng, 1, 8);
        let max_k = if N == 1 { 5 } else { 3 };
        let kernel: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=max_k));
        let stride: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=3));
        let dilation: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=3));
        let output_padding: [usize; N] = std::array::from_fn(|a| {
            let limit = stride[a].max(dilation[a]);
            rng.random_range(0..limit)
        });
        let padding: [usize; N] = std::array::from_fn(|_| rng.random_range(0..=2));
        let max_len = if N == 1 { 40 } else { 6 };
        let spatial: [usize; N] = std::array::from_fn(|_| rng.random_range(1..=max_len));
        let mut input = vec![ci];
        input.extend(spatial);
        if !rng.random_bool(0.15) {
            input.insert(0, rng.random_range(1..=3));
        }
        let mut weight = vec![ci, co / groups];
        weight.extend(kernel);
        let params = ConvTransposeNdParams {
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        };
        let bias = rng.random_bool(0.5);
        let Ok(shape) =
            ConvTransposeNdShape::new(&input, &weight, bias.then_some(&[co][..]), &params)
        else {
            continue;
        };
        if shape.flops() / 2 <= max_macs as u64 {
            return (input, weight, bias, params);
        }
    }
}

fn check_random<const N: usize>(seed: u64) -> usize {
    let mut rng = rng(seed);
    let mut past_stride = 0;
    for case in 0..CONFIGS {
        let (input, weight, bias, params) = random_config::<N>(&mut rng, MAX_MACS);
        let context = format!(
            "case {case}: conv_transpose{N}d input {input:?} weight {weight:?} bias {bias} \
             {params:?}; reproduce with WGCONV_TEST_SEED={}",
            seed_offset()
        );
        past_stride += usize::from((0..N).any(|a| params.output_padding[a] >= params.stride[a]));
        let x = random_tensor(&mut rng, &input);
        let w = random_tensor(&mut rng, &weight);
        let b = bias.then(|| random_tensor(&mut rng, &[weight[1] * params.groups]));
        let (s, want) =
            reference::conv_transpose_nd_f64(&x, &w, b.as_ref(), &params).expect(&context);
        let got = gpu(&x, &w, b.as_ref(), &params).expect(&context);
        assert_eq!(got.shape(), s.output_shape(), "{context}");
        let tol = transposed_tolerance(&x, &w, b.as_ref(), params.groups);
        let mut batched = s.output_shape();
        if s.unbatched {
            batched.insert(0, 1);
        }
        compare(&context, view4(&batched), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
    }
    past_stride
}

#[test]
fn random_conv_transpose1d_configs_match_the_reference() {
    let past_stride = check_random::<1>(0x7a1d_0001);
    assert!(
        past_stride >= 10,
        "{past_stride} output paddings past the stride"
    );
}

#[test]
fn random_conv_transpose3d_configs_match_the_reference() {
    let past_stride = check_random::<3>(0x7a3d_0001);
    assert!(
        past_stride >= 10,
        "{past_stride} output paddings past the stride"
    );
}

/// `<conv(x), y> = <x, conv_transpose(y)>`: the transposed convolution is the adjoint of the
/// forward one with the same weight, stride, padding, dilation and groups (the output padding
/// picks the forward input's length), checked on the reference in f64.
#[test]
fn the_transposed_convolution_is_the_adjoint_of_the_convolution() {
    fn check<const N: usize>(rng: &mut ChaCha8Rng) {
        let mut checked = 0;
        for case in 0..30 {
            let (input, weight, _, params) = random_config::<N>(rng, 20_000);
            let t = ConvTransposeNdShape::new(&input, &weight, None, &params).unwrap();
            let y = random_tensor(rng, &input);
            let w = random_tensor(rng, &weight);
            let x = random_tensor(rng, &t.output_shape());
            let forward = ConvNdParams::<N> {
                stride: params.stride,
                padding: wgconv::PaddingNd::Explicit(params.padding.map(|p| [p, p])),
                dilation: params.dilation,
                groups: params.groups,
                ..ConvNdParams::default()
            };
            let (s, cx) = reference::conv_nd_f64(&x, &w, None, &forward).unwrap();
            // An output padding past the stride gives the forward convolution more outputs
            // than the transposed one has inputs: that pair is not each other's adjoint.
            if s.output_shape() != input {
                continue;
            }
            let (_, ty) = reference::conv_transpose_nd_f64(&y, &w, None, &params).unwrap();
            let dot = |a: &[f64], b: &Tensor| -> f64 {
                a.iter().zip(b.data()).map(|(a, &b)| a * f64::from(b)).sum()
            };
            let (left, right) = (dot(&cx, &y), dot(&ty, &x));
            assert!(
                (left - right).abs() <= 1e-9 * left.abs().max(1.0),
                "conv{N}d case {case}: {left} vs {right}"
            );
            checked += 1;
        }
        assert!(checked >= 15, "conv{N}d: {checked} adjoint pairs");
    }
    let mut rng = rng(0x7a0_0003);
    check::<1>(&mut rng);
    check::<3>(&mut rng);
}

#[test]
fn unbatched_transposed_inputs_are_the_batch_of_one_without_its_batch_axis() {
    let e = engine();
    let mut rng = rng(0x7a0_0004);
    let (x, w) = (
        random_tensor(&mut rng, &[3, 2, 4, 3]),
        random_tensor(&mut rng, &[3, 2, 2, 3, 2]),
    );
    let p = ConvTransposeNdParams::<3>::default()
        .with_stride(2)
        .with_padding([0, 1, 0]);
    let y = e.conv_transpose3d(&x, &w, None, &p).unwrap();
    let x4 = Tensor::new([1, 3, 2, 4, 3], x.data().to_vec()).unwrap();
    let y4 = e.conv_transpose3d(&x4, &w, None, &p).unwrap();
    assert_eq!(y.shape(), &y4.shape()[1..]);
    assert_eq!(y.data(), y4.data());
    let (x, w) = (
        random_tensor(&mut rng, &[4, 9]),
        random_tensor(&mut rng, &[4, 1, 3]),
    );
    let p = ConvTransposeNdParams::<1>::default()
        .with_groups(2)
        .with_stride(3);
    let y = e.conv_transpose1d(&x, &w, None, &p).unwrap();
    assert_eq!(y.shape(), [2, 27]);
    let y3 = e
        .conv_transpose1d(
            &Tensor::new([1, 4, 9], x.data().to_vec()).unwrap(),
            &w,
            None,
            &p,
        )
        .unwrap();
    assert_eq!(y.data(), y3.data());
}

#[test]
fn bad_transposed_problems_get_pytorchs_errors() {
    let e = engine();
    let z = |shape: &[usize]| Tensor::full(shape.to_vec(), 0.0).unwrap();
    let one = |x: &[usize], w: &[usize], b: Option<&[usize]>, p: ConvTransposeNdParams<1>| {
        let b = b.map(z);
        let want = e
            .conv_transpose1d(&z(x), &z(w), b.as_ref(), &p)
            .unwrap_err();
        let r = reference::conv_transpose_nd(&z(x), &z(w), b.as_ref(), &p).unwrap_err();
        assert_eq!(want.to_string(), r.to_string());
        want
    };
    let three = |x: &[usize], w: &[usize], b: Option<&[usize]>, p: ConvTransposeNdParams<3>| {
        let b = b.map(z);
        e.conv_transpose3d(&z(x), &z(w), b.as_ref(), &p)
            .unwrap_err()
    };
    let d1 = ConvTransposeNdParams::<1>::default();
    let d3 = ConvTransposeNdParams::<3>::default();
    // Messages as PyTorch 2.15 words them (a conv_transpose1d's as the 2D problem it runs as).
    let cases: Vec<(Error, &str)> =
        vec![
        (
            one(&[1, 2, 5], &[2, 3, 3], None, d1.with_output_padding(1)),
            "output padding must be smaller than either stride or dilation, but got \
             output_padding_height: 0 output_padding_width: 1 stride_height: 1 stride_width: 1 \
             dilation_height: 1 dilation_width: 1",
        ),
        (
            one(&[1, 2, 5], &[2, 3, 3], None, d1.with_padding(4)),
            "Given input size per channel: (1 x 5). Calculated output size per channel: \
             (1 x -1). Output size is too small",
        ),
        (
            one(&[2, 5, 5, 1], &[2, 3, 3], None, d1),
            "Expected 2D (unbatched) or 3D (batched) input to conv_transpose1d, but got input \
             of size: [2, 5, 5, 1]",
        ),
        (
            one(&[1, 3, 5], &[2, 3, 3], None, d1),
            "Given transposed=1, weight of size [2, 3, 3], expected input[1, 3, 5] to have 2 \
             channels, but got 3 channels instead",
        ),
        (
            one(&[1, 2, 5], &[2, 3, 3], Some(&[4]), d1),
            "Given transposed=1, weight of size [2, 3, 3], expected bias to be 1-dimensional \
             with 3 elements, but got bias of size [4] instead",
        ),
        (
            three(&[1, 2, 4, 4, 4], &[2, 3, 3, 3, 3], None, d3.with_output_padding(1)),
            "output padding must be smaller than either stride or dilation, but got \
             output_padding_depth: 1 output_padding_height: 1 output_padding_width: 1 \
             stride_depth: 1 stride_height: 1 stride_width: 1 dilation_depth: 1 \
             dilation_height: 1 dilation_width: 1",
        ),
        (
            three(&[1, 2, 4, 4, 4], &[2, 3, 3, 3, 3], None, d3.with_padding([3, 0, 0])),
            "Given input size per channel: (4 x 4 x 4). Calculated output size per channel: \
             (0 x 6 x 6). Output size is too small",
        ),
        (
            three(&[1, 2, 4, 4], &[2, 3, 3, 3, 3], None, d3),
            "Given transposed=1, weight of size [2, 3, 3, 3, 3], expected input[1, 1, 2, 4, 4] \
             to have 2 channels, but got 1 channels instead",
        ),
        (
            three(&[1, 2, 4, 4, 4], &[2, 3, 3, 3, 3], Some(&[4]), d3),
            "Given transposed=1, weight of size [2, 3, 3, 3, 3], expected bias to be \
             1-dimensional with 3 elements, but got bias of size [4] instead",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
    assert!(matches!(
        three(&[1, 2, 4, 4, 4], &[2, 3, 3, 3], None, d3),
        Error::WeightRank { .. }
    ));
    assert!(matches!(
        one(&[1, 2, 5], &[2, 3, 3], None, d1.with_stride(0)),
        Error::NonPositive { .. }
    ));
}

/// On a device whose bindings hold 16384 values, a conv_transpose3d whose folded tensors do not
/// fit runs over pieces of whole 3D images of its batch and matches the reference; one image too
/// large is refused with the binding limit named.
#[test]
fn a_conv_transpose3d_past_the_binding_limit_is_split_over_its_batch() {
    let small = common::small_binding_engine(65536);
    let mut rng = rng(0x7a0_0005);
    // Output [2, 3, 4, 16, 16]; folded, the convolution it transposes has an input of
    // 2*4 images of 9*16*16 values: 18432, past 16384.
    let x = random_tensor(&mut rng, &[2, 2, 4, 16, 16]);
    let w = random_tensor(&mut rng, &[2, 3, 3, 3, 3]);
    let b = random_tensor(&mut rng, &[3]);
    let p = ConvTransposeNdParams::<3>::default().with_padding(1);
    let (s, want) = reference::conv_transpose_nd_f64(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(s.output_shape(), [2, 3, 4, 16, 16]);
    let got = small.conv_transpose3d(&x, &w, Some(&b), &p).unwrap();
    let tol = transposed_tolerance(&x, &w, Some(&b), 1);
    compare(
        "split conv_transpose3d",
        view4(got.shape()),
        got.data(),
        &want,
        tol,
    )
    .unwrap_or_else(|m| panic!("{m}"));
    // One image of 1*16*... folded past a binding: 8 depths of 9*24*24 values.
    let x = random_tensor(&mut rng, &[1, 2, 8, 24, 24]);
    let e = small.conv_transpose3d(&x, &w, None, &p).unwrap_err();
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
}
