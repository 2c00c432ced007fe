//! `cpu::fast::conv2d` (im2col + GEMM, pointwise GEMM, direct depthwise) against the f64 reference.
//!
//! Seeded and reproducible: `WGCONV_TEST_SEED=N` shifts every random test's seed by N (default 0).
//! A failure prints the seed, the configuration, the thread count, the first bad index, both values
//! and the tolerance. Outputs start as NaN in these (debug-assertion) builds, so an element the
//! fast path skipped fails loudly.
//!
//! Tolerance: `common::tolerance`, `c = 1`. Its argument (random-walk growth of f32 rounding over a
//! K-term zero-mean sum) holds for the GEMM's order too: blocking splits the sum into partial sums
//! whose errors add the same way or better (shorter chains), and fused multiply-adds round once
//! per term instead of twice. The direct depthwise loop sums `kh*kw` terms in order, bias last.

mod common;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::ThreadPool;
use wgconv::{cpu, Conv2dParams, Padding, Tensor};

use common::{
    compare, describe, max_abs, random_case, random_tensor, seed_offset, tolerance, Case,
};

/// Upper bound on multiply-adds per random configuration, to keep the naive reference quick.
const MAX_MACS: usize = 2_000_000;

/// Thread counts the random configurations rotate through: the work split (pixel tiles, output
/// channel blocks) depends on it, so every split shape gets exercised on any machine.
const THREAD_COUNTS: [usize; 4] = [1, 2, 3, 5];

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

/// `cpu::fast::conv2d` in `pool`; a panic or an error fails with `context` (seed, configuration).
fn run_fast(
    pool: &ThreadPool,
    context: &str,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    params: &Conv2dParams,
) -> Tensor {
    let run = || pool.install(|| cpu::fast::conv2d(x, w, b, params));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(y)) => y,
        Ok(Err(e)) => panic!("{context}: unexpected error {e}"),
        Err(_) => panic!("{context}: cpu::fast::conv2d panicked (message above)"),
    }
}

/// Runs the fast convolution on `threads` threads and checks it against the f64 reference.
fn check(
    context: &str,
    threads: usize,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    params: &Conv2dParams,
) {
    let context = format!(
        "cpu::fast vs reference, {context}: {} on {threads} threads",
        describe(x.shape(), w.shape(), b.is_some(), params)
    );
    let (shape, want) = cpu::reference::conv2d_f64(x, w, b, params).expect(&context);
    let got = run_fast(&pool(threads), &context, x, w, b, params);
    assert_eq!(got.shape(), shape.output_shape(), "{context}");
    let tol = tolerance(
        shape.reduction_len(),
        max_abs(x),
        max_abs(w),
        b.map_or(0.0, max_abs),
    );
    if let Err(msg) = compare(&context, shape.output_shape(), got.data(), &want, tol) {
        panic!("{msg}");
    }
}

/// Checks `input` x `weight` (random data from `seed`, with and without bias) on 1 and 2 threads.
fn check_shape(seed: u64, input: [usize; 4], weight: [usize; 4], params: Conv2dParams) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random_tensor(&mut rng, &input);
    let w = random_tensor(&mut rng, &weight);
    let b = random_tensor(&mut rng, &[weight[0]]);
    for threads in [1, 2] {
        check(&format!("seed {seed}"), threads, &x, &w, Some(&b), &params);
        check(&format!("seed {seed}"), threads, &x, &w, None, &params);
    }
}

fn check_random_configs(seed: u64, count: usize) {
    let offset = seed_offset();
    let seed = seed.wrapping_add(offset);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pools: Vec<ThreadPool> = THREAD_COUNTS.iter().map(|&t| pool(t)).collect();
    for case in 0..count {
        let Case {
            cfg,
            x,
            w,
            b,
            shape,
            want,
            tol,
        } = random_case(&mut rng, MAX_MACS, false);
        let threads = THREAD_COUNTS[case % THREAD_COUNTS.len()];
        let context = format!(
            "cpu::fast vs reference, seed {seed} (WGCONV_TEST_SEED={offset}), case {case}: {} on {threads} threads",
            cfg.describe()
        );
        let got = run_fast(
            &pools[case % pools.len()],
            &context,
            &x,
            &w,
            b.as_ref(),
            &cfg.params,
        );
        assert_eq!(got.shape(), shape, "{context}");
        if let Err(msg) = compare(&context, shape, got.data(), &want, tol) {
            panic!("{msg}");
        }
    }
}

#[test]
fn random_configs_match_reference_part1() {
    check_random_configs(0xfa57_0001, 80);
}

#[test]
fn random_configs_match_reference_part2() {
    check_random_configs(0xfa57_0002, 80);
}

#[test]
fn random_configs_match_reference_part3() {
    check_random_configs(0xfa57_0003, 80);
}

#[test]
fn random_configs_match_reference_part4() {
    check_random_configs(0xfa57_0004, 80);
}

#[test]
fn pointwise_stride_1_reads_the_input_in_place() {
    let p = Conv2dParams::default();
    // 70*70 = 4900 pixels: more than one pointwise tile.
    check_shape(11, [2, 64, 70, 70], [96, 64, 1, 1], p);
    check_shape(12, [1, 32, 9, 11], [16, 8, 1, 1], p.with_groups(4));
    check_shape(13, [3, 1, 5, 7], [4, 1, 1, 1], p);
    check_shape(
        14,
        [1, 5, 1, 1],
        [3, 5, 1, 1],
        p.with_padding(Padding::Same),
    );
}

#[test]
fn strided_and_padded_pointwise_match_reference() {
    let p = Conv2dParams::default();
    check_shape(21, [2, 48, 29, 31], [40, 48, 1, 1], p.with_stride(2));
    check_shape(22, [1, 24, 17, 16], [12, 24, 1, 1], p.with_stride((3, 2)));
    check_shape(23, [2, 16, 9, 9], [8, 16, 1, 1], p.with_padding(1));
    check_shape(
        24,
        [1, 12, 10, 10],
        [6, 4, 1, 1],
        p.with_stride(2).with_padding([0, 1, 2, 0]).with_groups(3),
    );
}

#[test]
fn layers_larger_than_one_im2col_tile_match_reference() {
    let p = Conv2dParams::default();
    // K = 576: an im2col tile holds a few hundred pixels, so tiles break mid-row.
    check_shape(31, [1, 64, 45, 37], [64, 64, 3, 3], p.with_padding(1));
    check_shape(
        32,
        [2, 32, 30, 30],
        [24, 16, 5, 5],
        p.with_padding(2).with_groups(2),
    );
    // Stem-like: 7x7, stride 2, over a wide input.
    check_shape(
        33,
        [1, 3, 64, 80],
        [16, 3, 7, 7],
        p.with_stride(2).with_padding(3),
    );
    // Few pixels, many channels: the output channels are split across threads instead.
    check_shape(34, [1, 256, 5, 5], [128, 256, 3, 3], p.with_padding(1));
    check_shape(
        35,
        [1, 96, 4, 3],
        [80, 96, 2, 3],
        p.with_dilation((2, 1)).with_padding([1, 0, 0, 2]),
    );
}

#[test]
fn depthwise_with_channel_multiplier_matches_reference() {
    let p = Conv2dParams::default();
    // Multiplier 1: the direct loop.
    check_shape(
        41,
        [2, 32, 17, 19],
        [32, 1, 3, 3],
        p.with_stride(2).with_padding(1).with_groups(32),
    );
    check_shape(
        45,
        [1, 16, 23, 9],
        [16, 1, 4, 2],
        p.with_padding(Padding::Same)
            .with_dilation((1, 2))
            .with_groups(16),
    );
    // Multiplier 2: the GEMM with K = kh*kw.
    check_shape(
        46,
        [2, 32, 17, 19],
        [64, 1, 3, 3],
        p.with_stride(2).with_padding(1).with_groups(32),
    );
    // Multiplier 8.
    check_shape(
        42,
        [1, 6, 20, 13],
        [48, 1, 5, 4],
        p.with_padding(Padding::Same)
            .with_dilation(2)
            .with_groups(6),
    );
    // One input channel, many outputs: a GEMM, not depthwise in name only.
    check_shape(43, [2, 1, 28, 28], [32, 1, 5, 5], p.with_padding(2));
    // Kernel columns that never see the input for some outputs (wide padding, dilation 3).
    check_shape(
        44,
        [1, 4, 3, 2],
        [4, 1, 3, 3],
        p.with_padding([3, 3, 3, 3]).with_dilation(3).with_groups(4),
    );
}

#[test]
fn empty_batch_gives_empty_output() {
    let p = Conv2dParams::default();
    for (input, weight, params, want) in [
        ([0, 8, 6, 6], [4, 8, 1, 1], p, [0, 4, 6, 6]),
        ([0, 8, 6, 6], [4, 8, 3, 3], p.with_padding(1), [0, 4, 6, 6]),
        (
            [0, 8, 6, 6],
            [16, 1, 3, 3],
            p.with_groups(8).with_stride(2),
            [0, 16, 2, 2],
        ),
    ] {
        let x = Tensor::new(input, Vec::new()).expect("empty input");
        let w = Tensor::full(weight, 1.0).expect("weight");
        let b = Tensor::full([weight[0]], 1.0).expect("bias");
        let y = cpu::fast::conv2d(&x, &w, Some(&b), &params).expect("empty batch is valid");
        assert_eq!(y.shape(), want);
        assert!(y.is_empty());
    }
}

/// `(input shape, weight shape, bias shape, params)`.
type BadCase = (Vec<usize>, Vec<usize>, Option<Vec<usize>>, Conv2dParams);

#[test]
fn shape_errors_are_the_reference_errors() {
    let p = Conv2dParams::default();
    // (input, weight, bias, params), each wrong in one way.
    let cases: Vec<BadCase> = vec![
        (vec![1, 3, 8, 8], vec![4, 3, 3, 3], None, p.with_stride(0)),
        (
            vec![1, 3, 8, 8],
            vec![4, 3, 3, 3],
            None,
            p.with_dilation((1, 0)),
        ),
        (vec![1, 3, 8, 8], vec![4, 3, 3, 3], None, p.with_groups(0)),
        (vec![8, 8], vec![4, 3, 3, 3], None, p),
        (vec![1, 3, 8, 8], vec![4, 3, 3], None, p),
        (vec![1, 0, 8, 8], vec![4, 3, 3, 3], None, p),
        (vec![1, 3, 8, 8], vec![0, 3, 3, 3], None, p),
        (
            vec![1, 3, 8, 8],
            vec![4, 3, 3, 3],
            None,
            p.with_padding(Padding::Same).with_stride(2),
        ),
        (vec![1, 4, 8, 8], vec![3, 2, 3, 3], None, p.with_groups(2)),
        (vec![1, 3, 8, 8], vec![4, 1, 3, 3], None, p.with_groups(2)),
        (vec![1, 4, 8, 8], vec![4, 3, 3, 3], None, p),
        (vec![1, 3, 8, 8], vec![4, 3, 3, 3], Some(vec![3]), p),
        (vec![1, 3, 8, 8], vec![4, 3, 3, 3], Some(vec![4, 1]), p),
        (vec![1, 3, 2, 8], vec![4, 3, 3, 3], None, p),
        (vec![1, 3, 8, 8], vec![4, 3, 3, 3], None, p.with_dilation(4)),
    ];
    for (input, weight, bias, params) in cases {
        let context = describe(&input, &weight, bias.is_some(), &params);
        let x = Tensor::full(input.clone(), 1.0).expect("input");
        let w = Tensor::full(weight.clone(), 1.0).expect("weight");
        let b = bias.map(|b| Tensor::full(b, 1.0).expect("bias"));
        let want = cpu::reference::conv2d(&x, &w, b.as_ref(), &params)
            .expect_err(&format!("{context}: the reference accepts it"));
        let got = cpu::fast::conv2d(&x, &w, b.as_ref(), &params)
            .expect_err(&format!("{context}: fast accepts it"));
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{context}");
    }
}
