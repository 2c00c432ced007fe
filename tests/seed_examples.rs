//! The lecture's worked numbers, exactly, from the lecture functions, the CPU reference and the GPU.

mod common;

use ndarray::{array, Array2, Array3, Array4};
use wgconv::cpu::{lecture, reference};
use wgconv::{Conv2dParams, Tensor};

use common::engine;

fn x3() -> Array2<f32> {
    array![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
}

fn k2() -> Array2<f32> {
    array![[0.0, 1.0], [2.0, 3.0]]
}

/// X and X+1 as two channels; K and K+1 as two channels.
fn two_channels() -> (Array3<f32>, Array3<f32>) {
    let x = ndarray::stack![ndarray::Axis(0), x3(), x3() + 1.0];
    let k = ndarray::stack![ndarray::Axis(0), k2(), k2() + 1.0];
    (x, k)
}

fn as_tensor<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>, shape: &[usize]) -> Tensor {
    Tensor::new(shape.to_vec(), a.iter().copied().collect()).expect("shape matches")
}

/// Runs the same convolution on the reference and the GPU; returns both outputs.
fn both(x: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
    let p = Conv2dParams::default();
    let cpu = reference::conv2d(x, k, None, &p).expect("reference");
    let gpu = engine().conv2d(x, k, None, &p).expect("gpu");
    (cpu, gpu)
}

#[test]
fn corr2d_of_the_3x3_example_is_19_25_37_43() {
    let want = array![[19.0, 25.0], [37.0, 43.0]];
    assert_eq!(lecture::corr2d(x3().view(), k2().view()).unwrap(), want);
    let (cpu, gpu) = both(
        &as_tensor(&x3(), &[1, 1, 3, 3]),
        &as_tensor(&k2(), &[1, 1, 2, 2]),
    );
    assert_eq!(cpu.data(), want.as_slice().unwrap());
    assert_eq!(gpu.data(), want.as_slice().unwrap());
}

#[test]
fn two_input_channels_sum_to_56_72_104_120() {
    let (x, k) = two_channels();
    let want = array![[56.0, 72.0], [104.0, 120.0]];
    assert_eq!(lecture::corr2d_multi_in(x.view(), k.view()).unwrap(), want);
    let (cpu, gpu) = both(&as_tensor(&x, &[1, 2, 3, 3]), &as_tensor(&k, &[1, 2, 2, 2]));
    assert_eq!(cpu.data(), want.as_slice().unwrap());
    assert_eq!(gpu.data(), want.as_slice().unwrap());
}

#[test]
fn stacked_kernels_give_three_output_channels() {
    let (x, k) = two_channels();
    let k3 = ndarray::stack![ndarray::Axis(0), k, &k + 1.0, &k + 2.0];
    let want = array![
        [[56.0, 72.0], [104.0, 120.0]],
        [[76.0, 100.0], [148.0, 172.0]],
        [[96.0, 128.0], [192.0, 224.0]]
    ];
    assert_eq!(
        lecture::corr2d_multi_in_out(x.view(), k3.view()).unwrap(),
        want
    );
    let (cpu, gpu) = both(
        &as_tensor(&x, &[1, 2, 3, 3]),
        &as_tensor(&k3, &[3, 2, 2, 2]),
    );
    assert_eq!(cpu.data(), want.as_slice().unwrap());
    assert_eq!(gpu.data(), want.as_slice().unwrap());
}

fn edge_image() -> Array2<f32> {
    let mut x = Array2::<f32>::ones((6, 8));
    x.slice_mut(ndarray::s![.., 2..6]).fill(0.0);
    x
}

#[test]
fn edge_kernel_marks_the_two_vertical_edges() {
    let x = edge_image();
    let k = array![[1.0f32, -1.0]];
    let row = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0];
    let want = Array2::from_shape_fn((6, 7), |(_, j)| row[j]);
    assert_eq!(lecture::corr2d(x.view(), k.view()).unwrap(), want);
    let (cpu, gpu) = both(&as_tensor(&x, &[1, 1, 6, 8]), &as_tensor(&k, &[1, 1, 1, 2]));
    assert_eq!(cpu.data(), want.as_slice().unwrap());
    assert_eq!(gpu.data(), want.as_slice().unwrap());
}

#[test]
fn edge_kernel_sees_nothing_in_the_transposed_image() {
    let xt = edge_image().t().to_owned();
    let k = array![[1.0f32, -1.0]];
    let y = lecture::corr2d(xt.view(), k.view()).unwrap();
    assert_eq!(y, Array2::<f32>::zeros((8, 5)));
    let (cpu, gpu) = both(
        &as_tensor(&xt, &[1, 1, 8, 6]),
        &as_tensor(&k, &[1, 1, 1, 2]),
    );
    assert!(cpu.data().iter().all(|&v| v == 0.0));
    assert!(gpu.data().iter().all(|&v| v == 0.0));
    assert_eq!(gpu.shape(), [1, 1, 8, 5]);
}

#[test]
fn one_by_one_convolution_equals_the_matrix_product() {
    // Fixed pseudo-random values so the products are not all trivial.
    let x = Array3::from_shape_fn((3, 3, 3), |(c, i, j)| {
        ((c * 9 + i * 3 + j) * 37 % 19) as f32 / 7.0 - 1.0
    });
    let k = Array4::from_shape_fn((2, 3, 1, 1), |(o, c, _, _)| {
        ((o * 3 + c) * 11 % 7) as f32 / 3.0 - 1.0
    });
    let y1 = lecture::corr2d_multi_in_out_1x1(x.view(), k.view()).unwrap();
    let y2 = lecture::corr2d_multi_in_out(x.view(), k.view()).unwrap();
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * a.abs().max(1.0);
    assert!(
        y1.iter().zip(y2.iter()).all(|(&a, &b)| close(a, b)),
        "{y1} vs {y2}"
    );
    let (cpu, gpu) = both(&as_tensor(&x, &[1, 3, 3, 3]), &as_tensor(&k, &[2, 3, 1, 1]));
    assert!(y1.iter().zip(cpu.data()).all(|(&a, &b)| close(a, b)));
    assert!(y1.iter().zip(gpu.data()).all(|(&a, &b)| close(a, b)));
}

#[test]
fn lecture_functions_agree_with_the_general_reference_on_random_data() {
    let x = Array3::from_shape_fn((4, 7, 9), |(c, i, j)| {
        ((c * 63 + i * 9 + j) * 29 % 23) as f32 / 11.0 - 1.0
    });
    let k = Array4::from_shape_fn((5, 4, 3, 2), |(o, c, i, j)| {
        ((o * 24 + c * 6 + i * 2 + j) * 13 % 17) as f32 / 8.0 - 1.0
    });
    let y = lecture::corr2d_multi_in_out(x.view(), k.view()).unwrap();
    let r = reference::conv2d(
        &as_tensor(&x, &[1, 4, 7, 9]),
        &as_tensor(&k, &[5, 4, 3, 2]),
        None,
        &Conv2dParams::default(),
    )
    .unwrap();
    assert_eq!(r.shape(), [1, 5, 5, 8]);
    assert!(y
        .iter()
        .zip(r.data())
        .all(|(&a, &b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)));
}
