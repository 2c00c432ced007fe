//! NaN and infinity follow IEEE arithmetic, as in PyTorch: an output is NaN when its window holds
//! a NaN, infinite when it holds an infinity (times a non-zero weight), and zero padding or the
//! unused slots of a kernel's tiles never turn a finite output into NaN. Checked on every kernel.

mod common;

use wgconv::{cpu, Algorithm, Conv2dParams, Error, Tensor};

use common::engine;

const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::Direct,
    Algorithm::Pointwise,
    Algorithm::RegisterTiled,
    Algorithm::SharedTiled,
    Algorithm::LargeTiled,
    Algorithm::Depthwise,
];

/// Runs every kernel that covers the shape; returns (algorithm, output) pairs.
fn on_every_kernel(x: &Tensor, w: &Tensor, p: &Conv2dParams) -> Vec<(Algorithm, Tensor)> {
    let e = engine();
    let (gx, gw) = (e.upload(x).unwrap(), e.upload(w).unwrap());
    let shape = wgconv::output_shape(x.shape(), w.shape(), p).unwrap();
    let mut runs = Vec::new();
    for algorithm in ALGORITHMS {
        let mut out = e.alloc(&shape).unwrap();
        match e.conv2d_into_with(algorithm, &gx, &gw, None, p, &mut out) {
            Ok(()) => runs.push((algorithm, e.download(&out).unwrap())),
            Err(Error::UnsupportedAlgorithm { .. }) => {}
            Err(other) => panic!("{algorithm:?}: {other}"),
        }
    }
    assert!(runs.len() >= 2, "at least two kernels ran");
    runs
}

#[test]
fn a_nan_input_poisons_exactly_the_outputs_whose_window_holds_it() {
    // 16 channels in and out so the GEMM kernels apply; one NaN at channel 0, row 4, column 5.
    let mut data = vec![0.5f32; 16 * 9 * 10];
    data[4 * 10 + 5] = f32::NAN;
    let x = Tensor::new([1, 16, 9, 10], data).unwrap();
    let w = Tensor::full([16, 16, 3, 3], 0.25).unwrap();
    let p = Conv2dParams::default().with_padding(1);
    let reference = cpu::reference::conv2d(&x, &w, None, &p).unwrap();
    for (algorithm, y) in on_every_kernel(&x, &w, &p)
        .into_iter()
        .chain([(Algorithm::Auto, reference)])
    {
        for o in 0..16 {
            for r in 0..9 {
                for c in 0..10 {
                    let v = y.data()[(o * 9 + r) * 10 + c];
                    let in_window = (3..=5).contains(&r) && (4..=6).contains(&c);
                    assert_eq!(
                        v.is_nan(),
                        in_window,
                        "{algorithm:?}: output [{o}, {r}, {c}] = {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn infinities_propagate_and_meet_zero_weights_as_nan() {
    let mut data = vec![1.0f32; 8 * 6 * 6];
    data[2 * 6 + 2] = f32::INFINITY;
    let x = Tensor::new([1, 8, 6, 6], data).unwrap();
    // Output channel 0 weighs channel 0 positively, output channel 1 gives it weight zero.
    let w = Tensor::from_fn([8, 8, 1, 1], |i| if i == 8 { 0.0 } else { 1.0 }).unwrap();
    let p = Conv2dParams::default();
    for (algorithm, y) in on_every_kernel(&x, &w, &p) {
        let at = |o: usize, r: usize, c: usize| y.data()[(o * 6 + r) * 6 + c];
        assert_eq!(at(0, 2, 2), f32::INFINITY, "{algorithm:?}");
        assert!(
            at(1, 2, 2).is_nan(),
            "{algorithm:?}: inf * 0 is NaN, got {}",
            at(1, 2, 2)
        );
        assert_eq!(at(0, 0, 0), 8.0, "{algorithm:?}");
        assert_eq!(at(1, 3, 3), 7.0, "{algorithm:?}");
    }
}

#[test]
fn a_nan_in_a_depthwise_input_poisons_only_its_own_channel_and_window() {
    // 3 channels, one group each; a NaN at channel 1, row 0, column 0 (next to the padding, where
    // the depthwise kernel's staged window starts); an infinity at channel 2 meets a zero tap.
    let mut data = vec![1.0f32; 3 * 5 * 7];
    data[5 * 7] = f32::NAN;
    data[2 * 5 * 7 + 2 * 7 + 3] = f32::INFINITY;
    let x = Tensor::new([1, 3, 5, 7], data).unwrap();
    // Channel 2's centre tap is zero: NaN in the output the infinity is the centre of.
    let w = Tensor::from_fn([3, 1, 3, 3], |i| if i == 2 * 9 + 4 { 0.0 } else { 1.0 }).unwrap();
    let p = Conv2dParams::default().with_padding(1).with_groups(3);
    for (algorithm, y) in on_every_kernel(&x, &w, &p) {
        let at = |o: usize, r: usize, c: usize| y.data()[(o * 5 + r) * 7 + c];
        for r in 0..5 {
            for c in 0..7 {
                assert!(at(0, r, c).is_finite(), "{algorithm:?}: [0, {r}, {c}]");
                let in_window = r <= 1 && c <= 1;
                assert_eq!(
                    at(1, r, c).is_nan(),
                    in_window,
                    "{algorithm:?}: [1, {r}, {c}]"
                );
                // Channel 2: infinite where the infinity meets a tap of 1, NaN at its centre.
                let near = (1..=3).contains(&r) && (2..=4).contains(&c);
                let got = at(2, r, c);
                if (r, c) == (2, 3) {
                    assert!(
                        got.is_nan(),
                        "{algorithm:?}: inf * 0 at [2, 2, 3] is NaN, got {got}"
                    );
                } else if near {
                    assert_eq!(got, f32::INFINITY, "{algorithm:?}: [2, {r}, {c}]");
                } else {
                    assert!(got.is_finite(), "{algorithm:?}: [2, {r}, {c}] = {got}");
                }
            }
        }
    }
}
