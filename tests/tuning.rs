//! The verified autotuner and its cache: a wrong candidate is rejected before it is timed, the
//! winner is a verified candidate, it is kept per shape class (on disk with `Tuning::Cached`) and
//! the engine then runs it, and results still match the f64 CPU reference.

mod common;

use wgconv::gpu::kernels::CustomKernel;
use wgconv::gpu::tuner::Verdict;
use wgconv::gpu::tuning::{Op, ShapeClass, Tuning};
use wgconv::{cpu, Algorithm, Conv2dParams, Conv2dShape, EngineOptions};

use common::{compare, engine_with, random_tensor, rng, temp_dir, tolerance};

const DIRECT: &str = include_str!("../shaders/conv2d_direct.wgsl");

fn shape(input: [usize; 4], weight: [usize; 4], params: &Conv2dParams) -> Conv2dShape {
    Conv2dShape::new(&input, &weight, Some(&[weight[0]]), params).expect("a valid shape")
}

fn untuned() -> EngineOptions {
    EngineOptions::default()
}

fn cached(dir: &std::path::Path) -> EngineOptions {
    EngineOptions {
        tuning: Tuning::Cached(dir.to_path_buf()),
        ..EngineOptions::default()
    }
}

#[test]
fn a_candidate_that_skips_a_tap_is_rejected_and_never_wins() {
    // The direct kernel with its column loop starting at 1: tap j = 0 is never added.
    let skipping = DIRECT.replace(
        "for (var j = 0u; j < params.kernel_w; j++) {",
        "for (var j = 1u; j < params.kernel_w; j++) {",
    );
    assert_ne!(
        skipping, DIRECT,
        "the loop to break is in the direct kernel"
    );
    let skips = CustomKernel {
        name: "skips-a-tap",
        source: Box::leak(skipping.into_boxed_str()),
    };
    let honest = CustomKernel {
        name: "direct-copy",
        source: DIRECT,
    };
    let engine = engine_with(untuned());
    let p = Conv2dParams::default().with_padding(1);
    let s = shape([1, 8, 12, 12], [16, 8, 3, 3], &p);
    let report = engine
        .tune_forward(&s, &[Algorithm::Custom(skips), Algorithm::Custom(honest)])
        .unwrap();
    eprintln!("{report}");
    assert_eq!(report.rejected(), ["custom:skips-a-tap"], "{report}");
    let verdict = |name: &str| {
        report
            .candidates
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.verdict.clone())
    };
    assert!(
        matches!(
            verdict("custom:skips-a-tap"),
            Some(Verdict::Rejected { why }) if why.contains("reference kernel gives")
        ),
        "{report}"
    );
    assert!(
        matches!(
            verdict("custom:direct-copy"),
            Some(Verdict::Timed { .. } | Verdict::Pruned { .. })
        ),
        "a correct custom kernel passes the check: {report}"
    );
    assert_ne!(report.winner, "custom:skips-a-tap");
}

#[test]
fn every_candidate_passes_the_exact_check_and_the_engine_runs_the_winner() {
    let engine = engine_with(untuned());
    let mut r = rng(0x7e57_0001);
    for (input, weight, params) in [
        (
            [1, 16, 14, 14],
            [32, 16, 3, 3],
            Conv2dParams::default().with_padding(1),
        ),
        ([2, 24, 9, 11], [20, 24, 1, 1], Conv2dParams::default()),
        (
            [1, 3, 20, 20],
            [12, 3, 5, 5],
            Conv2dParams::default().with_stride(2).with_padding(2),
        ),
    ] {
        let s = shape(input, weight, &params);
        let report = engine.tune_forward(&s, &[]).unwrap();
        eprintln!("{report}");
        assert!(report.rejected().is_empty(), "{report}");
        assert!(
            report.time_of(&report.winner).is_some(),
            "the winner was timed: {report}"
        );
        // The winner is what Auto now runs for the class, and it still computes the convolution.
        let winner: Algorithm = report.winner.parse().expect("an algorithm name");
        assert_eq!(engine.tuned_algorithm(&s), Some(winner), "{report}");
        assert_eq!(
            Algorithm::of_kernel(engine.plan(&s).unwrap().kernel),
            Some(winner)
        );
        let x = random_tensor(&mut r, &input);
        let w = random_tensor(&mut r, &weight);
        let b = random_tensor(&mut r, &[weight[0]]);
        let got = engine.conv2d(&x, &w, Some(&b), &params).unwrap();
        let (_, want) = cpu::reference::conv2d_f64(&x, &w, Some(&b), &params).unwrap();
        let tol = tolerance(s.reduction_len(), 1.0, 1.0, 1.0);
        compare(&report.winner, s.output_shape(), got.data(), &want, tol).unwrap();
    }
}

#[test]
fn winners_are_kept_on_disk_per_class_and_used_by_a_new_engine() {
    let dir = temp_dir("tuning-cache");
    let p = Conv2dParams::default().with_padding(1);
    let s = shape([1, 32, 16, 16], [32, 32, 3, 3], &p);
    let winner = {
        let engine = engine_with(cached(&dir));
        assert_eq!(engine.tuned_algorithm(&s), None, "an empty cache");
        engine.tune_forward(&s, &[]).unwrap().winner
    };
    let again = engine_with(cached(&dir));
    let cache = again.tuning_cache();
    let kept = cache
        .winner(Op::Forward, &ShapeClass::of(&s))
        .expect("the winner is in the cache file");
    assert_eq!(kept.choice, winner);
    assert_eq!(again.tuned_algorithm(&s), winner.parse().ok());
    // A problem of the same class shares it; tuning off ignores it.
    let same_class = shape([1, 30, 16, 16], [32, 30, 3, 3], &p);
    assert_eq!(again.tuned_algorithm(&same_class), winner.parse().ok());
    assert_eq!(engine_with(untuned()).tuned_algorithm(&s), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weight_gradient_tiles_are_checked_timed_and_the_winner_matches_the_reference() {
    let engine = engine_with(untuned());
    let params = Conv2dParams::default().with_padding(1);
    let s = shape([2, 12, 10, 10], [16, 12, 3, 3], &params);
    let report = engine.tune_grad_weight(&s).unwrap();
    eprintln!("{report}");
    assert!(report.rejected().is_empty(), "{report}");
    assert!(
        report.candidates.len() >= 2,
        "several tiles tried: {report}"
    );
    assert!(report.time_of(&report.winner).is_some(), "{report}");
    let mut r = rng(0x7e57_0002);
    let x = random_tensor(&mut r, &s.input_shape());
    let w = random_tensor(&mut r, &s.weight_shape());
    let gy = random_tensor(&mut r, &s.output_shape());
    let got = engine
        .conv2d_grad_weight(
            &engine.upload(&x).unwrap(),
            &engine.upload(&gy).unwrap(),
            &s.weight_shape(),
            &params,
        )
        .unwrap();
    let got = engine.download(&got).unwrap();
    let want = cpu::reference::conv2d_backward_f64(&x, &w, &gy, &params).unwrap();
    let terms = s.batch * s.out_h * s.out_w;
    let tol = tolerance(terms, 1.0, 1.0, 0.0);
    compare(
        &report.winner,
        s.weight_shape(),
        got.data(),
        &want.weight,
        tol,
    )
    .unwrap();
}
