//! Faults and concurrency: a lost device, and many threads sharing one engine.

mod common;

use std::time::{Duration, Instant};

use wgconv::{cpu, Conv2dParams, Engine, Error, Padding, Tensor};

use common::{compare, engine, max_abs, tolerance};

fn data(shape: &[usize], salt: usize) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |i| {
        ((i * 31 + salt * 17) % 23) as f32 / 11.0 - 1.0
    })
    .unwrap()
}

#[test]
fn a_destroyed_device_turns_every_later_call_into_device_lost_and_a_new_engine_works() {
    let lost = Engine::new().unwrap();
    let x = data(&[1, 2, 6, 6], 1);
    let w = data(&[3, 2, 3, 3], 2);
    let p = Conv2dParams::default();
    let kept = lost.upload(&x).unwrap();
    lost.conv2d(&x, &w, None, &p).unwrap();

    lost.device().destroy();
    let start = Instant::now();
    let e = lost.conv2d(&x, &w, None, &p).unwrap_err();
    assert!(matches!(e, Error::DeviceLost { .. }), "{e:?}");
    assert!(e.to_string().contains("create a new Engine"), "{e}");
    for e in [
        lost.upload(&x).unwrap_err(),
        lost.download(&kept).unwrap_err(),
        lost.synchronize().unwrap_err(),
        pollster::block_on(lost.conv2d_async(&x, &w, None, &p)).unwrap_err(),
    ] {
        assert!(matches!(e, Error::DeviceLost { .. }), "{e:?}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    let fresh = Engine::new().unwrap();
    let y = fresh.conv2d(&x, &w, None, &p).unwrap();
    assert_eq!(y, engine().conv2d(&x, &w, None, &p).unwrap());
}

/// One configuration's data and its reference result.
struct Expected {
    x: Tensor,
    w: Tensor,
    b: Option<Tensor>,
    want: Vec<f64>,
    shape: [usize; 4],
    tol: f64,
}

#[test]
fn eight_threads_share_one_engine_for_fifty_mixed_convolutions_each() {
    // A handful of different layers (different kernels and plans), cycled through by every thread.
    let configs: Vec<([usize; 4], [usize; 4], bool, Conv2dParams)> = vec![
        (
            [1, 3, 12, 10],
            [8, 3, 3, 3],
            true,
            Conv2dParams::default().with_padding(1),
        ),
        (
            [2, 8, 9, 9],
            [8, 2, 3, 3],
            false,
            Conv2dParams::default().with_groups(4).with_stride(2),
        ),
        ([1, 16, 7, 7], [32, 16, 1, 1], true, Conv2dParams::default()),
        (
            [1, 6, 8, 8],
            [6, 1, 5, 5],
            false,
            Conv2dParams::default()
                .with_groups(6)
                .with_padding(Padding::Same),
        ),
        (
            [3, 4, 11, 6],
            [5, 4, 2, 3],
            true,
            Conv2dParams::default()
                .with_dilation((2, 1))
                .with_padding([1, 0, 2, 1]),
        ),
    ];
    let expected: Vec<Expected> = configs
        .iter()
        .enumerate()
        .map(|(i, (input, weight, bias, p))| {
            let x = data(input, i);
            let w = data(weight, i + 10);
            let b = bias.then(|| data(&[weight[0]], i + 20));
            let (shape, want) = cpu::reference::conv2d_f64(&x, &w, b.as_ref(), p).unwrap();
            let tol = tolerance(
                shape.reduction_len(),
                max_abs(&x),
                max_abs(&w),
                b.as_ref().map_or(0.0, max_abs),
            );
            Expected {
                x,
                w,
                b,
                want,
                shape: shape.output_shape(),
                tol,
            }
        })
        .collect();
    let engine = engine();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (configs, expected) = (&configs, &expected);
            scope.spawn(move || {
                for call in 0..50 {
                    let k = (thread + call) % configs.len();
                    let Expected {
                        x,
                        w,
                        b,
                        want,
                        shape,
                        tol,
                    } = &expected[k];
                    let p = &configs[k].3;
                    // Alternate the one-shot call, its async twin, and resident tensors.
                    let got = match call % 3 {
                        0 => engine.conv2d(x, w, b.as_ref(), p).unwrap(),
                        1 => pollster::block_on(engine.conv2d_async(x, w, b.as_ref(), p)).unwrap(),
                        _ => {
                            let gx = engine.upload(x).unwrap();
                            let gw = engine.upload(w).unwrap();
                            let gb = b.as_ref().map(|b| engine.upload(b).unwrap());
                            let y = engine.conv2d_gpu(&gx, &gw, gb.as_ref(), p).unwrap();
                            engine.download(&y).unwrap()
                        }
                    };
                    let context = format!("thread {thread}, call {call}, config {k}");
                    compare(&context, *shape, got.data(), want, *tol)
                        .unwrap_or_else(|m| panic!("{m}"));
                }
            });
        }
    });
}
