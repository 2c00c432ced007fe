//! `ndarray` in and out: round trips, and views that are not standard layout.

mod common;

use ndarray::{s, Array1, Array4};
use wgconv::{cpu, Conv2dParams, Tensor};

use common::engine;

fn ramp(shape: (usize, usize, usize, usize), salt: usize) -> Array4<f32> {
    let mut i = 0;
    Array4::from_shape_simple_fn(shape, || {
        i += 1;
        ((i * 37 + salt * 11) % 29) as f32 / 14.0 - 1.0
    })
}

#[test]
fn arrays_round_trip_through_the_gpu() {
    let x = ramp((2, 3, 5, 7), 1);
    let g = engine().upload_array(&x).unwrap();
    assert_eq!(g.shape(), [2, 3, 5, 7]);
    assert_eq!(engine().download_array4(&g).unwrap(), x);
}

#[test]
fn conv2d_array_matches_the_tensor_api() {
    let x = ramp((2, 4, 9, 8), 1);
    let w = ramp((6, 2, 3, 3), 2);
    let b = Array1::from_shape_fn(6, |i| i as f32 / 3.0);
    let p = Conv2dParams::default()
        .with_groups(2)
        .with_padding(1)
        .with_stride((2, 1));
    let y = engine()
        .conv2d_array(x.view(), w.view(), Some(b.view()), &p)
        .unwrap();
    let t = engine()
        .conv2d(
            &Tensor::from_ndarray(&x),
            &Tensor::from_ndarray(&w),
            Some(&Tensor::from_ndarray(&b)),
            &p,
        )
        .unwrap();
    assert_eq!(y.shape(), t.shape());
    assert_eq!(y.as_slice().unwrap(), t.data());
    let asynced =
        pollster::block_on(engine().conv2d_array_async(x.view(), w.view(), Some(b.view()), &p))
            .unwrap();
    assert_eq!(asynced, y);
}

#[test]
fn non_contiguous_views_mean_what_they_show() {
    // A view with permuted axes (H and W swapped) and a strided slice: neither is standard layout.
    let base = ramp((1, 3, 10, 12), 3);
    let transposed = base.view().permuted_axes([0, 1, 3, 2]);
    assert!(!transposed.is_standard_layout());
    let strided = base.slice(s![.., .., ..;2, 1..]);
    assert!(!strided.is_standard_layout());
    let w = ramp((2, 3, 3, 3), 4);
    let p = Conv2dParams::default();
    for view in [transposed, strided] {
        let got = engine().conv2d_array(view, w.view(), None, &p).unwrap();
        // The same values copied into a fresh standard-layout array, through the reference.
        let owned = view.as_standard_layout().into_owned();
        assert!(owned.is_standard_layout());
        let want = cpu::reference::conv2d(
            &Tensor::from_ndarray(&owned),
            &Tensor::from_ndarray(&w),
            None,
            &p,
        )
        .unwrap();
        assert_eq!(got.shape(), want.shape());
        for (g, r) in got.iter().zip(want.data()) {
            assert!((g - r).abs() <= 1e-5, "{g} vs {r}");
        }
    }
    // An array with a broadcast (zero-stride) axis uploads as its logical values.
    let row = Array1::from_vec(vec![1.0f32, 2.0, 3.0]);
    let broadcast = row.broadcast((2, 3)).unwrap();
    let g = engine().upload_array(&broadcast).unwrap();
    assert_eq!(
        engine().download(&g).unwrap().data(),
        [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );
}

#[test]
fn download_array4_refuses_other_ranks() {
    let g = engine()
        .upload(&Tensor::full([3, 4], 1.0).unwrap())
        .unwrap();
    let e = engine().download_array4(&g).unwrap_err();
    assert!(matches!(e, wgconv::Error::InputRank { .. }), "{e:?}");
}
