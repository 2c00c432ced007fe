//! The lecture's training loop on the GPU (`wgconv::layer::learn_edge_kernel`, also the
//! `learn_edge_kernel` example and `wgconv train-edge`): the loss falls and the kernel found is
//! the edge detector [1, -1]; every step agrees with the same loop done by hand in f64.

mod common;

use wgconv::layer::{learn_edge_kernel, Conv1d, Conv2d, Conv2dConfig, Conv3d};
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
        let initial = Conv2d::new(
            engine,
            Conv2dConfig::new(1, 1, (1, 2)).bias(false).seed(seed),
        )
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

/// `nn.Conv2d.reset_parameters`: weight and bias uniform in ±1/sqrt(fan_in), fan_in =
/// C/groups * kh * kw; the same seed gives the same layer, another seed another one.
#[test]
fn layers_are_initialised_like_pytorch_and_seeded() {
    let engine = engine();
    let params = Conv2dParams::default().with_groups(2);
    let make = |seed| {
        let conv = Conv2d::new(
            engine,
            Conv2dConfig::new(8, 6, (3, 2)).params(params).seed(seed),
        )
        .unwrap();
        let w = engine.download(conv.weight()).unwrap();
        let b = engine.download(conv.bias().unwrap()).unwrap();
        (w, b)
    };
    let (w, b) = make(7);
    assert_eq!(w.shape(), [6, 4, 3, 2]);
    assert_eq!(b.shape(), [6]);
    let bound = 1.0 / ((4 * 3 * 2) as f32).sqrt();
    for v in w.data().iter().chain(b.data()) {
        assert!(v.abs() <= bound, "{v} outside ±{bound}");
    }
    // Spread over the range, not a constant.
    let max = w.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.8 * bound, "largest |w| {max} of bound {bound}");
    assert_eq!(make(7), (w.clone(), b));
    assert_ne!(make(8).0, w);
    // Bad channel counts are the convolution's own errors.
    let e = Conv2d::new(
        engine,
        Conv2dConfig::new(3, 6, 3).params(params).bias(false),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InChannelsNotDivisible { .. }), "{e:?}");
}

/// Gradients, losses and steps with tensors of the wrong shape are typed errors naming both.
#[test]
fn training_calls_refuse_mismatched_shapes() {
    let engine = engine();
    let up = |shape: &[usize]| {
        engine
            .upload(&wgconv::Tensor::full(shape.to_vec(), 1.0).unwrap())
            .unwrap()
    };
    let (x, w) = (up(&[1, 1, 4, 4]), up(&[1, 1, 3, 3]));
    let e = engine
        .conv2d_backward(&x, &w, &up(&[1, 1, 3, 3]), &Conv2dParams::default(), false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Mismatch in shape: grad_output has a shape of [1, 1, 3, 3] and the convolution's output \
         has a shape of [1, 1, 2, 2]"
    );
    let e = engine
        .squared_error(&up(&[1, 1, 2, 2]), &up(&[1, 1, 2, 3]))
        .unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { what: "target", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "target has shape [1, 1, 2, 3], but [1, 1, 2, 2] was expected"
    );
    let mut p = up(&[1, 1, 3, 3]);
    let e = engine.sgd_step(&mut p, &up(&[9]), 0.1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "grad has shape [9], but [1, 1, 3, 3] was expected"
    );
    let e = engine
        .sgd_step(&mut p, &up(&[1, 1, 3, 3]), f32::INFINITY)
        .unwrap_err();
    assert_eq!(e.to_string(), "learning rate must be finite, got inf");
}

/// The loss and its gradient against their definitions, on data with a known answer.
#[test]
fn squared_error_and_sgd_compute_their_definitions() {
    let engine = engine();
    let y = wgconv::Tensor::from_fn([2, 3, 5, 7], |i| (i % 11) as f32 * 0.25).unwrap();
    let t = wgconv::Tensor::from_fn([2, 3, 5, 7], |i| (i % 5) as f32 * 0.5).unwrap();
    let (gy, gt) = (engine.upload(&y).unwrap(), engine.upload(&t).unwrap());
    let (loss, grad) = engine.squared_error(&gy, &gt).unwrap();
    let want: f64 = y
        .data()
        .iter()
        .zip(t.data())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    let got = engine.download(&loss).unwrap().data()[0];
    assert!(
        (f64::from(got) - want).abs() <= 1e-6 * want,
        "{got} vs {want}"
    );
    let grad = engine.download(&grad).unwrap();
    for ((g, a), b) in grad.data().iter().zip(y.data()).zip(t.data()) {
        assert_eq!(*g, 2.0 * (a - b));
    }
    let mut p = engine.upload(&y).unwrap();
    engine.sgd_step(&mut p, &gt, 0.5).unwrap();
    let p = engine.download(&p).unwrap();
    for ((v, a), b) in p.data().iter().zip(y.data()).zip(t.data()) {
        assert_eq!(*v, a - 0.5 * b);
    }
}

/// The lecture's loop in 1-D with `layer::Conv1d`: from six rows of ones with a gap (a batch of
/// the lecture's image's rows), and their edges `Y = corr1d(X, [1, -1])`, ten SGD steps of 3e-2
/// find the kernel [1, -1], as the 2D lesson does from the same seed.
#[test]
fn a_conv1d_layer_learns_the_1d_edge_kernel() {
    let engine = engine();
    let x = wgconv::Tensor::from_fn(
        [6, 1, 8],
        |i| {
            if (2..6).contains(&(i % 8)) {
                0.0
            } else {
                1.0
            }
        },
    )
    .unwrap();
    let params = wgconv::Conv1dParams::default();
    let k = wgconv::Tensor::new([1, 1, 2], vec![1.0, -1.0]).unwrap();
    let x = engine.upload(&x).unwrap();
    let y = engine
        .conv1d_gpu(&x, &engine.upload(&k).unwrap(), None, &params)
        .unwrap();
    let mut conv = Conv1d::new(engine, (1, 1), [2], params, false, 0).unwrap();
    let mut losses = Vec::new();
    for _ in 0..10 {
        let y_hat = conv.forward(engine, &x).unwrap();
        assert_eq!(y_hat.shape(), [6, 1, 7]);
        let (loss, grad) = engine.squared_error(&y_hat, &y).unwrap();
        let grads = conv.backward(engine, &x, &grad).unwrap();
        assert_eq!(grads.weight.shape(), [1, 1, 2]);
        conv.sgd_step(engine, &grads, 3e-2).unwrap();
        losses.push(engine.download(&loss).unwrap().data()[0]);
    }
    assert!(losses[9] < losses[1], "losses {losses:?}");
    let w = engine.download(conv.weight()).unwrap();
    assert!(
        (w.data()[0] - 1.0).abs() < 0.1 && (w.data()[1] + 1.0).abs() < 0.1,
        "learned {:?}, not within 0.1 of [1, -1]",
        w.data()
    );
}

/// `layer::Conv3d` is initialised like `nn.Conv3d` (uniform within 1/sqrt(fan_in)), runs the
/// engine's conv3d forward and backward, and refuses a weight of another rank by name.
#[test]
fn a_conv3d_layer_runs_the_engines_calls() {
    let engine = engine();
    let params = wgconv::Conv3dParams::default()
        .with_padding(1)
        .with_groups(2);
    let conv = Conv3d::new(engine, (4, 6), [3, 3, 2], params, true, 5).unwrap();
    let w = engine.download(conv.weight()).unwrap();
    assert_eq!(w.shape(), [6, 2, 3, 3, 2]);
    let bound = 1.0 / ((2 * 3 * 3 * 2) as f32).sqrt();
    assert!(w.data().iter().all(|v| v.abs() <= bound));
    let x = engine
        .upload(
            &wgconv::Tensor::from_fn([2, 4, 5, 6, 7], |i| (i % 11) as f32 / 10.0 - 0.5).unwrap(),
        )
        .unwrap();
    let y = conv.forward(engine, &x).unwrap();
    let direct = engine
        .conv3d_gpu(&x, conv.weight(), conv.bias(), conv.params())
        .unwrap();
    assert_eq!(y.shape(), [2, 6, 5, 6, 8]);
    assert_eq!(
        engine.download(&y).unwrap(),
        engine.download(&direct).unwrap()
    );
    let grads = conv.backward(engine, &x, &y).unwrap();
    assert_eq!(grads.input.shape(), x.shape());
    assert_eq!(
        grads.bias.as_ref().map(|b| b.shape().to_vec()),
        Some(vec![6])
    );
    let weight = wgconv::Tensor::full([6, 2, 3, 3], 0.1).unwrap();
    let e = Conv3d::from_tensors(engine, &weight, None, params).unwrap_err();
    assert!(matches!(e, Error::WeightRank { op: "conv3d", .. }), "{e:?}");
}

/// A layer over an unbatched input trains as over the batch of one: `layer::Conv2d` forward and
/// backward of `[C, H, W]`, and `layer::Conv1d::new` refuses channels its groups do not divide.
#[test]
fn unbatched_inputs_train_and_layers_check_their_channels() {
    let engine = engine();
    let conv = Conv2d::new(engine, Conv2dConfig::new(2, 3, 3).seed(1)).unwrap();
    let x = engine
        .upload(&wgconv::Tensor::from_fn([2, 5, 5], |i| (i % 7) as f32 / 7.0).unwrap())
        .unwrap();
    let y = conv.forward(engine, &x).unwrap();
    assert_eq!(y.shape(), [3, 3, 3]);
    let grads = conv.backward(engine, &x, &y).unwrap();
    assert_eq!(grads.input.shape(), [2, 5, 5]);
    assert_eq!(grads.weight.shape(), [3, 2, 3, 3]);
    let x1 = engine
        .upload(&wgconv::Tensor::from_fn([1, 2, 5, 5], |i| (i % 7) as f32 / 7.0).unwrap())
        .unwrap();
    let y1 = conv.forward(engine, &x1).unwrap();
    let grads1 = conv.backward(engine, &x1, &y1).unwrap();
    for (a, b) in [
        (&grads.input, &grads1.input),
        (&grads.weight, &grads1.weight),
    ] {
        let (a, b) = (engine.download(a).unwrap(), engine.download(b).unwrap());
        assert_eq!(a.data(), b.data());
    }
    let params = wgconv::Conv1dParams::default().with_groups(2);
    let e = Conv1d::new(engine, (5, 4), [3], params, true, 0).unwrap_err();
    assert!(
        matches!(e, Error::InChannelsNotDivisible { groups: 2, .. }),
        "{e:?}"
    );
}
