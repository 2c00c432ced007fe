//! Persistent GPU tensors: round trips, chaining without host round trips, and the async twins.

mod common;

use wgconv::{cpu, Conv2dParams, Engine, Padding, Tensor};

use common::{compare, engine, max_abs, tolerance};

fn data(shape: &[usize], salt: usize) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |i| {
        ((i * 31 + salt * 7) % 29) as f32 / 14.0 - 1.0
    })
    .unwrap()
}

#[test]
fn upload_then_download_is_exact() {
    let t = data(&[2, 3, 5, 7], 1);
    let g = engine().upload(&t).unwrap();
    assert_eq!(g.shape(), t.shape());
    assert_eq!(engine().download(&g).unwrap(), t);
    let empty = Tensor::new([0, 3, 4, 4], vec![]).unwrap();
    assert_eq!(
        engine()
            .download(&engine().upload(&empty).unwrap())
            .unwrap(),
        empty
    );
}

#[test]
fn two_chained_convolutions_stay_on_the_gpu_and_match_the_reference() {
    let e = engine();
    let x = data(&[2, 3, 12, 10], 1);
    let w1 = data(&[8, 3, 3, 3], 2);
    let b1 = data(&[8], 3);
    let w2 = data(&[4, 8, 1, 1], 4);
    let p1 = Conv2dParams::default().with_padding(1).with_stride(2);
    let p2 = Conv2dParams::default();

    let gx = e.upload(&x).unwrap();
    let (gw1, gb1, gw2) = (
        e.upload(&w1).unwrap(),
        e.upload(&b1).unwrap(),
        e.upload(&w2).unwrap(),
    );
    let h = e.conv2d_gpu(&gx, &gw1, Some(&gb1), &p1).unwrap();
    let y = e.conv2d_gpu(&h, &gw2, None, &p2).unwrap();
    let got = e.download(&y).unwrap();

    let h_ref = cpu::reference::conv2d(&x, &w1, Some(&b1), &p1).unwrap();
    let (s2, want) = cpu::reference::conv2d_f64(&h_ref, &w2, None, &p2).unwrap();
    // The second layer sees the first layer's rounding too: its K=27 error bound, carried through 8 channels.
    let tol = tolerance(8, max_abs(&h_ref), max_abs(&w2), 0.0)
        + 8.0 * max_abs(&w2) * tolerance(27, max_abs(&x), max_abs(&w1), max_abs(&b1));
    compare("chained", s2.output_shape(), got.data(), &want, tol).unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn async_twins_give_the_same_results() {
    let x = data(&[1, 4, 9, 9], 5);
    let w = data(&[6, 2, 3, 3], 6);
    let p = Conv2dParams::default()
        .with_groups(2)
        .with_padding(Padding::Same);
    let blocking = engine().conv2d(&x, &w, None, &p).unwrap();
    let asynced = pollster::block_on(engine().conv2d_async(&x, &w, None, &p)).unwrap();
    assert_eq!(blocking, asynced);
    let g = engine().upload(&x).unwrap();
    assert_eq!(pollster::block_on(engine().download_async(&g)).unwrap(), x);
    pollster::block_on(engine().synchronize_async()).unwrap();
    engine().synchronize().unwrap();
    let own = pollster::block_on(Engine::new_async()).unwrap();
    assert_eq!(own.conv2d(&x, &w, None, &p).unwrap(), blocking);
}

#[test]
fn write_overwrites_a_tensor_in_place() {
    let mut g = engine().upload(&data(&[1, 1, 3, 3], 1)).unwrap();
    let t = data(&[1, 1, 3, 3], 9);
    engine().write(&mut g, &t).unwrap();
    assert_eq!(engine().download(&g).unwrap(), t);
}

#[test]
fn engine_and_tensors_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<wgconv::GpuTensor>();
    let x = data(&[1, 2, 6, 6], 1);
    let w = data(&[3, 2, 3, 3], 2);
    let p = Conv2dParams::default();
    let want = engine().conv2d(&x, &w, None, &p).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| engine().conv2d(&x, &w, None, &p).unwrap()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}
