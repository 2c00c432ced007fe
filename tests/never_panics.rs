//! Property tests over shapes, parameters, files and text, valid and absurd alike: every public
//! entry point returns an error or the right answer, and never panics.
//!
//! - `conv2d_shape_follows_pytorch`: `Conv2dShape::new` accepts exactly what an independent model
//!   of PyTorch's rules (in `u128`, plus "every size fits this host") accepts, with the same output
//!   shape; the planner never panics on what it accepts.
//! - `tensor_new_accepts_exactly_matching_data`: `Tensor::new` on any shape and data length.
//! - `gpu_conv2d_is_an_error_or_matches_the_reference`: `Engine::conv2d` fails exactly when the
//!   shapes do (same message), or when the plan refuses a size; otherwise it matches the f64 CPU
//!   reference within `common::tolerance`.
//! - `cpu_fast_conv2d_is_an_error_or_matches_the_reference`: the same for `cpu::fast::conv2d`.
//! - `gpu_backward_is_an_error_or_matches_the_reference`: `Engine::conv2d_backward` (and, on
//!   refused shapes, `conv2d_grad_input` / `conv2d_grad_weight`) with a `grad_output` of the
//!   output's shape or another: it fails exactly when `cpu::reference::conv2d_backward_f64` does
//!   (same message), or with a size error on a problem past the shaders' `i32`/`u32` indexing;
//!   otherwise every gradient matches the reference within the tolerances of
//!   tests/grad_matches_cpu.rs. `conv2d_grad_bias` of an empty `grad_output` with absurd other
//!   dimensions gives zeros or a size error.
//! - `transposed_convolution_is_an_error_or_matches_the_reference`: `ConvTranspose2dShape::new`
//!   accepts exactly what a `u128` model of PyTorch's `conv_transpose2d` rules accepts, with the
//!   same output shape; `Engine::conv_transpose2d` fails exactly when the shapes do (same
//!   message), or with a size error past the shaders' indexing; otherwise it matches
//!   `cpu::reference::conv_transpose2d_f64` (`K = Ci/groups * kh * kw`).
//! - `read_npy_is_an_error_or_a_consistent_tensor`: `io::read_npy` on random bytes and on mutated,
//!   truncated or lying `.npy` files.
//! - `parse_suite_is_an_error_or_valid_layers`: `bench::parse_suite_str` on arbitrary text and on
//!   near-valid suite lines.
//!
//! Most drawn problems are small and near-valid (so the GPU runs stay quick on software
//! adapters), a few mutated into errors, some absurd (ranks 0-6, sizes up to `usize::MAX`); the
//! backward and transposed properties add small problems with huge strides, paddings, dilations
//! or output paddings that still leave a small output. Host tensors are only built when they hold
//! few elements; absurd problems exercise the shape-level APIs and the planner instead.
//!
//! Bounded and reproducible: a fixed seed per property, shifted by `WGCONV_TEST_SEED=N` (as every
//! random test here). `WGCONV_PROPTEST_CASES=N` sets the GPU property's case count (default
//! 20 000, the whole file in about 40-55 s on lavapipe or llvmpipe); the other properties run a
//! fixed multiple of it (from 0.4x for the backward and transposed ones to 20x), so run time
//! scales with N. No regression files are written; a failure prints the minimal failing input
//! (shrinking is bounded too). To search longer (about five times the default, a few minutes):
//!
//! ```text
//! WGCONV_PROPTEST_CASES=100000 cargo test --test never_panics
//! WGCONV_PROPTEST_CASES=100000 WGCONV_TEST_SEED=7 cargo test --test never_panics
//! ```

mod common;

use std::cell::Cell;
use std::fmt::Debug;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestError, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use wgconv::gpu::plan::{self, PlanLimits};
use wgconv::{
    bench, cpu, io, Algorithm, Conv2dParams, Conv2dShape, ConvTranspose2dParams,
    ConvTranspose2dShape, Padding, Tensor,
};

use common::{compare, compare_grads, describe, engine, max_abs, seed_offset, tolerance, Grads};

/// Outputs larger than this are only scheduled, not run: valid but too big for a quick test.
const MAX_OUTPUT: usize = 1 << 20;

/// Multiply-adds above which a valid problem is only planned, not run (keeps lavapipe quick).
const MAX_MACS: usize = 200_000;

/// Elements above which a host tensor is not built.
const MAX_HOST_ELEMENTS: usize = 1 << 16;

/// Shrinking steps after a failure: enough to reach a small case, bounded in time.
const MAX_SHRINK_ITERS: u32 = 4096;

/// Cases of the GPU property by default (`WGCONV_PROPTEST_CASES` overrides it); the other
/// properties run a fixed multiple of it. About 40-55 s for the whole file on lavapipe or
/// llvmpipe (2 cores, test profile).
const DEFAULT_CASES: u32 = 20_000;

// Cases of each property per GPU case, as (numerator, denominator).
const SHAPE_CASES: (u32, u32) = (20, 1);
const TENSOR_CASES: (u32, u32) = (10, 1);
const GPU_CASES: (u32, u32) = (1, 1);
const CPU_CASES: (u32, u32) = (5, 1);
const NPY_CASES: (u32, u32) = (3, 4);
const SUITE_CASES: (u32, u32) = (10, 1);
const BACKWARD_CASES: (u32, u32) = (2, 5);
const TRANSPOSED_CASES: (u32, u32) = (2, 5);

// ---------------------------------------------------------------------------------------------
// Running a property
// ---------------------------------------------------------------------------------------------

/// Cases for a property with `ratio` cases per GPU case: `WGCONV_PROPTEST_CASES` (or
/// [`DEFAULT_CASES`]) times the ratio, at least 1.
fn case_count((num, den): (u32, u32)) -> u32 {
    let base = std::env::var("WGCONV_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(DEFAULT_CASES);
    let cases = u64::from(base) * u64::from(num) / u64::from(den);
    cases.clamp(1, u64::from(u32::MAX)) as u32
}

/// Runs `test` on [`case_count`]`(cases)` values of `strategy` from the fixed seed `seed` (shifted
/// by `WGCONV_TEST_SEED`); a failure panics with the minimal failing input.
fn check<S: Strategy>(
    name: &str,
    seed: u64,
    cases: (u32, u32),
    strategy: S,
    test: impl Fn(S::Value) -> TestCaseResult,
) where
    S::Value: Debug,
{
    let seed = seed.wrapping_add(seed_offset());
    let config = Config {
        cases: case_count(cases),
        max_shrink_iters: MAX_SHRINK_ITERS,
        max_shrink_time: 120_000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        fork: false,
        timeout: 0,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    match runner.run(&strategy, test) {
        Ok(()) => eprintln!("{name}: {cases} cases in {:.1?}", started.elapsed()),
        Err(TestError::Fail(reason, minimal)) => panic!(
            "{name} failed (seed {seed}, reproduce with WGCONV_TEST_SEED={}): {reason}\n\
             minimal failing input: {minimal:#?}",
            seed_offset()
        ),
        Err(TestError::Abort(reason)) => panic!("{name} aborted: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution problems: near-valid small ones, mutated ones and absurd ones
// ---------------------------------------------------------------------------------------------

/// One call's shapes and parameters, valid or not.
#[derive(Clone, Debug)]
struct Problem {
    input: Vec<usize>,
    weight: Vec<usize>,
    bias: Option<Vec<usize>>,
    params: Conv2dParams,
}

impl Problem {
    fn describe(&self) -> String {
        format!(
            "{} (bias shape {:?})",
            describe(&self.input, &self.weight, self.bias.is_some(), &self.params),
            self.bias
        )
    }

    fn shape(&self) -> wgconv::Result<Conv2dShape> {
        Conv2dShape::new(
            &self.input,
            &self.weight,
            self.bias.as_deref(),
            &self.params,
        )
    }
}

/// Sizes that break arithmetic: the ends of `usize`, `u32` and `i32`, and powers of two past them.
fn huge() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(usize::MAX),
        Just(usize::MAX - 1),
        Just(usize::MAX / 2),
        Just(usize::MAX / 2 + 1),
        Just(usize::MAX / 4 + 1),
        Just(u32::MAX as usize),
        Just(u32::MAX as usize + 1),
        Just(i32::MAX as usize),
        Just(i32::MAX as usize + 1),
        Just(1 << 40),
        Just(1 << 62),
        (1usize << 16)..(1usize << 34),
        any::<usize>(),
    ]
}

/// Any size or parameter: mostly 0 to a few dozen, sometimes [`huge`].
fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=4,
        2 => 5usize..=70,
        1 => huge(),
    ]
}

fn any_padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        4 => (count(), count(), count(), count())
            .prop_map(|(t, b, l, r)| Padding::explicit(t, b, l, r)),
        1 => Just(Padding::Same),
        1 => Just(Padding::Valid),
    ]
}

fn small_padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        6 => (0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3)
            .prop_map(|(t, b, l, r)| Padding::explicit(t, b, l, r)),
        1 => Just(Padding::Same),
        1 => Just(Padding::Valid),
    ]
}

/// Which family of layer a small problem belongs to (each kernel family gets its share).
#[derive(Clone, Copy, Debug)]
enum Flavour {
    General,
    /// 1x1 kernel, stride 1, no padding, one group: a plain matrix product.
    Pointwise,
    /// One input channel per group.
    Depthwise,
}

/// A small valid problem: batch 0-3, groups 1-3 with 1-6 channels in and 1-8 out per group (or
/// pointwise, or depthwise), kernels up to 5x5, stride and dilation 1-3, padding 0-3 or
/// same/valid, an input from just large enough for the dilated kernel to 6 pixels more, with or
/// without bias.
fn small_problem() -> impl Strategy<Value = Problem> {
    let flavour = prop_oneof![
        3 => Just(Flavour::General),
        1 => Just(Flavour::Pointwise),
        1 => Just(Flavour::Depthwise),
    ];
    (
        (flavour, 0usize..=3, 1usize..=3, 1usize..=6, 1usize..=8),
        (
            1usize..=5,
            1usize..=5,
            1usize..=3,
            1usize..=3,
            1usize..=3,
            1usize..=3,
        ),
        (small_padding(), 0usize..=6, 0usize..=6, any::<bool>()),
    )
        .prop_map(
            |((flavour, n, groups, cg, og), (kh, kw, sh, sw, dh, dw), (padding, eh, ew, bias))| {
                let (mut groups, mut cg, mut kh, mut kw) = (groups, cg, kh, kw);
                let (mut stride, mut padding) = ((sh, sw), padding);
                match flavour {
                    Flavour::General => {}
                    Flavour::Pointwise => {
                        (groups, kh, kw, stride) = (1, 1, 1, (1, 1));
                        padding = Padding::uniform(0);
                    }
                    Flavour::Depthwise => {
                        groups *= cg;
                        cg = 1;
                    }
                }
                if padding == Padding::Same {
                    stride = (1, 1);
                }
                let (t, b, l, r) = padding.resolve((kh, kw), (dh, dw));
                let h = (dh * (kh - 1) + 1).saturating_sub(t + b).max(1) + eh;
                let w = (dw * (kw - 1) + 1).saturating_sub(l + r).max(1) + ew;
                let o = og * groups;
                Problem {
                    input: vec![n, cg * groups, h, w],
                    weight: vec![o, cg, kh, kw],
                    bias: bias.then(|| vec![o]),
                    params: Conv2dParams {
                        stride,
                        padding,
                        dilation: (dh, dw),
                        groups,
                        ..wgconv::Conv2dParams::default()
                    },
                }
            },
        )
}

/// One change that may make a problem invalid or absurd.
#[derive(Clone, Debug)]
enum Mutation {
    InputDim(usize, usize),
    WeightDim(usize, usize),
    Input(Vec<usize>),
    Weight(Vec<usize>),
    Bias(Option<Vec<usize>>),
    Groups(usize),
    Stride(usize, usize),
    Dilation(usize, usize),
    Padding(Padding),
}

fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(count(), 0..=6)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (0usize..4, count()).prop_map(|(i, v)| Mutation::InputDim(i, v)),
        3 => (0usize..4, count()).prop_map(|(i, v)| Mutation::WeightDim(i, v)),
        1 => dims().prop_map(Mutation::Input),
        1 => dims().prop_map(Mutation::Weight),
        1 => prop::option::of(prop::collection::vec(count(), 0..=2)).prop_map(Mutation::Bias),
        2 => count().prop_map(Mutation::Groups),
        2 => (count(), count()).prop_map(|(h, w)| Mutation::Stride(h, w)),
        2 => (count(), count()).prop_map(|(h, w)| Mutation::Dilation(h, w)),
        2 => any_padding().prop_map(Mutation::Padding),
    ]
}

fn apply(mut p: Problem, mutations: Vec<Mutation>) -> Problem {
    for m in mutations {
        match m {
            Mutation::InputDim(i, v) => {
                if let Some(d) = p.input.get_mut(i) {
                    *d = v;
                }
            }
            Mutation::WeightDim(i, v) => {
                if let Some(d) = p.weight.get_mut(i) {
                    *d = v;
                }
            }
            Mutation::Input(d) => p.input = d,
            Mutation::Weight(d) => p.weight = d,
            Mutation::Bias(b) => p.bias = b,
            Mutation::Groups(g) => p.params.groups = g,
            Mutation::Stride(h, w) => p.params.stride = (h, w),
            Mutation::Dilation(h, w) => p.params.dilation = (h, w),
            Mutation::Padding(pad) => p.params.padding = pad,
        }
    }
    p
}

/// Anything: ranks 0-6, any sizes and parameters.
fn absurd_problem() -> impl Strategy<Value = Problem> {
    (
        dims(),
        dims(),
        prop::option::of(prop::collection::vec(count(), 0..=2)),
        (count(), count(), count(), count(), count()),
        any_padding(),
    )
        .prop_map(
            |(input, weight, bias, (sh, sw, dh, dw, groups), padding)| Problem {
                input,
                weight,
                bias,
                params: Conv2dParams {
                    stride: (sh, sw),
                    padding,
                    dilation: (dh, dw),
                    groups,
                    ..wgconv::Conv2dParams::default()
                },
            },
        )
}

/// Half small and valid, a third mutated (1-3 changes), the rest absurd.
fn problem() -> impl Strategy<Value = Problem> {
    prop_oneof![
        6 => small_problem(),
        4 => (small_problem(), prop::collection::vec(mutation(), 1..=3))
            .prop_map(|(p, m)| apply(p, m)),
        2 => absurd_problem(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model: PyTorch's rules in u128
// ---------------------------------------------------------------------------------------------

/// The output shape PyTorch gives, or `None` where PyTorch refuses the problem or a size does not
/// fit this host: every dimension, padded extent, dilated kernel extent and tensor byte size (the
/// batch counted as at least 1, so an empty batch does not hide an absurd image) within `usize`.
fn model_output(p: &Problem) -> Option<Vec<usize>> {
    let (sh, sw) = p.params.stride;
    let (dh, dw) = p.params.dilation;
    let g = p.params.groups;
    if [sh, sw, dh, dw, g].contains(&0) {
        return None;
    }
    // PyTorch takes an unbatched [C, H, W] as a batch of one, and gives an unbatched output.
    let (n, c, h, w, unbatched) = match p.input[..] {
        [n, c, h, w] => (n, c, h, w, false),
        [c, h, w] => (1, c, h, w, true),
        _ => return None,
    };
    let &[o, cg, kh, kw] = &p.weight[..] else {
        return None;
    };
    if [c, h, w, o, cg, kh, kw].contains(&0) {
        return None;
    }
    if p.params.padding == Padding::Same && (sh, sw) != (1, 1) {
        return None;
    }
    if o % g != 0 || c as u128 != cg as u128 * g as u128 {
        return None;
    }
    if let Some(b) = &p.bias {
        if b[..] != [o] {
            return None;
        }
    }
    let same = |k: usize, d: usize| {
        let total = d as u128 * (k as u128 - 1);
        (total / 2, total - total / 2)
    };
    let ((t, b), (l, r)) = match p.params.padding {
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => ((top as u128, bottom as u128), (left as u128, right as u128)),
        Padding::Valid => ((0, 0), (0, 0)),
        Padding::Same => (same(kh, dh), same(kw, dw)),
    };
    let fits = |v: u128| v <= usize::MAX as u128;
    let axis = |len: usize, before: u128, after: u128, k: usize, s: usize, d: usize| {
        let padded = len as u128 + before + after;
        let span = d as u128 * (k as u128 - 1) + 1;
        if !fits(padded) || !fits(span) || span > padded {
            return None;
        }
        // floor((len + pad - dilation*(k-1) - 1) / stride) + 1
        Some((padded - span) / s as u128 + 1)
    };
    let p_out = axis(h, t, b, kh, sh, dh)?;
    let q_out = axis(w, l, r, kw, sw, dw)?;
    let batch = n.max(1) as u128;
    let bytes = |dims: [u128; 4]| {
        dims.iter()
            .try_fold(4u128, |acc, &d| acc.checked_mul(d))
            .is_some_and(fits)
    };
    let (c, h, w, o, cg, kh, kw) = (
        c as u128, h as u128, w as u128, o as u128, cg as u128, kh as u128, kw as u128,
    );
    if !bytes([batch, c, h, w]) || !bytes([o, cg, kh, kw]) || !bytes([batch, o, p_out, q_out]) {
        return None;
    }
    let out = [n, o as usize, p_out as usize, q_out as usize];
    Some(out[usize::from(unbatched)..].to_vec())
}

/// A shape with the batch of one an unbatched `[C, H, W]` is run as.
fn batched(dims: &[usize]) -> Vec<usize> {
    if dims.len() == 3 {
        [&[1][..], dims].concat()
    } else {
        dims.to_vec()
    }
}

/// The number of elements of `shape`, if it is small enough to hold on the host here.
fn small_len(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&len| len <= MAX_HOST_ELEMENTS)
}

/// Random data in [-1, 1] for `p`'s tensors: `None` when one of them is too large to build
/// here, an error when `Tensor` refuses one of the shapes.
fn host_tensors(p: &Problem, seed: u64) -> Option<wgconv::Result<HostTensors>> {
    small_len(&p.input)?;
    small_len(&p.weight)?;
    if let Some(b) = &p.bias {
        small_len(b)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random = |shape: &[usize]| Tensor::from_fn(shape, |_| rng.random_range(-1.0f32..=1.0));
    let tensors = (|| {
        let x = random(&p.input)?;
        let w = random(&p.weight)?;
        let b = p.bias.as_deref().map(&mut random).transpose()?;
        Ok((x, w, b))
    })();
    Some(tensors)
}

type HostTensors = (Tensor, Tensor, Option<Tensor>);

/// The reference result and tolerance of a valid problem small enough to run.
fn reference(
    s: &Conv2dShape,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    params: &Conv2dParams,
) -> (Vec<f64>, f64) {
    let (rs, want) = cpu::reference::conv2d_f64(x, w, b, params).expect("a valid problem");
    assert_eq!(&rs, s);
    let tol = tolerance(
        s.reduction_len(),
        max_abs(x),
        max_abs(w),
        b.map_or(0.0, max_abs),
    );
    (want, tol)
}

fn macs(s: &Conv2dShape) -> usize {
    s.output_len().saturating_mul(s.reduction_len())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const ALGORITHMS: [Algorithm; 7] = Algorithm::NAMED;

#[test]
fn conv2d_shape_follows_pytorch() {
    let limits = [PlanLimits::unlimited_cpu(), engine().limits()];
    check(
        "conv2d_shape_follows_pytorch",
        0x5eed_a001,
        SHAPE_CASES,
        problem(),
        |p| {
            let got = p.shape();
            let want = model_output(&p);
            match (&got, want) {
                (Ok(s), Some(out)) => {
                    prop_assert_eq!(
                        &s.output_shape()[..],
                        &batched(&out)[..],
                        "{}",
                        p.describe()
                    );
                    prop_assert_eq!(&s.input_shape()[..], &batched(&p.input)[..]);
                    prop_assert_eq!(&s.weight_shape()[..], &p.weight[..]);
                    prop_assert_eq!(s.has_bias, p.bias.is_some());
                    prop_assert_eq!(
                        wgconv::output_shape(&p.input, &p.weight, &p.params).ok(),
                        Some(out)
                    );
                    // Everything derived from an accepted shape is panic-free.
                    let _ = (s.flops(), s.reduction_len(), s.input_len(), s.weight_len());
                    for l in &limits {
                        for a in ALGORITHMS {
                            let _ = plan::plan(s, l, a);
                        }
                        let _ = plan::pack_plan(s, l);
                    }
                    let _ = plan::choose_kernel(s);
                }
                (Err(_), None) => {}
                (Ok(s), None) => prop_assert!(
                    false,
                    "accepted, but PyTorch refuses it or a size overflows: {} -> {s:?}",
                    p.describe()
                ),
                (Err(e), Some(out)) => prop_assert!(
                    false,
                    "refused ({e}), but PyTorch gives {out:?}: {}",
                    p.describe()
                ),
            }
            Ok(())
        },
    );
}

#[test]
fn tensor_new_accepts_exactly_matching_data() {
    check(
        "tensor_new_accepts_exactly_matching_data",
        0x5eed_a002,
        TENSOR_CASES,
        (dims(), 0usize..=4),
        |(shape, extra)| {
            // The product, if it is representable: ndarray's rule, the non-zero dimensions'
            // product within isize.
            let nonzero = shape
                .iter()
                .filter(|&&d| d != 0)
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&v| v <= isize::MAX as usize);
            let len = nonzero.map(|v| if shape.contains(&0) { 0 } else { v });
            let data_len = match len {
                Some(l) if l <= MAX_HOST_ELEMENTS => l + extra % 2,
                _ => extra,
            };
            let got = Tensor::new(shape.clone(), vec![0.5; data_len]);
            match got {
                Ok(t) => {
                    prop_assert_eq!(Some(data_len), len, "{:?}", shape);
                    prop_assert_eq!(t.len(), data_len);
                    let a = t.into_ndarray();
                    prop_assert_eq!(a.shape(), &shape[..]);
                }
                Err(e) => prop_assert!(
                    len != Some(data_len),
                    "{shape:?} with {data_len} elements refused: {e}"
                ),
            }
            Ok(())
        },
    );
}

/// Whether `got` is an error with `want`'s message.
fn same_error<T>(got: &wgconv::Result<T>, want: &wgconv::Error) -> bool {
    matches!(got, Err(e) if e.to_string() == want.to_string())
}

/// `Ok(shape)` or `Err(message)`, for failure messages.
fn outcome(got: &wgconv::Result<Tensor>) -> Result<&[usize], String> {
    got.as_ref().map(Tensor::shape).map_err(ToString::to_string)
}

/// A 4D tensor as an `ndarray` view.
fn view4(t: &Tensor) -> Option<ndarray::ArrayView4<'_, f32>> {
    let &[n, c, h, w] = t.shape() else {
        return None;
    };
    ndarray::ArrayView4::from_shape((n, c, h, w), t.data()).ok()
}

/// The convolution through GPU tensors with `algorithm` forced, into an output that starts as NaN.
fn conv2d_forced(
    algorithm: Algorithm,
    (x, w, b): &HostTensors,
    params: &Conv2dParams,
) -> wgconv::Result<Tensor> {
    let engine = engine();
    let (gx, gw) = (engine.upload(x)?, engine.upload(w)?);
    let gb = b.as_ref().map(|b| engine.upload(b)).transpose()?;
    let out_shape = wgconv::output_shape(x.shape(), w.shape(), params)?;
    let mut out = engine.upload(&Tensor::full(out_shape, f32::NAN)?)?;
    engine.conv2d_into_with(algorithm, &gx, &gw, gb.as_ref(), params, &mut out)?;
    engine.download(&out)
}

#[test]
fn gpu_conv2d_is_an_error_or_matches_the_reference() {
    let engine = engine();
    let ran = Cell::new(0usize);
    check(
        "gpu_conv2d_is_an_error_or_matches_the_reference",
        0x5eed_a003,
        GPU_CASES,
        (
            problem(),
            any::<u64>(),
            prop::sample::select(&ALGORITHMS[..]),
        ),
        |(p, seed, algorithm)| {
            let context = p.describe();
            let shape = p.shape();
            if let Ok(s) = &shape {
                // The planner answers for every accepted shape, however large.
                let _ = engine.plan(s);
            }
            let tensors = match host_tensors(&p, seed) {
                None => return Ok(()),
                Some(Err(e)) => {
                    prop_assert!(
                        shape.is_err(),
                        "{context}: a tensor cannot be created ({e}), yet the shapes are accepted"
                    );
                    return Ok(());
                }
                Some(Ok(t)) => t,
            };
            let (x, w, b) = &tensors;
            let run = || engine.conv2d(x, w, b.as_ref(), &p.params);
            let s = match shape {
                Err(want) => {
                    let got = run();
                    prop_assert!(
                        same_error(&got, &want),
                        "{context}: shapes refused ({want}) but the engine gave {:?}",
                        outcome(&got)
                    );
                    // GPU tensors in, too: the same refusal.
                    let (gx, gw) = (engine.upload(x), engine.upload(w));
                    let gb = b.as_ref().map(|b| engine.upload(b)).transpose();
                    if let (Ok(gx), Ok(gw), Ok(gb)) = (gx, gw, gb) {
                        let got = engine.conv2d_gpu(&gx, &gw, gb.as_ref(), &p.params);
                        prop_assert!(
                            same_error(&got, &want),
                            "{context}: shapes refused ({want}) but conv2d_gpu did not"
                        );
                    }
                    return Ok(());
                }
                Ok(s) => s,
            };
            let out_shape = wgconv::output_shape(&p.input, &p.weight, &p.params)
                .map_err(|e| TestCaseError::fail(format!("{context}: {e}")))?;
            if s.output_len() == 0 {
                let got = run();
                prop_assert!(
                    matches!(&got, Ok(t) if t.shape() == out_shape && t.is_empty()),
                    "{context}: an empty output, but the engine gave {:?}",
                    outcome(&got)
                );
                // The ndarray entry point builds an empty array of that shape.
                if let (Some(xa), Some(wa)) = (view4(x), view4(w)) {
                    let ba = b.as_ref().map(|b| ndarray::ArrayView1::from(b.data()));
                    let got = engine.conv2d_array(xa, wa, ba, &p.params);
                    prop_assert!(
                        matches!(&got, Ok(y) if y.shape() == s.output_shape()),
                        "{context}: conv2d_array gave {got:?}"
                    );
                }
                return Ok(());
            }
            // Problems past one dispatch are split (tests/split.rs); one whose smallest piece does
            // not fit is refused before anything is uploaded, with the schedule's error.
            let scheduled = engine.schedule(&s);
            if s.output_len() > MAX_OUTPUT {
                return Ok(());
            }
            if let Err(planned) = scheduled {
                let got = run();
                prop_assert!(
                    same_error(&got, &planned),
                    "{context}: the schedule refuses ({planned}) but the engine gave {:?}",
                    outcome(&got)
                );
                return Ok(());
            }
            if macs(&s) > MAX_MACS {
                return Ok(());
            }
            let (want, tol) = reference(&s, x, w, b.as_ref(), &p.params);
            let got = run().map_err(|e| TestCaseError::fail(format!("{context}: {e}")))?;
            prop_assert_eq!(got.shape(), &out_shape[..]);
            compare(&context, s.output_shape(), got.data(), &want, tol)
                .map_err(TestCaseError::fail)?;
            // A forced algorithm runs the shape or says it does not cover it.
            match conv2d_forced(algorithm, &tensors, &p.params) {
                Ok(got) => {
                    let context = format!("{context}, {algorithm:?}");
                    compare(&context, s.output_shape(), got.data(), &want, tol)
                        .map_err(TestCaseError::fail)?;
                }
                Err(wgconv::Error::UnsupportedAlgorithm { .. })
                    if algorithm != Algorithm::Direct => {}
                Err(e) => prop_assert!(false, "{context}, {algorithm:?}: {e}"),
            }
            ran.set(ran.get() + 1);
            Ok(())
        },
    );
    // Not vacuous: a good share of the cases ran on the GPU and were compared.
    let cases = case_count(GPU_CASES) as usize;
    eprintln!("{} of {cases} cases ran on the GPU", ran.get());
    assert!(
        cases < 100 || ran.get() * 4 >= cases,
        "only {} of {cases} cases ran on the GPU",
        ran.get()
    );
}

#[test]
fn cpu_fast_conv2d_is_an_error_or_matches_the_reference() {
    let ran = Cell::new(0usize);
    check(
        "cpu_fast_conv2d_is_an_error_or_matches_the_reference",
        0x5eed_a004,
        CPU_CASES,
        (problem(), any::<u64>()),
        |(p, seed)| {
            let context = p.describe();
            let shape = p.shape();
            let (x, w, b) = match host_tensors(&p, seed) {
                None => return Ok(()),
                Some(Err(e)) => {
                    prop_assert!(
                        shape.is_err(),
                        "{context}: a tensor cannot be created ({e}), yet the shapes are accepted"
                    );
                    return Ok(());
                }
                Some(Ok(t)) => t,
            };
            let s = match shape {
                Err(want) => {
                    for (name, got) in [
                        ("fast", cpu::fast::conv2d(&x, &w, b.as_ref(), &p.params)),
                        (
                            "reference",
                            cpu::reference::conv2d(&x, &w, b.as_ref(), &p.params),
                        ),
                    ] {
                        let got = got.map(|t| t.shape().to_vec());
                        prop_assert!(
                            matches!(&got, Err(e) if e.to_string() == want.to_string()),
                            "{context}: shapes refused ({want}) but {name} gave {got:?}"
                        );
                    }
                    return Ok(());
                }
                Ok(s) => s,
            };
            if macs(&s) > MAX_MACS {
                return Ok(());
            }
            let (want, tol) = reference(&s, &x, &w, b.as_ref(), &p.params);
            let got = match cpu::fast::conv2d(&x, &w, b.as_ref(), &p.params) {
                Ok(t) => t,
                Err(e) => return Err(TestCaseError::fail(format!("{context}: {e}"))),
            };
            prop_assert_eq!(&batched(got.shape())[..], &s.output_shape()[..]);
            prop_assert_eq!(got.shape().len(), p.input.len());
            if let Err(msg) = compare(&context, s.output_shape(), got.data(), &want, tol) {
                return Err(TestCaseError::fail(msg));
            }
            ran.set(ran.get() + 1);
            Ok(())
        },
    );
    let cases = case_count(CPU_CASES) as usize;
    eprintln!("{} of {cases} cases ran", ran.get());
    assert!(
        cases < 100 || ran.get() * 4 >= cases,
        "only {} of {cases} cases ran",
        ran.get()
    );
}

// ---------------------------------------------------------------------------------------------
// Backward passes and transposed convolutions
// ---------------------------------------------------------------------------------------------

/// Whether `e` says a size does not fit (the host, a buffer or the shaders' index arithmetic).
fn is_size_error(e: &wgconv::Error) -> bool {
    matches!(
        e,
        wgconv::Error::TooLarge { .. }
            | wgconv::Error::DeviceLimit { .. }
            | wgconv::Error::SizeOverflow { .. }
            | wgconv::Error::HostMemory { .. }
    )
}

/// Whether a problem reaches past what the shaders index: an extent (padded size, kernel reach,
/// stride, ...) past `i32`, or a tensor (its batch counted as at least 1) with more than `u32`
/// elements. Only such problems may get a size error from a backward pass or a transposed
/// convolution whose tensors are small.
fn past_shader_indexing(extents: &[u128], tensors: &[[usize; 4]]) -> bool {
    let elements = |dims: &[usize; 4]| {
        dims.iter()
            .fold(1u128, |acc, &d| acc.saturating_mul(d.max(1) as u128))
    };
    extents.iter().any(|&v| v > i32::MAX as u128)
        || tensors.iter().any(|t| elements(t) > u128::from(u32::MAX))
}

fn conv_past_indexing(s: &Conv2dShape) -> bool {
    let u = |v: usize| v as u128;
    let reach = |k: usize, d: usize| (u(k) - 1) * u(d);
    past_shader_indexing(
        &[
            u(s.in_h) + u(s.pad_top) + u(s.pad_bottom),
            u(s.in_w) + u(s.pad_left) + u(s.pad_right),
            reach(s.kernel_h, s.dilation_h),
            reach(s.kernel_w, s.dilation_w),
            u(s.stride_h),
            u(s.stride_w),
            u(s.dilation_h),
            u(s.dilation_w),
        ],
        &[s.input_shape(), s.weight_shape(), s.output_shape()],
    )
}

fn transposed_past_indexing(t: &ConvTranspose2dShape) -> bool {
    let u = |v: usize| v as u128;
    let reach = |k: usize, d: usize| (u(k) - 1) * u(d);
    let field = |n: usize, s: usize, k: usize, d: usize| (u(n) - 1) * u(s) + reach(k, d);
    past_shader_indexing(
        &[
            u(t.out_h) + u(t.pad_top),
            u(t.out_w) + u(t.pad_left),
            reach(t.kernel_h, t.dilation_h),
            reach(t.kernel_w, t.dilation_w),
            field(t.in_h, t.stride_h, t.kernel_h, t.dilation_h),
            field(t.in_w, t.stride_w, t.kernel_w, t.dilation_w),
            u(t.stride_h),
            u(t.stride_w),
            u(t.dilation_h),
            u(t.dilation_w),
        ],
        &[t.input_shape(), t.weight_shape(), t.output_shape()],
    )
}

fn fail(context: &str) -> impl Fn(wgconv::Error) -> TestCaseError + '_ {
    move |e| TestCaseError::fail(format!("{context}: {e}"))
}

/// The shape of the `grad_output` handed to a backward pass: the forward output's (mostly), one
/// dimension of it changed, or anything small.
#[derive(Clone, Debug)]
enum GradShape {
    Output,
    SetDim(usize, usize),
    Other(Vec<usize>),
}

fn grad_shape() -> impl Strategy<Value = GradShape> {
    prop_oneof![
        8 => Just(GradShape::Output),
        1 => (0usize..4, 0usize..=8).prop_map(|(i, v)| GradShape::SetDim(i, v)),
        1 => prop::collection::vec(0usize..=4, 0..=5).prop_map(GradShape::Other),
    ]
}

impl GradShape {
    /// The shape for the problem `p` whose forward shape is `forward` (for refused shapes, a
    /// plausible guess `[N, O, 1, 1]`).
    fn resolve(&self, forward: &wgconv::Result<Conv2dShape>, p: &Problem) -> Vec<usize> {
        let output = match forward {
            Ok(s) => s.output_shape().to_vec(),
            Err(_) => vec![
                p.input.first().copied().unwrap_or(1),
                p.weight.first().copied().unwrap_or(1),
                1,
                1,
            ],
        };
        match self {
            GradShape::Output => output,
            &GradShape::SetDim(i, v) => {
                let mut shape = output;
                shape[i] = v;
                shape
            }
            GradShape::Other(shape) => shape.clone(),
        }
    }
}

/// `conv2d_grad_bias` of an empty gradient shaped like `dims` with dimension `zero` set to 0
/// (its other dimensions as absurd as the problem's): zeros of `[O]` for a 4-D shape `[N, O, P, Q]`
/// or a 3-D (unbatched) `[O, P, Q]`, or a size error when that vector does not fit;
/// [`wgconv::Error::InputRank`] otherwise.
fn empty_bias_gradient(dims: &[usize], zero: prop::sample::Index) -> TestCaseResult {
    let engine = engine();
    let mut shape = if dims.is_empty() {
        vec![0]
    } else {
        dims.to_vec()
    };
    let i = zero.index(shape.len());
    shape[i] = 0;
    let context = format!("conv2d_grad_bias of an empty grad_output {shape:?}");
    // An empty tensor whose other dimensions overflow may be refused (as `Tensor` refuses it).
    let gy = match engine.alloc(&shape) {
        Ok(gy) => gy,
        Err(e) => {
            prop_assert!(is_size_error(&e), "{context}: alloc gave {e}");
            return Ok(());
        }
    };
    // A 3-D gradient is an unbatched one, `[O, P, Q]`.
    let (&[_, o, _, _] | &[o, _, _]) = &shape[..] else {
        let got = engine.conv2d_grad_bias(&gy);
        prop_assert!(
            matches!(got, Err(wgconv::Error::InputRank { .. })),
            "{context}: {:?}",
            got.map(|b| b.shape().to_vec())
        );
        return Ok(());
    };
    // Zeros of up to 4 MiB, or a vector too large for any buffer (never gigabytes of zeros).
    if o > 1 << 20 && o as u128 * 4 <= u128::from(engine.limits().max_buffer) {
        return Ok(());
    }
    match engine.conv2d_grad_bias(&gy) {
        Ok(b) => {
            prop_assert_eq!(b.shape(), &[o][..], "{}", context);
            if o <= MAX_HOST_ELEMENTS {
                let b = engine.download(&b).map_err(fail(&context))?;
                prop_assert!(
                    b.data().iter().all(|&v| v == 0.0),
                    "{context}: not zeros: {:?}",
                    &b.data()[..o.min(8)]
                );
            }
        }
        Err(e) => prop_assert!(is_size_error(&e) && o > MAX_HOST_ELEMENTS, "{context}: {e}"),
    }
    Ok(())
}

#[test]
fn gpu_backward_is_an_error_or_matches_the_reference() {
    let engine = engine();
    let ran = Cell::new(0usize);
    check(
        "gpu_backward_is_an_error_or_matches_the_reference",
        0x5eed_a007,
        BACKWARD_CASES,
        (
            prop_oneof![5 => problem(), 1 => huge_parameter_problem()],
            any::<u64>(),
            grad_shape(),
            any::<prop::sample::Index>(),
        ),
        |(p, seed, grad, zero)| {
            let with_bias = p.bias.is_some();
            // The backward pass never sees a bias shape: only whether to return its gradient.
            let forward = Conv2dShape::new(&p.input, &p.weight, None, &p.params);
            let gy_shape = grad.resolve(&forward, &p);
            let context = format!("{}, grad_output {gy_shape:?}", p.describe());
            if let Ok(s) = &forward {
                // Everything derived from an accepted shape is panic-free.
                let t = ConvTranspose2dShape::input_gradient_of(s);
                let _ = (t.input_len(), t.weight_len(), t.output_len(), t.flops());
                prop_assert_eq!(t.input_shape(), s.output_shape());
                prop_assert_eq!(t.weight_shape(), s.weight_shape());
                prop_assert_eq!(t.output_shape(), s.input_shape());
            }
            let expected = match forward {
                Ok(s) if gy_shape[..] != s.output_shape() => Err(wgconv::Error::GradOutputShape {
                    expected: s.output_shape().to_vec(),
                    got: gy_shape.clone(),
                }),
                other => other,
            };
            // The bias gradient of nothing, with the problem's dimensions around the zero.
            let gy_like = match (&p.input[..], &p.weight[..]) {
                (&[n, _, h, w], &[o, ..]) => vec![n, o, h, w],
                _ => p.input.clone(),
            };
            empty_bias_gradient(&gy_like, zero)?;

            // Tensors only where they are small; absurd problems stop at the shapes.
            if [&p.input, &p.weight, &gy_shape]
                .iter()
                .any(|s| small_len(s).is_none())
            {
                return Ok(());
            }
            if let Ok(s) = &expected {
                if s.output_len() > 0 && macs(s) > MAX_MACS {
                    return Ok(());
                }
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut random =
                |shape: &[usize]| Tensor::from_fn(shape, |_| rng.random_range(-1.0f32..=1.0));
            let host = (|| -> wgconv::Result<_> {
                let x = random(&p.input)?;
                let w = random(&p.weight)?;
                let gy = random(&gy_shape)?;
                Ok((x, w, gy))
            })();
            let uploaded = match &host {
                Ok((x, w, gy)) => [x, w, gy].map(|t| engine.upload(t)),
                // A shape no host tensor can have (ndarray's rule) can still be an empty GPU
                // tensor; the shapes must be refused.
                Err(e) => {
                    prop_assert!(
                        expected.is_err(),
                        "{context}: a tensor cannot be created ({e}), yet the shapes are accepted"
                    );
                    [&p.input, &p.weight, &gy_shape].map(|s| engine.alloc(s))
                }
            };
            let [gx, gw, ggy] = uploaded;
            // An empty GPU tensor whose other dimensions overflow is refused (order matters).
            if host.is_err() {
                if let Some(Err(e)) = [&gx, &gw, &ggy].into_iter().find(|t| t.is_err()) {
                    prop_assert!(is_size_error(e), "{context}: alloc gave {e}");
                    return Ok(());
                }
            }
            let on_error = fail(&context);
            let (gx, gw, ggy) = (
                gx.map_err(&on_error)?,
                gw.map_err(&on_error)?,
                ggy.map_err(&on_error)?,
            );
            let got = engine.conv2d_backward(&gx, &gw, &ggy, &p.params, with_bias);
            let s = match expected {
                Err(want) => {
                    prop_assert!(
                        same_error(&got, &want),
                        "{context}: shapes refused ({want}) but conv2d_backward gave {:?}",
                        got.map(|g| g.input.shape().to_vec())
                    );
                    for (name, got) in [
                        (
                            "conv2d_grad_input",
                            engine.conv2d_grad_input(&ggy, &gw, &p.input, &p.params),
                        ),
                        (
                            "conv2d_grad_weight",
                            engine.conv2d_grad_weight(&gx, &ggy, &p.weight, &p.params),
                        ),
                    ] {
                        prop_assert!(
                            same_error(&got, &want),
                            "{context}: shapes refused ({want}) but {name} gave {:?}",
                            got.map(|g| g.shape().to_vec())
                        );
                    }
                    if let Ok((x, w, gy)) = &host {
                        let got = cpu::reference::conv2d_backward_f64(x, w, gy, &p.params);
                        prop_assert!(
                            same_error(&got, &want),
                            "{context}: shapes refused ({want}) but the reference did not"
                        );
                    }
                    return Ok(());
                }
                Ok(s) => s,
            };
            let grads = match got {
                Ok(g) => g,
                Err(e) => {
                    prop_assert!(
                        is_size_error(&e) && conv_past_indexing(&s),
                        "{context}: {e}"
                    );
                    return Ok(());
                }
            };
            // (Accepted shapes have host tensors: checked above.)
            let Ok((x, w, gy)) = &host else {
                return Err(TestCaseError::fail(format!("{context}: no host tensors")));
            };
            let want =
                cpu::reference::conv2d_backward_f64(x, w, gy, &p.params).map_err(fail(&context))?;
            prop_assert_eq!(want.shape, s);
            let input = engine.download(&grads.input).map_err(fail(&context))?;
            prop_assert_eq!(input.shape(), &p.input[..]);
            let weight = engine.download(&grads.weight).map_err(fail(&context))?;
            prop_assert_eq!(weight.shape(), &p.weight[..]);
            let bias = match &grads.bias {
                Some(b) => {
                    prop_assert!(
                        with_bias,
                        "{context}: a bias gradient for a layer without bias"
                    );
                    let bias = engine.download(b).map_err(fail(&context))?;
                    prop_assert_eq!(bias.shape(), &[s.out_channels][..]);
                    Some(bias)
                }
                None => {
                    prop_assert!(!with_bias, "{context}: no bias gradient");
                    None
                }
            };
            let got = Grads {
                input: input.data(),
                weight: weight.data(),
                bias: bias.as_ref().map(Tensor::data),
            };
            compare_grads(&context, &want, got, (max_abs(x), max_abs(w), max_abs(gy)))
                .map_err(TestCaseError::fail)?;
            ran.set(ran.get() + 1);
            Ok(())
        },
    );
    let cases = case_count(BACKWARD_CASES) as usize;
    eprintln!("{} of {cases} cases ran on the GPU", ran.get());
    assert!(
        cases < 100 || ran.get() * 5 >= cases,
        "only {} of {cases} cases ran on the GPU",
        ran.get()
    );
}

/// One transposed convolution's shapes and parameters, valid or not.
#[derive(Clone, Debug)]
struct Transposed {
    input: Vec<usize>,
    weight: Vec<usize>,
    bias: Option<Vec<usize>>,
    params: ConvTranspose2dParams,
}

impl Transposed {
    fn describe(&self) -> String {
        format!(
            "conv_transpose2d input {:?} weight {:?} bias {:?} {:?}",
            self.input, self.weight, self.bias, self.params
        )
    }

    fn shape(&self) -> wgconv::Result<ConvTranspose2dShape> {
        ConvTranspose2dShape::new(
            &self.input,
            &self.weight,
            self.bias.as_deref(),
            &self.params,
        )
    }
}

/// A small transposed convolution, usually valid (its padding may leave no output): batch 0-3,
/// groups 1-3 with 1-6 channels in (or 1, depthwise) and 1-6 out per group, kernels up to 5x5,
/// stride and dilation 1-3, padding 0-3, output padding below the stride or dilation, inputs
/// 1-6 pixels a side, with or without bias.
fn small_transposed() -> impl Strategy<Value = Transposed> {
    (
        (
            0usize..=3,
            1usize..=3,
            1usize..=6,
            1usize..=6,
            prop::bool::weighted(0.25),
        ),
        (
            1usize..=5,
            1usize..=5,
            1usize..=3,
            1usize..=3,
            1usize..=3,
            1usize..=3,
        ),
        (
            (0usize..=3, 0usize..=3, 0usize..=2, 0usize..=2),
            (1usize..=6, 1usize..=6, any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (n, groups, cig, cog, depthwise),
                (kh, kw, sh, sw, dh, dw),
                ((ph, pw, oph, opw), (h, w, bias)),
            )| {
                let ci = if depthwise { groups } else { cig * groups };
                Transposed {
                    input: vec![n, ci, h, w],
                    weight: vec![ci, cog, kh, kw],
                    bias: bias.then(|| vec![cog * groups]),
                    params: ConvTranspose2dParams {
                        stride: (sh, sw),
                        padding: (ph, pw),
                        output_padding: (oph % sh.max(dh), opw % sw.max(dw)),
                        dilation: (dh, dw),
                        groups,
                    },
                }
            },
        )
}

/// One change that may make a transposed convolution invalid or absurd.
#[derive(Clone, Debug)]
enum TransposedMutation {
    InputDim(usize, usize),
    WeightDim(usize, usize),
    Input(Vec<usize>),
    Weight(Vec<usize>),
    Bias(Option<Vec<usize>>),
    Groups(usize),
    Stride(usize, usize),
    Padding(usize, usize),
    OutputPadding(usize, usize),
    Dilation(usize, usize),
}

fn transposed_mutation() -> impl Strategy<Value = TransposedMutation> {
    use TransposedMutation as M;
    prop_oneof![
        3 => (0usize..4, count()).prop_map(|(i, v)| M::InputDim(i, v)),
        3 => (0usize..4, count()).prop_map(|(i, v)| M::WeightDim(i, v)),
        1 => dims().prop_map(M::Input),
        1 => dims().prop_map(M::Weight),
        1 => prop::option::of(prop::collection::vec(count(), 0..=2)).prop_map(M::Bias),
        2 => count().prop_map(M::Groups),
        2 => (count(), count()).prop_map(|(h, w)| M::Stride(h, w)),
        2 => (count(), count()).prop_map(|(h, w)| M::Padding(h, w)),
        2 => (count(), count()).prop_map(|(h, w)| M::OutputPadding(h, w)),
        2 => (count(), count()).prop_map(|(h, w)| M::Dilation(h, w)),
    ]
}

fn apply_transposed(mut p: Transposed, mutations: Vec<TransposedMutation>) -> Transposed {
    use TransposedMutation as M;
    for m in mutations {
        match m {
            M::InputDim(i, v) => {
                if let Some(d) = p.input.get_mut(i) {
                    *d = v;
                }
            }
            M::WeightDim(i, v) => {
                if let Some(d) = p.weight.get_mut(i) {
                    *d = v;
                }
            }
            M::Input(d) => p.input = d,
            M::Weight(d) => p.weight = d,
            M::Bias(b) => p.bias = b,
            M::Groups(g) => p.params.groups = g,
            M::Stride(h, w) => p.params.stride = (h, w),
            M::Padding(h, w) => p.params.padding = (h, w),
            M::OutputPadding(h, w) => p.params.output_padding = (h, w),
            M::Dilation(h, w) => p.params.dilation = (h, w),
        }
    }
    p
}

/// Anything: ranks 0-6, any sizes and parameters.
fn absurd_transposed() -> impl Strategy<Value = Transposed> {
    (
        dims(),
        dims(),
        prop::option::of(prop::collection::vec(count(), 0..=2)),
        (count(), count(), count(), count(), count()),
        (count(), count(), count(), count()),
    )
        .prop_map(
            |(input, weight, bias, (sh, sw, ph, pw, groups), (oph, opw, dh, dw))| Transposed {
                input,
                weight,
                bias,
                params: ConvTranspose2dParams {
                    stride: (sh, sw),
                    padding: (ph, pw),
                    output_padding: (oph, opw),
                    dilation: (dh, dw),
                    groups,
                },
            },
        )
}

/// Half small, a third mutated (1-3 changes), the rest absurd.
fn transposed() -> impl Strategy<Value = Transposed> {
    prop_oneof![
        6 => small_transposed(),
        4 => (small_transposed(), prop::collection::vec(transposed_mutation(), 1..=3))
            .prop_map(|(p, m)| apply_transposed(p, m)),
        2 => absurd_transposed(),
    ]
}

/// How one axis of a small problem is made absurd while its output stays small.
#[derive(Clone, Copy, Debug)]
enum HugeAxis {
    Keep,
    /// A stride past the padded input: one output row.
    Stride,
    /// A huge stride, and paddings of up to half of it on each side.
    StrideAndPadding,
    /// A 1-tap kernel with a huge dilation.
    Dilation,
    /// (Transposed only) a 1-tap kernel, a huge dilation and an output padding below it, with the
    /// padding cancelling most of the output padding.
    OutputPadding,
}

fn huge_axis() -> impl Strategy<Value = (HugeAxis, usize, usize, usize)> {
    let kind = prop_oneof![
        2 => Just(HugeAxis::Keep),
        2 => Just(HugeAxis::Stride),
        2 => Just(HugeAxis::StrideAndPadding),
        1 => Just(HugeAxis::Dilation),
        1 => Just(HugeAxis::OutputPadding),
    ];
    (kind, huge(), any::<usize>(), any::<usize>())
}

/// A small valid problem with huge strides, paddings or dilations that still leave a small
/// output (so it runs): the index arithmetic past `i32` or `u32` with few elements.
fn huge_parameter_problem() -> impl Strategy<Value = Problem> {
    (small_problem(), huge_axis(), huge_axis()).prop_map(|(mut p, h, w)| {
        let kernel = (p.weight[2], p.weight[3]);
        let (t, b, l, r) = p.params.padding.resolve(kernel, p.params.dilation);
        let mut pads = [(t, b), (l, r)];
        for (axis, (kind, huge, x, y)) in [h, w].into_iter().enumerate() {
            let huge = huge.max(1);
            let stride = [&mut p.params.stride.0, &mut p.params.stride.1];
            let dilation = [&mut p.params.dilation.0, &mut p.params.dilation.1];
            match kind {
                HugeAxis::Keep => continue,
                HugeAxis::Stride => *stride[axis] = huge,
                HugeAxis::StrideAndPadding => {
                    *stride[axis] = huge;
                    pads[axis] = (x % (huge / 2 + 1), y % (huge / 2 + 1));
                }
                HugeAxis::Dilation | HugeAxis::OutputPadding => {
                    p.weight[2 + axis] = 1;
                    *dilation[axis] = huge;
                }
            }
        }
        let [(t, b), (l, r)] = pads;
        p.params.padding = Padding::explicit(t, b, l, r);
        p
    })
}

/// A small transposed convolution with huge strides, paddings, dilations or output paddings that
/// still leave a small output (so it runs).
fn huge_parameter_transposed() -> impl Strategy<Value = Transposed> {
    (small_transposed(), huge_axis(), huge_axis()).prop_map(|(mut p, h, w)| {
        for (axis, (kind, huge, x, _)) in [h, w].into_iter().enumerate() {
            let huge = huge.max(1);
            let len = p.input[2 + axis];
            let ConvTranspose2dParams {
                stride,
                padding,
                output_padding,
                dilation,
                ..
            } = &mut p.params;
            let [stride, padding, output_padding, dilation] =
                [stride, padding, output_padding, dilation].map(|pair| {
                    if axis == 0 {
                        &mut pair.0
                    } else {
                        &mut pair.1
                    }
                });
            match kind {
                HugeAxis::Keep => {}
                // One input row: the output is the kernel's reach plus the output padding.
                HugeAxis::Stride => {
                    *stride = huge;
                    p.input[2 + axis] = 1;
                }
                // (len - 1) * stride, less twice the padding: at most 1.
                HugeAxis::StrideAndPadding => {
                    *stride = huge;
                    *padding =
                        usize::try_from((len as u128 - 1) * huge as u128 / 2).unwrap_or(usize::MAX);
                }
                HugeAxis::Dilation => {
                    p.weight[2 + axis] = 1;
                    *dilation = huge;
                }
                HugeAxis::OutputPadding => {
                    p.weight[2 + axis] = 1;
                    *dilation = huge;
                    *output_padding = x % huge;
                    *padding = *output_padding / 2;
                }
            }
        }
        p
    })
}

/// PyTorch's `conv_transpose2d` rules in `u128`: the output shape, or `None` where PyTorch refuses
/// the problem or a tensor's byte size (with the batch counted as at least 1) does not fit this
/// host.
fn model_transposed(p: &Transposed) -> Option<[usize; 4]> {
    let ConvTranspose2dParams {
        stride: (sh, sw),
        padding: (ph, pw),
        output_padding: (oph, opw),
        dilation: (dh, dw),
        groups: g,
    } = p.params;
    if [sh, sw, dh, dw, g].contains(&0) {
        return None;
    }
    // PyTorch: "output padding must be smaller than either stride or dilation".
    if !(oph < sh || oph < dh) || !(opw < sw || opw < dw) {
        return None;
    }
    let &[n, ci, h, w] = &p.input[..] else {
        return None;
    };
    let &[wi, cog, kh, kw] = &p.weight[..] else {
        return None;
    };
    if [ci, h, w, wi, cog, kh, kw].contains(&0) || wi % g != 0 || ci != wi {
        return None;
    }
    let fits = |v: u128| v <= usize::MAX as u128;
    let co = cog as u128 * g as u128;
    if !fits(co) {
        return None;
    }
    if let Some(b) = &p.bias {
        if b.len() != 1 || b[0] as u128 != co {
            return None;
        }
    }
    // (len - 1) * stride + dilation * (k - 1) + output_padding + 1 - 2 * padding
    let axis = |len: usize, s: usize, pad: usize, d: usize, k: usize, op: usize| {
        let grown = ((len as u128 - 1) * s as u128)
            .checked_add(d as u128 * (k as u128 - 1))?
            .checked_add(op as u128 + 1)?;
        let cut = 2 * pad as u128;
        (grown > cut && fits(grown - cut)).then(|| grown - cut)
    };
    let out_h = axis(h, sh, ph, dh, kh, oph)?;
    let out_w = axis(w, sw, pw, dw, kw, opw)?;
    let bytes = |dims: [u128; 4]| {
        dims.contains(&0)
            || dims
                .iter()
                .try_fold(4u128, |acc, &d| acc.checked_mul(d))
                .is_some_and(fits)
    };
    let (n, ci, h, w) = (n as u128, ci as u128, h as u128, w as u128);
    // As for the convolution, the batch counts as at least 1: an empty batch must not hide an
    // image too large for the host.
    let images = n.max(1);
    if !bytes([images, ci, h, w])
        || !bytes([ci, cog as u128, kh as u128, kw as u128])
        || !bytes([images, co, out_h, out_w])
    {
        return None;
    }
    Some([n as usize, co as usize, out_h as usize, out_w as usize])
}

/// Multiply-adds of a transposed convolution (saturating).
fn transposed_macs(t: &ConvTranspose2dShape) -> usize {
    t.input_len()
        .saturating_mul(t.out_channels / t.groups)
        .saturating_mul(t.kernel_h * t.kernel_w)
}

#[test]
fn transposed_convolution_is_an_error_or_matches_the_reference() {
    let engine = engine();
    let ran = Cell::new(0usize);
    check(
        "transposed_convolution_is_an_error_or_matches_the_reference",
        0x5eed_a008,
        TRANSPOSED_CASES,
        (
            prop_oneof![5 => transposed(), 1 => huge_parameter_transposed()],
            any::<u64>(),
        ),
        |(p, seed)| {
            let context = p.describe();
            let shape = p.shape();
            match (&shape, model_transposed(&p)) {
                (Ok(t), Some(out)) => {
                    prop_assert_eq!(t.output_shape(), out, "{}", context);
                    prop_assert_eq!(&t.input_shape()[..], &p.input[..]);
                    prop_assert_eq!(&t.weight_shape()[..], &p.weight[..]);
                    prop_assert_eq!(t.has_bias, p.bias.is_some());
                    // Everything derived from an accepted shape is panic-free.
                    let _ = (t.input_len(), t.weight_len(), t.output_len(), t.flops());
                }
                (Err(_), None) => {}
                (Ok(t), None) => prop_assert!(
                    false,
                    "{context}: accepted, but PyTorch refuses it or a size overflows: {t:?}"
                ),
                (Err(e), Some(out)) => {
                    prop_assert!(false, "{context}: refused ({e}), but PyTorch gives {out:?}")
                }
            }

            // Tensors only where they are small; absurd problems stop at the shapes.
            let bias = p.bias.as_deref();
            if small_len(&p.input).is_none()
                || small_len(&p.weight).is_none()
                || bias.is_some_and(|b| small_len(b).is_none())
            {
                return Ok(());
            }
            if let Ok(t) = &shape {
                if t.output_len() > 0
                    && (t.output_len() > MAX_OUTPUT || transposed_macs(t) > MAX_MACS)
                {
                    return Ok(());
                }
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut random =
                |shape: &[usize]| Tensor::from_fn(shape, |_| rng.random_range(-1.0f32..=1.0));
            let host = (|| -> wgconv::Result<_> {
                let x = random(&p.input)?;
                let w = random(&p.weight)?;
                let b = bias.map(&mut random).transpose()?;
                Ok((x, w, b))
            })();
            let (x, w, b) = match host {
                Ok(t) => t,
                // A shape no host tensor can have (ndarray's rule) can still be an empty GPU
                // tensor: an empty batch may leave the other dimensions past `isize` in both
                // input and output.
                Err(_) => {
                    let gpu = (|| -> wgconv::Result<_> {
                        let x = engine.alloc(&p.input)?;
                        let w = engine.alloc(&p.weight)?;
                        let b = bias.map(|b| engine.alloc(b)).transpose()?;
                        Ok((x, w, b))
                    })();
                    let (x, w, b) = match gpu {
                        Ok(t) => t,
                        // An empty GPU tensor whose other dimensions overflow is refused too.
                        Err(e) => {
                            prop_assert!(is_size_error(&e), "{context}: alloc gave {e}");
                            return Ok(());
                        }
                    };
                    let got = engine.conv_transpose2d_gpu(&x, &w, b.as_ref(), &p.params);
                    match (&shape, got) {
                        (Err(want), got) => prop_assert!(
                            same_error(&got, want),
                            "{context}: shapes refused ({want}) but conv_transpose2d_gpu gave {:?}",
                            got.map(|y| y.shape().to_vec())
                        ),
                        (Ok(t), Ok(y)) => prop_assert!(
                            y.shape() == t.output_shape() && y.is_empty(),
                            "{context}: conv_transpose2d_gpu gave {:?}",
                            y.shape()
                        ),
                        (Ok(t), Err(e)) => prop_assert!(
                            is_size_error(&e) && transposed_past_indexing(t),
                            "{context}: {e}"
                        ),
                    }
                    return Ok(());
                }
            };
            let got = engine.conv_transpose2d(&x, &w, b.as_ref(), &p.params);
            let t = match shape {
                Err(want) => {
                    prop_assert!(
                        same_error(&got, &want),
                        "{context}: shapes refused ({want}) but conv_transpose2d gave {:?}",
                        outcome(&got)
                    );
                    let got = cpu::reference::conv_transpose2d_f64(&x, &w, b.as_ref(), &p.params);
                    prop_assert!(
                        same_error(&got, &want),
                        "{context}: shapes refused ({want}) but the reference did not"
                    );
                    return Ok(());
                }
                Ok(t) => t,
            };
            let y = match got {
                Ok(y) => y,
                Err(e) => {
                    prop_assert!(
                        is_size_error(&e) && transposed_past_indexing(&t),
                        "{context}: {e}"
                    );
                    return Ok(());
                }
            };
            prop_assert_eq!(y.shape(), &t.output_shape()[..]);
            let (rs, want) = cpu::reference::conv_transpose2d_f64(&x, &w, b.as_ref(), &p.params)
                .map_err(fail(&context))?;
            prop_assert_eq!(rs, t);
            let tol = tolerance(
                t.in_channels / t.groups * t.kernel_h * t.kernel_w,
                max_abs(&x),
                max_abs(&w),
                b.as_ref().map_or(0.0, max_abs),
            );
            compare(&context, t.output_shape(), y.data(), &want, tol)
                .map_err(TestCaseError::fail)?;
            ran.set(ran.get() + 1);
            Ok(())
        },
    );
    let cases = case_count(TRANSPOSED_CASES) as usize;
    eprintln!("{} of {cases} cases ran on the GPU", ran.get());
    assert!(
        cases < 100 || ran.get() * 5 >= cases,
        "only {} of {cases} cases ran on the GPU",
        ran.get()
    );
}

// ---------------------------------------------------------------------------------------------
// .npy files
// ---------------------------------------------------------------------------------------------

/// A `.npy` file, well formed or not, and whether it is a well-formed float32 one.
#[derive(Clone, Debug)]
struct NpyFile {
    bytes: Vec<u8>,
    /// `(shape, values)` when the file is a valid float32 `.npy` of these values in C order.
    valid: Option<(Vec<usize>, Vec<f32>)>,
}

/// A header dictionary from parts, some of them wrong.
fn npy_file() -> impl Strategy<Value = NpyFile> {
    let descr = prop::sample::select(vec![
        "'<f4'",
        "'<f4'",
        "'<f4'",
        "'>f4'",
        "'<f8'",
        "'|u1'",
        "'<i4'",
        "'f4'",
        "'<f2'",
        "0",
        "'<f4",
        "[('a', '<f4')]",
    ]);
    let order = prop::sample::select(vec!["False", "False", "False", "True", "0", "None"]);
    let shape = prop::collection::vec(count(), 0..=4);
    let version = prop::sample::select(vec![1u8, 1, 2, 3, 0, 4]);
    (
        descr,
        order,
        shape,
        version,
        any::<bool>(),
        prop::collection::vec(any::<f32>(), 0..=16),
        any::<bool>(),
    )
        .prop_map(|(descr, order, shape, version, exact, extra, trailing)| {
            let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
            let mut dict =
                format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': ({dims}), }}");
            // numpy pads the header with spaces to a multiple of 64 bytes, newline last.
            let prefix = if version == 1 { 10 } else { 12 };
            while (prefix + dict.len() + 1) % 64 != 0 {
                dict.push(' ');
            }
            dict.push('\n');
            let mut bytes = b"\x93NUMPY".to_vec();
            bytes.extend([version, 0]);
            if version == 1 {
                bytes.extend((dict.len() as u16).to_le_bytes());
            } else {
                bytes.extend((dict.len() as u32).to_le_bytes());
            }
            bytes.extend(dict.as_bytes());
            // The data: exactly what the header promises (when small), or a few values.
            let len = small_len(&shape).filter(|_| exact);
            let values: Vec<f32> = match len {
                Some(len) => (0..len)
                    .map(|i| extra.get(i % 16).copied().unwrap_or(i as f32))
                    .collect(),
                None => extra,
            };
            let big_endian = descr == "'>f4'";
            for v in &values {
                bytes.extend(if big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            }
            if trailing {
                bytes.push(0);
            }
            // numpy's own limit: the non-zero dimensions' bytes must fit in an isize.
            let addressable = shape
                .iter()
                .filter(|&&d| d != 0)
                .try_fold(4usize, |acc, &d| acc.checked_mul(d))
                .is_some_and(|bytes| bytes <= isize::MAX as usize);
            let well_formed = matches!(descr, "'<f4'" | "'>f4'")
                && order == "False"
                && matches!(version, 1..=3)
                && len.is_some()
                && addressable
                && !trailing;
            NpyFile {
                bytes,
                valid: well_formed.then_some((shape, values)),
            }
        })
}

/// Byte-level damage to a file: overwritten, inserted and removed bytes, a truncation.
#[derive(Clone, Debug)]
enum Damage {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<usize>().prop_map(Damage::Remove),
        any::<usize>().prop_map(Damage::Truncate),
    ]
}

/// The file after `damage`; no longer claimed valid (a changed byte may or may not matter).
fn damaged(mut f: NpyFile, damage: Vec<Damage>) -> NpyFile {
    for d in damage {
        let n = f.bytes.len();
        match d {
            Damage::Set(i, b) if n > 0 => f.bytes[i % n] = b,
            Damage::Insert(i, b) => f.bytes.insert(i % (n + 1), b),
            Damage::Remove(i) if n > 0 => {
                f.bytes.remove(i % n);
            }
            Damage::Truncate(i) => f.bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
    f.valid = None;
    f
}

fn any_npy() -> impl Strategy<Value = NpyFile> {
    prop_oneof![
        3 => npy_file(),
        3 => (npy_file(), prop::collection::vec(damage(), 1..=4)).prop_map(|(f, d)| damaged(f, d)),
        1 => prop::collection::vec(any::<u8>(), 0..=300)
            .prop_map(|bytes| NpyFile { bytes, valid: None }),
    ]
}

#[test]
fn read_npy_is_an_error_or_a_consistent_tensor() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("case.npy");
    check(
        "read_npy_is_an_error_or_a_consistent_tensor",
        0x5eed_a005,
        NPY_CASES,
        any_npy(),
        |f| {
            std::fs::write(&path, &f.bytes).expect("write the case");
            let got = io::read_npy(&path);
            if let Ok(t) = &got {
                let len = t.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                prop_assert_eq!(len, Some(t.len()), "shape {:?}", t.shape());
            }
            if let Some((shape, values)) = &f.valid {
                let t = match got {
                    Ok(t) => t,
                    Err(e) => return Err(TestCaseError::fail(format!("valid file refused: {e}"))),
                };
                prop_assert_eq!(t.shape(), &shape[..]);
                let same = t
                    .data()
                    .iter()
                    .zip(values)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                prop_assert!(same, "values differ");
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Suite files
// ---------------------------------------------------------------------------------------------

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => count().prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "-1", "+3", "0x10", "1e3", "3.0", "99999999999999999999999", "", "٣",
        ])
        .prop_map(str::to_string),
    ]
}

/// A suite line from its parts, near the format `name C H W -> K RxS [stride S] [pad P]`.
fn suite_line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["a", "conv", "a", "b", "->", "stride", "x", "名"]);
    let option = prop_oneof![
        (Just("stride"), number()).prop_map(|(k, v)| format!("{k} {v}")),
        (Just("pad"), number()).prop_map(|(k, v)| format!("{k} {v}")),
        prop::sample::select(vec!["stride", "pad", "->", "x", "# comment", "#"])
            .prop_map(str::to_string),
    ];
    (
        name,
        prop::collection::vec(number(), 2..=4),
        prop::sample::select(vec!["->", "->", "->", "-", "=>", ""]),
        number(),
        (
            number(),
            prop::sample::select(vec!["x", "x", "X", "*", "xx"]),
            number(),
        ),
        prop::collection::vec(option, 0..=3),
        prop::sample::select(vec![" ", " ", "\t", "  "]),
    )
        .prop_map(|(name, sizes, arrow, k, (r, x, s), options, sep)| {
            let mut tokens = vec![name.to_string()];
            tokens.extend(sizes);
            tokens.extend([arrow.to_string(), k, format!("{r}{x}{s}")]);
            tokens.extend(options);
            tokens.join(sep)
        })
}

fn suite_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(suite_line(), 0..=4).prop_map(|l| l.join("\n")),
        1 => prop::collection::vec(suite_line(), 0..=4).prop_map(|l| l.join("\r\n")),
        1 => any::<String>(),
        1 => "[ 0-9a-z#>x\\-\n\t]{0,80}",
    ]
}

#[test]
fn parse_suite_is_an_error_or_valid_layers() {
    check(
        "parse_suite_is_an_error_or_valid_layers",
        0x5eed_a006,
        SUITE_CASES,
        suite_text(),
        |text| {
            if let Ok(layers) = bench::parse_suite_str(&text, Path::new("suite.txt")) {
                prop_assert!(!layers.is_empty());
                for (i, layer) in layers.iter().enumerate() {
                    prop_assert!(layer.shape(1).is_ok(), "{layer:?}");
                    prop_assert!(layers[..i].iter().all(|l| l.name != layer.name));
                    let _ = layer.shape(0);
                    let _ = layer.shape(usize::MAX);
                }
            }
            Ok(())
        },
    );
}
