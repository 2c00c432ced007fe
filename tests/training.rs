//! The lecture's training loop on the GPU (`wgconv::layer::learn_edge_kernel`, also the
//! `learn_edge_kernel` example and `wgconv train-edge`): the loss falls and the kernel found is
//! the edge detector [1, -1]; every step agrees with the same loop done by hand in f64.

mod common;

use wgconv::layer::{learn_edge_kernel, Conv2d};
use wgconv::{Conv2dParams, Error};

use common::engine;

#[test]
fn the_lecture_loop_learns_the_edge_kernel() {
    let lesson = learn_edge_kernel(engine(), 10, 3e-2, 0, |_, _| {}).unwrap();
    assert_eq!(lesson.losses.len(), 10);
    assert!(
        lesson.losses[9] < lesson.losses[1],
        "loss at step 10 {} is not below step 2's {}",
        lesson.losses[9],
        lesson.losses[1]
    );
    let [a, b] = lesson.kernel;
    assert!(
        (a - 1.0).abs() < 0.1 && (b + 1.0).abs() < 0.1,
        "learned [{a}, {b}], not within 0.1 of [1, -1]"
    );
}

/// The same ten steps by hand in f64 from the same initial kernel: `y = w0 x[j] + w1 x[j+1]`,
/// `L = sum (y - Y)^2`, `dL/dw0 = sum 2 (y - Y) x[j]`, `dL/dw1 = sum 2 (y - Y) x[j+1]`.
#[test]
fn every_gpu_step_matches_the_loop_by_hand() {
    let engine = engine();
    for seed in [0, 1, 2, 3] {
        let initial = Conv2d::new(engine, 1, 1, (1, 2), Conv2dParams::default(), false, seed)
            .and_then(|c| engine.download(c.weight()))
            .unwrap();
        let mut w = [f64::from(initial.data()[0]), f64::from(initial.data()[1])];
        let x = |j: usize| if (2..6).contains(&j) { 0.0 } else { 1.0 };
        let target = |j: usize| x(j) - x(j + 1);
        let mut losses = Vec::new();
        for _ in 0..10 {
            let (mut loss, mut g0, mut g1) = (0.0, 0.0, 0.0);
            // Six identical rows of seven outputs.
            for j in 0..7 {
                let d = w[0] * x(j) + w[1] * x(j + 1) - target(j);
                loss += 6.0 * d * d;
                g0 += 6.0 * 2.0 * d * x(j);
                g1 += 6.0 * 2.0 * d * x(j + 1);
            }
            w = [w[0] - 3e-2 * g0, w[1] - 3e-2 * g1];
            losses.push(loss);
        }
        let lesson = learn_edge_kernel(engine, 10, 3e-2, seed, |_, _| {}).unwrap();
        for (step, (&got, &want)) in lesson.losses.iter().zip(&losses).enumerate() {
            // f32 sums of 42 terms, repeated over ten steps: well within 1e-4 relative.
            assert!(
                (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1e-3),
                "seed {seed}, step {}: GPU loss {got}, by hand {want}",
                step + 1
            );
        }
        for (got, want) in lesson.kernel.iter().zip(w) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-4,
                "seed {seed}: kernel {:?}, by hand {w:?}",
                lesson.kernel
            );
        }
    }
}

#[test]
fn a_non_finite_learning_rate_is_refused() {
    let e = learn_edge_kernel(engine(), 2, f32::NAN, 0, |_, _| {}).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NonFinite {
                name: "learning rate",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "learning rate must be finite, got NaN");
}
