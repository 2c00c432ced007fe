//! The browser test suite: the same checks as the native suite, compiled to wasm32 and run on
//! the browser's WebGPU in headless Chromium (`web/run-tests.sh`; in Chromium without a GPU the
//! adapter is SwiftShader). The lecture's examples, random configurations against the CPU
//! reference (itself compiled to wasm), the PyTorch golden files (embedded in the test binary),
//! backward passes, a problem split past small device limits, bad input, and the JavaScript API.
#![cfg(target_arch = "wasm32")]

#[path = "common/numeric.rs"]
mod numeric;

use js_sys::{Array, Float32Array, Object, Reflect};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wgconv::{cpu, web, Algorithm, Conv2dParams, Engine, EngineOptions, Error, Padding, Tensor};

use numeric::{compare, compare_grads, describe, epilogue_tolerance, max_abs, tolerance, Grads};

wasm_bindgen_test_configure!(run_in_browser);

/// An engine on the page's adapter; no adapter is a failure that says how to get one.
async fn engine_with(options: EngineOptions) -> Engine {
    match Engine::with_options_async(options).await {
        Ok(e) => {
            web_log(&format!("browser tests run on: {}", e.adapter()));
            e
        }
        Err(e) => panic!(
            "the browser tests need WebGPU and found no adapter: {e}\n\
             Run them with web/run-tests.sh (headless Chromium with --enable-unsafe-webgpu; \
             `apt-get install -y chromium chromium-driver`)."
        ),
    }
}

async fn engine() -> Engine {
    engine_with(EngineOptions::default()).await
}

fn web_log(message: &str) {
    wasm_bindgen_test::console_log!("{message}");
}

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), data).expect("a test tensor")
}

fn shape4(t: &Tensor) -> [usize; 4] {
    t.shape().try_into().expect("4D output")
}

/// `engine`'s output for the problem against the f64 reference, within the derived tolerance.
async fn check_against_reference(
    engine: &Engine,
    context: &str,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: &Conv2dParams,
) {
    let (shape, want) = cpu::reference::conv2d_f64(x, w, b, p).expect(context);
    let got = engine.conv2d_async(x, w, b, p).await.expect(context);
    assert_eq!(
        got.shape(),
        shape.output_shape().as_slice(),
        "{context}: shape"
    );
    let k = w.shape()[1..].iter().product();
    let tol = tolerance(k, max_abs(x), max_abs(w), b.map_or(0.0, max_abs));
    compare(context, shape.output_shape(), got.data(), &want, tol)
        .unwrap_or_else(|m| panic!("{m}"));
}

// ---- The lecture's examples (Dive into Deep Learning, convolutions) ----

#[wasm_bindgen_test]
async fn lecture_examples() {
    let engine = engine().await;
    // corr2d: X = 0..9 as 3x3, K = [[0, 1], [2, 3]].
    let x = t(&[1, 1, 3, 3], (0..9).map(|v| v as f32).collect());
    let k = t(&[1, 1, 2, 2], vec![0.0, 1.0, 2.0, 3.0]);
    let y = engine
        .conv2d_async(&x, &k, None, &Conv2dParams::default())
        .await
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[19.0, 25.0, 37.0, 43.0]);

    // Edge detection: ones with columns 2..6 zero, K = [[1, -1]].
    let x = t(
        &[1, 1, 6, 8],
        (0..48)
            .map(|i| if (2..6).contains(&(i % 8)) { 0.0 } else { 1.0 })
            .collect(),
    );
    let k = t(&[1, 1, 1, 2], vec![1.0, -1.0]);
    let y = engine
        .conv2d_async(&x, &k, None, &Conv2dParams::default())
        .await
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 6, 7]);
    for row in y.data().chunks(7) {
        assert_eq!(row, &[0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
    }

    // Padding and stride: 8x8 with a 3x3 kernel and padding 1 stays 8x8; stride 2 halves it.
    let x = t(&[1, 1, 8, 8], (0..64).map(|v| v as f32 / 64.0).collect());
    let k = t(&[1, 1, 3, 3], (0..9).map(|v| v as f32 - 4.0).collect());
    let p = Conv2dParams::default().with_padding(1);
    let y = engine.conv2d_async(&x, &k, None, &p).await.unwrap();
    assert_eq!(y.shape(), &[1, 1, 8, 8]);
    let y = engine
        .conv2d_async(&x, &k, None, &p.with_stride(2))
        .await
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);

    // Several input channels: two 3x3 channels, two 2x2 kernels -> [[56, 72], [104, 120]].
    let x = t(
        &[1, 2, 3, 3],
        (0..9).chain(1..10).map(|v| v as f32).collect(),
    );
    let k = t(&[1, 2, 2, 2], vec![0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0]);
    let y = engine
        .conv2d_async(&x, &k, None, &Conv2dParams::default())
        .await
        .unwrap();
    assert_eq!(y.data(), &[56.0, 72.0, 104.0, 120.0]);

    // 1x1 convolution = a fully connected layer over channels: Y[o, p] = sum_c K[o, c] X[c, p].
    let x = t(
        &[1, 3, 3, 3],
        (0..27).map(|v| (v % 7) as f32 - 3.0).collect(),
    );
    let k = t(&[2, 3, 1, 1], vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.0]);
    let y = engine
        .conv2d_async(&x, &k, None, &Conv2dParams::default())
        .await
        .unwrap();
    for o in 0..2 {
        for p in 0..9 {
            let want: f32 = (0..3)
                .map(|c| k.data()[o * 3 + c] * x.data()[c * 9 + p])
                .sum();
            assert_eq!(y.data()[o * 9 + p], want, "1x1: output {o}, pixel {p}");
        }
    }
}

// ---- Random configurations against the reference ----

/// splitmix64: a small seeded generator (the native suite's ChaCha is behind a feature the
/// browser build leaves out).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let len = shape.iter().product();
        t(shape, (0..len).map(|_| self.unit()).collect())
    }
}

struct Problem {
    x: Tensor,
    w: Tensor,
    b: Option<Tensor>,
    p: Conv2dParams,
}

impl Problem {
    fn describe(&self) -> String {
        describe(self.x.shape(), self.w.shape(), self.b.is_some(), &self.p)
    }
}

/// A random valid problem: groups (depthwise among them), kernels 1-5, strides 1-3, dilations
/// 1-2, every kind of padding, batch 1-2, with or without bias.
fn random_problem(rng: &mut Rng) -> Problem {
    loop {
        let groups = [1, 1, 1, 2, 3][rng.range(0, 4)];
        let depthwise = rng.range(0, 5) == 0;
        let (cg, og) = if depthwise {
            (1, rng.range(1, 2))
        } else {
            (rng.range(1, 6), rng.range(1, 6))
        };
        let groups = if depthwise { rng.range(1, 8) } else { groups };
        let (kh, kw) = (rng.range(1, 5), rng.range(1, 5));
        let dilation = (rng.range(1, 2), rng.range(1, 2));
        let stride = (rng.range(1, 3), rng.range(1, 3));
        let padding = match rng.range(0, 5) {
            0 => Padding::Same,
            1 => Padding::Valid,
            2 => Padding::uniform(rng.range(0, 2)),
            _ => Padding::explicit(
                rng.range(0, 2),
                rng.range(0, 2),
                rng.range(0, 3),
                rng.range(0, 1),
            ),
        };
        let p = Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
            ..wgconv::Conv2dParams::default()
        };
        let h = dilation.0 * (kh - 1) + 1 + rng.range(0, 12);
        let w = dilation.1 * (kw - 1) + 1 + rng.range(0, 12);
        let n = rng.range(1, 2);
        let input = [n, groups * cg, h, w];
        let weight = [groups * og, cg, kh, kw];
        if wgconv::Conv2dShape::new(&input, &weight, None, &p).is_err() {
            continue; // e.g. 'same' with a stride: PyTorch refuses it too
        }
        let bias = rng.range(0, 1) == 1;
        return Problem {
            x: rng.tensor(&input),
            w: rng.tensor(&weight),
            b: bias.then(|| rng.tensor(&[groups * og])),
            p,
        };
    }
}

/// 240 random problems: each through the one-shot call (the planner's kernel) and one named
/// algorithm in turn, forced, into an output that starts as NaN (a skipped element fails).
#[wasm_bindgen_test]
async fn random_configurations_match_the_reference() {
    let engine = engine().await;
    let mut rng = Rng(0x3eb_0001);
    let mut forced = 0;
    for case in 0..240 {
        let pr = random_problem(&mut rng);
        let context = format!("case {case}: {}", pr.describe());
        check_against_reference(&engine, &context, &pr.x, &pr.w, pr.b.as_ref(), &pr.p).await;

        let algorithm = Algorithm::NAMED[1 + case % (Algorithm::NAMED.len() - 1)];
        let (shape, want) = cpu::reference::conv2d_f64(&pr.x, &pr.w, pr.b.as_ref(), &pr.p).unwrap();
        let x = engine.upload(&pr.x).expect(&context);
        let w = engine.upload(&pr.w).expect(&context);
        let b = pr.b.as_ref().map(|b| engine.upload(b).expect(&context));
        let nan = Tensor::full(shape.output_shape().to_vec(), f32::NAN).unwrap();
        let mut out = engine.upload(&nan).expect(&context);
        match engine.conv2d_into_with(algorithm, &x, &w, b.as_ref(), &pr.p, &mut out) {
            Ok(()) => forced += 1,
            Err(Error::UnsupportedAlgorithm { .. }) => continue,
            Err(e) => panic!("{context}, {algorithm:?}: {e}"),
        }
        let got = engine.download_async(&out).await.expect(&context);
        let k = pr.w.shape()[1..].iter().product();
        let tol = tolerance(
            k,
            max_abs(&pr.x),
            max_abs(&pr.w),
            pr.b.as_ref().map_or(0.0, max_abs),
        );
        compare(
            &format!("{context}, {algorithm:?}"),
            shape.output_shape(),
            got.data(),
            &want,
            tol,
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
    assert!(
        forced >= 100,
        "only {forced} forced-kernel runs: the generator is too narrow"
    );
}

/// 66 random problems with a fused epilogue, every activation in turn and a residual on every
/// other one, the input scaled by 4 so the pre-activations pass the knees: the one-shot call and
/// one named algorithm in turn into a NaN output, against the f64 reference within
/// common::epilogue_tolerance.
#[wasm_bindgen_test]
async fn fused_epilogues_match_the_reference() {
    let engine = engine().await;
    let mut rng = Rng(0x3eb_0005);
    for case in 0..66 {
        let mut pr = random_problem(&mut rng);
        pr.p.activation = wgconv::Activation::ALL[case % wgconv::Activation::ALL.len()];
        pr.x = t(pr.x.shape(), pr.x.data().iter().map(|v| 4.0 * v).collect());
        let context = format!(
            "case {case}: {} activation {}",
            pr.describe(),
            pr.p.activation
        );
        let shape = wgconv::Conv2dShape::new(pr.x.shape(), pr.w.shape(), None, &pr.p).unwrap();
        let r = (case % 2 == 1).then(|| rng.tensor(&shape.output_shape()));
        let nd = wgconv::ConvNdParams::<2>::from(&pr.p);
        let (b, rr) = (pr.b.as_ref(), r.as_ref());
        let (_, want) = cpu::reference::conv_nd_fused_f64(&pr.x, &pr.w, b, rr, &nd).unwrap();
        let linear = wgconv::ConvNdParams {
            activation: wgconv::Activation::None,
            ..nd
        };
        let (_, pre) = cpu::reference::conv_nd_fused_f64(&pr.x, &pr.w, b, rr, &linear).unwrap();
        let max_pre = pre.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let k = pr.w.shape()[1..].iter().product();
        let conv = tolerance(k, max_abs(&pr.x), max_abs(&pr.w), b.map_or(0.0, max_abs));
        let tol = epilogue_tolerance(nd.activation, conv, max_pre, rr.map_or(0.0, max_abs));
        let got = engine
            .conv2d_fused_async(&pr.x, &pr.w, b, rr, &pr.p)
            .await
            .expect(&context);
        compare(&context, shape.output_shape(), got.data(), &want, tol)
            .unwrap_or_else(|m| panic!("{m}"));
        let algorithm = Algorithm::NAMED[1 + case % (Algorithm::NAMED.len() - 1)];
        let up = |t: &Tensor| engine.upload(t).expect(&context);
        let (x, w) = (up(&pr.x), up(&pr.w));
        let (gb, gr) = (b.map(up), rr.map(up));
        let mut out = up(&Tensor::full(shape.output_shape().to_vec(), f32::NAN).unwrap());
        match engine.conv2d_fused_into_with(
            algorithm,
            &x,
            &w,
            gb.as_ref(),
            gr.as_ref(),
            &pr.p,
            &mut out,
        ) {
            Ok(()) => {}
            Err(Error::UnsupportedAlgorithm { .. }) => continue,
            Err(e) => panic!("{context}, {algorithm:?}: {e}"),
        }
        let got = engine.download_async(&out).await.expect(&context);
        compare(
            &format!("{context}, {algorithm:?}"),
            shape.output_shape(),
            got.data(),
            &want,
            tol,
        )
        .unwrap_or_else(|m| panic!("{m}"));
    }
}

// ---- PyTorch's golden files, embedded ----

struct Golden {
    name: &'static str,
    input: &'static [u8],
    weight: &'static [u8],
    bias: Option<&'static [u8]>,
    output: &'static [u8],
}

/// `Golden` entries embedding `tests/golden/NAME.{input,weight,output}.npy`, and `NAME.bias.npy`
/// for a name marked `+ bias`.
macro_rules! golden {
    (@bias $name:literal bias) => {
        Some(include_bytes!(concat!("golden/", $name, ".bias.npy")))
    };
    (@bias $name:literal) => {
        None
    };
    ($($name:literal $(+ $bias:ident)?),* $(,)?) => {
        &[$(Golden {
            name: $name,
            input: include_bytes!(concat!("golden/", $name, ".input.npy")),
            weight: include_bytes!(concat!("golden/", $name, ".weight.npy")),
            bias: golden!(@bias $name $($bias)?),
            output: include_bytes!(concat!("golden/", $name, ".output.npy")),
        }),*]
    };
}

/// tests/golden (made by tests/golden/generate.py), every case of cases.json.
const GOLDEN: &[Golden] = golden![
    "basic_1x1ch_k3",
    "basic_k3_bias" + bias,
    "batch2_k3_pad1" + bias,
    "batch4_k3_s2_pad1_bias" + bias,
    "batch3_k5_nobias",
    "pointwise_k1" + bias,
    "pointwise_k1_s2",
    "k2x2_s2" + bias,
    "k2x3_pad_1_0",
    "k4x1_s1" + bias,
    "k5x3_pad_2_1" + bias,
    "k7x7_s2_pad3" + bias,
    "k3_s3" + bias,
    "k3_s2x3_pad1" + bias,
    "k3_pad_asym_0_2_1_0" + bias,
    "k2x3_s2_pad_asym_1_0_2_1_bias" + bias,
    "same_k3" + bias,
    "same_k4x2_even" + bias,
    "same_k2x2_even_nobias",
    "same_k3_d2" + bias,
    "same_k4x2_d2x3" + bias,
    "valid_k3" + bias,
    "dil2_k3" + bias,
    "dil3_k3_pad3_s2" + bias,
    "dil_1x2_k3" + bias,
    "groups2_k3" + bias,
    "groups4_k3_s2_nobias",
    "depthwise_k3_pad1" + bias,
    "depthwise_mult2_k3_s2_bias" + bias,
    "depthwise_k5_same",
    "input_1x1_k1" + bias,
    "input_1x1_k3_pad1" + bias,
    "input_1xW_k1x3" + bias,
    "input_1xW_k3_pad1_s2" + bias,
    "output_1x1_k5" + bias,
    "nonsquare_input_3x17_k3" + bias,
    "cin64_k3" + bias,
    "cin64_k1_cout32",
    "large_mag_x100_k3" + bias,
    "small_mag_1e-3_k3" + bias,
];

/// A little-endian float32 C-order `.npy` file (what generate.py writes).
fn npy(bytes: &[u8], what: &str) -> Tensor {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{what}: not an .npy file");
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).expect("an ASCII header");
    assert!(
        header.contains("'descr': '<f4'"),
        "{what}: not float32: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{what}: not C order: {header}"
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("a shape");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a dimension"))
        .collect();
    let data = bytes[start + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    t(&shape, data)
}

fn pair(v: &serde_json::Value) -> (usize, usize) {
    (
        v[0].as_u64().unwrap() as usize,
        v[1].as_u64().unwrap() as usize,
    )
}

#[wasm_bindgen_test]
async fn pytorch_golden_files_on_every_kernel() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("golden/cases.json")).expect("cases.json");
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let embedded: Vec<&str> = GOLDEN.iter().map(|g| g.name).collect();
    assert_eq!(
        names, embedded,
        "tests/web.rs must embed every case of tests/golden/cases.json"
    );
    let engine = engine().await;
    for (case, g) in cases.iter().zip(GOLDEN) {
        let padding = match &case["padding"] {
            serde_json::Value::String(s) if s == "same" => Padding::Same,
            serde_json::Value::String(s) if s == "valid" => Padding::Valid,
            v => Padding::explicit(
                v[0].as_u64().unwrap() as usize,
                v[1].as_u64().unwrap() as usize,
                v[2].as_u64().unwrap() as usize,
                v[3].as_u64().unwrap() as usize,
            ),
        };
        let p = Conv2dParams {
            stride: pair(&case["stride"]),
            padding,
            dilation: pair(&case["dilation"]),
            groups: case["groups"].as_u64().unwrap() as usize,
            ..wgconv::Conv2dParams::default()
        };
        let (x, w, y) = (
            npy(g.input, g.name),
            npy(g.weight, g.name),
            npy(g.output, g.name),
        );
        let b = g.bias.map(|b| npy(b, g.name));
        let k = w.shape()[1..].iter().product();
        // Golden values are themselves rounded to f32: that rounding on top (as natively).
        let tol = tolerance(k, max_abs(&x), max_abs(&w), b.as_ref().map_or(0.0, max_abs))
            + f64::from(f32::EPSILON) * max_abs(&y);
        let want: Vec<f64> = y.data().iter().map(|&v| f64::from(v)).collect();
        let got = engine
            .conv2d_async(&x, &w, b.as_ref(), &p)
            .await
            .expect(g.name);
        assert_eq!(got.shape(), y.shape(), "{}: output shape", g.name);
        compare(g.name, shape4(&y), got.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));

        let (gx, gw) = (engine.upload(&x).unwrap(), engine.upload(&w).unwrap());
        let gb = b.as_ref().map(|b| engine.upload(b).unwrap());
        let nan = Tensor::full(y.shape().to_vec(), f32::NAN).unwrap();
        for algorithm in Algorithm::NAMED.into_iter().skip(1) {
            let mut out = engine.upload(&nan).unwrap();
            match engine.conv2d_into_with(algorithm, &gx, &gw, gb.as_ref(), &p, &mut out) {
                Ok(()) => {}
                Err(Error::UnsupportedAlgorithm { .. }) if algorithm != Algorithm::Direct => {
                    continue
                }
                Err(e) => panic!("{}, {algorithm:?}: {e}", g.name),
            }
            let got = engine.download_async(&out).await.expect(g.name);
            compare(
                &format!("{}, {algorithm:?}", g.name),
                shape4(&y),
                got.data(),
                &want,
                tol,
            )
            .unwrap_or_else(|m| panic!("{m}"));
        }
    }
}

// ---- Backward passes ----

#[wasm_bindgen_test]
async fn backward_passes_match_the_reference() {
    let engine = engine().await;
    let mut rng = Rng(0x3eb_0002);
    for case in 0..40 {
        let pr = random_problem(&mut rng);
        let context = format!("case {case}: {}", pr.describe());
        let s = wgconv::Conv2dShape::new(pr.x.shape(), pr.w.shape(), None, &pr.p).unwrap();
        let gy = rng.tensor(&s.output_shape());
        let want = cpu::reference::conv2d_backward_f64(&pr.x, &pr.w, &gy, &pr.p).expect(&context);
        let (x, w, g) = (
            engine.upload(&pr.x).unwrap(),
            engine.upload(&pr.w).unwrap(),
            engine.upload(&gy).unwrap(),
        );
        let got = engine
            .conv2d_backward(&x, &w, &g, &pr.p, true)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let input = engine.download_async(&got.input).await.expect(&context);
        let weight = engine.download_async(&got.weight).await.expect(&context);
        let bias = engine
            .download_async(got.bias.as_ref().expect("a bias gradient"))
            .await
            .expect(&context);
        let grads = Grads {
            input: input.data(),
            weight: weight.data(),
            bias: Some(bias.data()),
        };
        let scale = (max_abs(&pr.x), max_abs(&pr.w), max_abs(&gy));
        compare_grads(&context, &want, grads, scale).unwrap_or_else(|m| panic!("{m}"));
    }
}

// ---- Splitting past the device's limits ----

/// Limits far below the browser's, so that the problems must be cut into pieces on the host
/// and on the device, as natively (tests/split.rs).
#[wasm_bindgen_test]
async fn problems_past_small_limits_are_split_and_exact() {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 16384,
        max_buffer_size: 65536,
        max_compute_workgroups_per_dimension: 2,
        ..wgpu::Limits::downlevel_defaults()
    };
    let engine = engine_with(EngineOptions {
        limits: Some(limits),
        ..EngineOptions::default()
    })
    .await;
    let mut rng = Rng(0x3eb_0003);
    let x = rng.tensor(&[2, 8, 40, 40]);
    let w = rng.tensor(&[12, 8, 3, 3]);
    let b = rng.tensor(&[12]);
    let p = Conv2dParams::default().with_padding(1);
    let s = wgconv::Conv2dShape::new(x.shape(), w.shape(), Some(&[12]), &p).unwrap();
    assert!(
        4 * s.input_len() > 65536 && 4 * s.output_len() > 65536,
        "the problem must exceed the limits"
    );
    check_against_reference(&engine, "split 2x8x40x40 -> 12, 3x3", &x, &w, Some(&b), &p).await;
    // A strided, grouped one too.
    let w = rng.tensor(&[8, 4, 5, 5]);
    let p = Conv2dParams::default()
        .with_padding(2)
        .with_stride(2)
        .with_groups(2);
    check_against_reference(&engine, "split grouped, stride 2", &x, &w, None, &p).await;
}

// ---- Bad input ----

#[wasm_bindgen_test]
async fn bad_input_is_a_typed_error() {
    let engine = engine().await;
    let x = t(&[1, 3, 8, 8], vec![0.5; 192]);
    let p = Conv2dParams::default();
    let cases: [(&str, Tensor, Option<Tensor>, Conv2dParams); 5] = [
        (
            "channels that do not match",
            t(&[4, 2, 3, 3], vec![0.1; 72]),
            None,
            p,
        ),
        (
            "a kernel larger than the input",
            t(&[1, 3, 9, 9], vec![0.1; 243]),
            None,
            p,
        ),
        (
            "stride 0",
            t(&[2, 3, 3, 3], vec![0.1; 54]),
            None,
            p.with_stride(0),
        ),
        (
            "groups that do not divide",
            t(&[2, 3, 3, 3], vec![0.1; 54]),
            None,
            p.with_groups(2),
        ),
        (
            "a bias of the wrong length",
            t(&[2, 3, 3, 3], vec![0.1; 54]),
            Some(t(&[3], vec![0.0; 3])),
            p,
        ),
    ];
    for (what, w, b, p) in &cases {
        let got = engine.conv2d_async(&x, w, b.as_ref(), p).await;
        let ok = matches!(
            (*what, &got),
            (
                "channels that do not match",
                Err(Error::ChannelMismatch { .. })
            ) | (
                "a kernel larger than the input",
                Err(Error::KernelTooLarge { .. })
            ) | ("stride 0", Err(Error::NonPositive { .. }))
                | (
                    "groups that do not divide",
                    Err(Error::InChannelsNotDivisible { .. })
                )
                | ("a bias of the wrong length", Err(Error::BiasShape { .. }))
        );
        assert!(ok, "{what}: {got:?}");
    }
    // The engine still works afterwards (zero-mean data, as the tolerance assumes).
    let mut rng = Rng(0x3eb_0005);
    let (x, w) = (rng.tensor(&[1, 3, 8, 8]), rng.tensor(&[2, 3, 3, 3]));
    check_against_reference(
        &engine,
        "after bad input",
        &x,
        &w,
        None,
        &Conv2dParams::default(),
    )
    .await;
}

// ---- The JavaScript API ----

fn js_options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

fn js_shape(dims: &[usize]) -> JsValue {
    dims.iter()
        .map(|&d| JsValue::from(d as f64))
        .collect::<Array>()
        .into()
}

fn js_error(e: JsValue) -> String {
    e.dyn_into::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|v| format!("not an Error: {v:?}"))
}

#[wasm_bindgen_test]
async fn javascript_api_matches_the_reference_and_rejects_bad_input() {
    let engine = JsFuture::from(web::WebEngine::create())
        .await
        .expect("Engine.create()");
    let engine = web::WebEngine::try_from_js_value(engine).expect("an Engine");
    assert!(!engine.adapter_info().is_empty());
    web_log(&format!("Engine.adapterInfo: {}", engine.adapter_info()));
    let mut rng = Rng(0x3eb_0004);
    let x = rng.tensor(&[1, 4, 9, 11]);
    let w = rng.tensor(&[6, 2, 3, 3]);
    let b = rng.tensor(&[6]);
    let (xa, wa, ba): (JsValue, JsValue, JsValue) = (
        Float32Array::from(x.data()).into(),
        Float32Array::from(w.data()).into(),
        Float32Array::from(b.data()).into(),
    );
    let options = js_options(&[
        ("stride", JsValue::from(2.0)),
        (
            "padding",
            [1.0, 2.0]
                .iter()
                .map(|&v| JsValue::from(v))
                .collect::<Array>()
                .into(),
        ),
        ("dilation", JsValue::from(1.0)),
        ("groups", JsValue::from(2.0)),
    ]);
    let got = JsFuture::from(engine.conv2d(
        xa.clone(),
        js_shape(x.shape()),
        wa.clone(),
        js_shape(w.shape()),
        ba.clone(),
        options.clone(),
    ))
    .await
    .expect("engine.conv2d");
    let data: Float32Array = Reflect::get(&got, &"data".into()).unwrap().unchecked_into();
    let shape: Vec<usize> = Array::from(&Reflect::get(&got, &"shape".into()).unwrap())
        .iter()
        .map(|v| v.as_f64().unwrap() as usize)
        .collect();
    let p = Conv2dParams::default()
        .with_stride(2)
        .with_padding((1, 2))
        .with_groups(2);
    let (s, want) = cpu::reference::conv2d_f64(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(shape, s.output_shape());
    let tol = tolerance(18, max_abs(&x), max_abs(&w), max_abs(&b));
    compare("JS API", s.output_shape(), &data.to_vec(), &want, tol)
        .unwrap_or_else(|m| panic!("{m}"));

    // The reference through the JS API gives the f64 result rounded once.
    let r = web::conv2d_reference(
        xa.clone(),
        js_shape(x.shape()),
        wa.clone(),
        js_shape(w.shape()),
        ba.clone(),
        options,
    )
    .unwrap();
    let r: Float32Array = Reflect::get(&r, &"data".into()).unwrap().unchecked_into();
    let rounded: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(r.to_vec(), rounded);

    // 'same' and 'valid' as strings.
    for (padding, out) in [("same", [1, 6, 9, 11]), ("valid", [1, 6, 7, 9])] {
        let o = js_options(&[
            ("padding", JsValue::from_str(padding)),
            ("groups", JsValue::from(2.0)),
        ]);
        let got = JsFuture::from(engine.conv2d(
            xa.clone(),
            js_shape(x.shape()),
            wa.clone(),
            js_shape(w.shape()),
            JsValue::NULL,
            o,
        ))
        .await
        .expect(padding);
        let shape: Vec<usize> = Array::from(&Reflect::get(&got, &"shape".into()).unwrap())
            .iter()
            .map(|v| v.as_f64().unwrap() as usize)
            .collect();
        assert_eq!(shape, out, "padding '{padding}'");
    }

    // Options inherited from a prototype count; calls issued together settle one by one,
    // each with its own outcome.
    let proto = js_options(&[
        ("stride", JsValue::from(2.0)),
        ("groups", JsValue::from(2.0)),
    ]);
    let inherited: JsValue = Object::create(proto.unchecked_ref::<Object>()).into();
    let call = |options: JsValue| {
        JsFuture::from(engine.conv2d(
            xa.clone(),
            js_shape(x.shape()),
            wa.clone(),
            js_shape(w.shape()),
            JsValue::NULL,
            options,
        ))
    };
    let (first, second, third) = (
        call(inherited),
        call(js_options(&[("groups", JsValue::from(3.0))])),
        call(js_options(&[("groups", JsValue::from(2.0))])),
    );
    let shape_of = |v: &JsValue| -> Vec<usize> {
        Array::from(&Reflect::get(v, &"shape".into()).unwrap())
            .iter()
            .map(|d| d.as_f64().unwrap() as usize)
            .collect()
    };
    assert_eq!(
        shape_of(&first.await.expect("inherited options")),
        [1, 6, 4, 5]
    );
    let m = js_error(second.await.expect_err("groups 3 of 4 channels"));
    assert!(m.contains("groups"), "{m}");
    assert_eq!(
        shape_of(&third.await.expect("after a rejection")),
        [1, 6, 7, 9]
    );

    // Bad input rejects with wgconv's own message.
    let reject = |options: JsValue, x_shape: JsValue| {
        let p = engine.conv2d(
            xa.clone(),
            x_shape,
            wa.clone(),
            js_shape(w.shape()),
            JsValue::NULL,
            options,
        );
        async move { js_error(JsFuture::from(p).await.expect_err("a rejection")) }
    };
    let m = reject(
        js_options(&[("padding", JsValue::from_str("full"))]),
        js_shape(x.shape()),
    )
    .await;
    assert!(m.contains("'same'") && m.contains("\"full\""), "{m}");
    let m = reject(
        js_options(&[("stride", JsValue::from(1.5))]),
        js_shape(x.shape()),
    )
    .await;
    assert!(m.contains("stride") && m.contains("1.5"), "{m}");
    let m = reject(
        js_options(&[("strides", JsValue::from(1.0))]),
        js_shape(x.shape()),
    )
    .await;
    assert!(m.contains("unknown option 'strides'"), "{m}");
    let m = reject(JsValue::UNDEFINED, js_shape(&[1, 4, 9, 10])).await;
    assert!(
        m.starts_with("x: ") && m.contains("396"),
        "a wrong data length: {m}"
    );
    let m = reject(JsValue::UNDEFINED, js_shape(x.shape())).await;
    assert!(
        m.contains("to have 2 channels, but got 4"),
        "groups 1 with 2-channel weights: {m}"
    );
    let m = reject(JsValue::UNDEFINED, JsValue::from_str("1,4,9,11")).await;
    assert!(m.contains("xShape"), "{m}");
    // Data that is not a Float32Array is refused, naming what it was.
    let plain: Array = x.data().iter().map(|&v| JsValue::from(v)).collect();
    let p = engine.conv2d(
        plain.into(),
        js_shape(x.shape()),
        wa.clone(),
        js_shape(w.shape()),
        JsValue::NULL,
        JsValue::UNDEFINED,
    );
    let m = js_error(JsFuture::from(p).await.expect_err("an Array for x"));
    assert!(m.contains("x must be a Float32Array, got an Array"), "{m}");
    let m = web::conv2d_reference(
        xa.clone(),
        js_shape(x.shape()),
        wa.clone(),
        js_shape(w.shape()),
        JsValue::from(3.0),
        JsValue::UNDEFINED,
    )
    .map(|_| String::new())
    .unwrap_or_else(js_error);
    assert!(
        m.contains("bias must be a Float32Array, got a number"),
        "{m}"
    );

    // The image filter equals the library's own, on the sample picture.
    let sample = web::sample_image().unwrap();
    let rgb = Reflect::get(&sample, &"rgb".into()).unwrap();
    let out = JsFuture::from(engine.filter(rgb.clone(), 128.into(), 128.into(), "sharpen".into()))
        .await
        .expect("filter");
    let out: js_sys::Uint8Array = out.unchecked_into();
    let native = wgconv::filter::apply_async(
        &engine_with(EngineOptions::default()).await,
        &wgconv::filter::sample_image(),
        &wgconv::filter::KernelChoice::Builtin(wgconv::filter::Filter::Sharpen),
    )
    .await
    .unwrap();
    assert_eq!(out.to_vec(), native.into_raw());
    let m = js_error(
        JsFuture::from(engine.filter(rgb.clone(), 128.into(), 127.into(), "sharpen".into()))
            .await
            .expect_err("a short picture"),
    );
    assert!(m.contains("49152") || m.contains("48768"), "{m}");
    let m = js_error(
        JsFuture::from(engine.filter(rgb.clone(), 128.into(), 128.into(), "blur".into()))
            .await
            .expect_err("an unknown filter"),
    );
    assert!(m.contains("unknown kernel 'blur'"), "{m}");
    let m = js_error(
        JsFuture::from(engine.filter(rgb, 128.5.into(), 128.into(), "blur".into()))
            .await
            .expect_err("a fractional width"),
    );
    assert!(m.contains("width") && m.contains("128.5"), "{m}");
}

// ---- conv1d and conv3d ----

/// Deterministic values in [-1, 1] (zero mean, as the tolerance argument assumes).
fn values(shape: &[usize], seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    Tensor::from_fn(shape.to_vec(), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
    .expect("a test tensor")
}

/// A `[n, o, rest...]` shape as the 4-D one the comparison names indices by.
fn flat4(shape: &[usize]) -> [usize; 4] {
    let (n, o) = (shape[0], shape[1]);
    [n, o, 1, shape[2..].iter().product()]
}

#[wasm_bindgen_test]
async fn conv1d_and_conv3d_match_the_reference() {
    let engine = engine().await;
    let one = wgconv::Conv1dParams::default()
        .with_stride(2)
        .with_padding([[1, 3]])
        .with_dilation(2)
        .with_groups(2);
    let three = wgconv::Conv3dParams::default()
        .with_stride([1, 2, 1])
        .with_padding([[1, 0], [1, 1], [0, 2]])
        .with_dilation([2, 1, 1])
        .with_groups(2);
    for (x_shape, w_shape) in [
        (&[2, 6, 50][..], &[4, 3, 5][..]),
        (&[6, 41][..], &[4, 3, 5][..]),
    ] {
        let (x, w, b) = (values(x_shape, 1), values(w_shape, 2), values(&[4], 3));
        let (s, want) = cpu::reference::conv_nd_f64(&x, &w, Some(&b), &one).unwrap();
        let got = engine.conv1d_async(&x, &w, Some(&b), &one).await.unwrap();
        assert_eq!(got.shape(), &s.output_shape()[..]);
        let tol = tolerance(15, max_abs(&x), max_abs(&w), max_abs(&b));
        // An unbatched output named as the batch of one it is.
        let batched = [&[1][..], &s.output_shape()[..]].concat();
        let batched = if s.unbatched {
            batched
        } else {
            s.output_shape()
        };
        compare("conv1d", flat4(&batched), got.data(), &want, tol).unwrap();
    }
    let (x, w, b) = (
        values(&[2, 4, 5, 6, 7], 4),
        values(&[6, 2, 3, 2, 3], 5),
        values(&[6], 6),
    );
    let (s, want) = cpu::reference::conv_nd_f64(&x, &w, Some(&b), &three).unwrap();
    let got = engine.conv3d_async(&x, &w, Some(&b), &three).await.unwrap();
    assert_eq!(got.shape(), &s.output_shape()[..]);
    let tol = tolerance(36, max_abs(&x), max_abs(&w), max_abs(&b));
    compare("conv3d", flat4(got.shape()), got.data(), &want, tol).unwrap();

    // The conv3d's gradients, from GPU tensors.
    let gy = values(&s.output_shape(), 7);
    let want = cpu::reference::conv_nd_backward_f64(&x, &w, &gy, &three).unwrap();
    let (gx, gw, gg) = (
        engine.upload(&x).unwrap(),
        engine.upload(&w).unwrap(),
        engine.upload(&gy).unwrap(),
    );
    let grads = engine.conv3d_backward(&gx, &gw, &gg, &three, true).unwrap();
    let (mx, mw, mg) = (max_abs(&x), max_abs(&w), max_abs(&gy));
    let rows = 2 * s.output.iter().product::<usize>();
    for (what, got, want, tol) in [
        (
            "grad input",
            &grads.input,
            &want.input,
            tolerance(3 * 18, mg, mw, 0.0),
        ),
        (
            "grad weight",
            &grads.weight,
            &want.weight,
            tolerance(rows, mg, mx, 0.0),
        ),
    ] {
        let got = engine.download_async(got).await.unwrap();
        compare(what, flat4(got.shape()), got.data(), want, tol).unwrap();
    }
}
