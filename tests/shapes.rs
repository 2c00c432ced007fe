//! Output shapes: the lecture's examples, PyTorch's formula, `same`/`valid`, and empty batches.

mod common;

use wgconv::{conv_output_len, cpu, output_shape, Conv2dParams, Conv2dShape, Padding, Tensor};

use common::engine;

fn shape_8x8(kernel: [usize; 2], params: Conv2dParams) -> [usize; 2] {
    let s = output_shape(&[1, 1, 8, 8], &[1, 1, kernel[0], kernel[1]], &params).unwrap();
    [s[2], s[3]]
}

#[test]
fn lecture_shapes_on_an_8x8_input() {
    let p = Conv2dParams::default();
    assert_eq!(shape_8x8([3, 3], p.with_padding(1)), [8, 8]);
    assert_eq!(shape_8x8([5, 3], p.with_padding((2, 1))), [8, 8]);
    assert_eq!(shape_8x8([3, 3], p.with_padding(1).with_stride(2)), [4, 4]);
    assert_eq!(
        shape_8x8([3, 5], p.with_padding((0, 1)).with_stride((3, 4))),
        [2, 2]
    );
}

#[test]
fn lecture_shapes_hold_on_the_gpu_and_cpu() {
    let x = Tensor::full([1, 1, 8, 8], 1.0).unwrap();
    let p = Conv2dParams::default();
    for (k, params, want) in [
        ([3, 3], p.with_padding(1), [8, 8]),
        ([5, 3], p.with_padding((2, 1)), [8, 8]),
        ([3, 3], p.with_padding(1).with_stride(2), [4, 4]),
        ([3, 5], p.with_padding((0, 1)).with_stride((3, 4)), [2, 2]),
    ] {
        let w = Tensor::full([1, 1, k[0], k[1]], 1.0).unwrap();
        let gpu = engine().conv2d(&x, &w, None, &params).unwrap();
        let cpu = cpu::reference::conv2d(&x, &w, None, &params).unwrap();
        assert_eq!(gpu.shape(), [1, 1, want[0], want[1]]);
        assert_eq!(gpu.data(), cpu.data());
    }
}

#[test]
fn output_len_follows_pytorch_formula() {
    // floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1
    assert_eq!(conv_output_len(8, 2, 3, 1, 1), Some(8));
    assert_eq!(conv_output_len(7, 0, 3, 2, 1), Some(3));
    assert_eq!(conv_output_len(7, 0, 3, 1, 3), Some(1));
    assert_eq!(conv_output_len(10, 3, 4, 3, 2), Some(3));
    assert_eq!(conv_output_len(1, 0, 1, 1, 1), Some(1));
    assert_eq!(conv_output_len(2, 0, 3, 1, 1), None);
    assert_eq!(conv_output_len(8, 0, 3, 0, 1), None);
    assert_eq!(conv_output_len(8, 0, 3, 1, 0), None);
}

#[test]
fn padding_same_with_even_kernel_puts_extra_at_bottom_and_right() {
    assert_eq!(Padding::Same.resolve((4, 2), (1, 1)), (1, 2, 0, 1));
    assert_eq!(Padding::Same.resolve((3, 3), (1, 1)), (1, 1, 1, 1));
    assert_eq!(Padding::Same.resolve((4, 2), (2, 3)), (3, 3, 1, 2));
    let s = Conv2dShape::new(
        &[2, 3, 7, 8],
        &[4, 3, 4, 2],
        None,
        &Conv2dParams::default().with_padding(Padding::Same),
    )
    .unwrap();
    assert_eq!(s.output_shape(), [2, 4, 7, 8]);
    assert_eq!(
        (s.pad_top, s.pad_bottom, s.pad_left, s.pad_right),
        (1, 2, 0, 1)
    );
}

#[test]
fn padding_valid_is_no_padding() {
    let p = Conv2dParams::default().with_padding(Padding::Valid);
    assert_eq!(
        output_shape(&[1, 2, 6, 8], &[3, 2, 3, 3], &p).unwrap(),
        [1, 3, 4, 6]
    );
}

#[test]
fn padding_builders_mean_what_pytorch_means() {
    assert_eq!(Padding::from(2), Padding::explicit(2, 2, 2, 2));
    assert_eq!(Padding::from((1, 3)), Padding::explicit(1, 1, 3, 3));
    assert_eq!(Padding::from([0, 1, 2, 3]), Padding::explicit(0, 1, 2, 3));
    let p = Conv2dParams::default().with_padding([0, 2, 1, 0]);
    assert_eq!(
        output_shape(&[1, 1, 5, 5], &[1, 1, 3, 3], &p).unwrap(),
        [1, 1, 5, 4]
    );
}

#[test]
fn grouped_and_depthwise_shapes() {
    let p = Conv2dParams::default().with_groups(4).with_padding(1);
    assert_eq!(
        output_shape(&[2, 4, 9, 9], &[8, 1, 3, 3], &p).unwrap(),
        [2, 8, 9, 9]
    );
    let s = Conv2dShape::new(
        &[2, 8, 9, 9],
        &[8, 2, 3, 3],
        None,
        &Conv2dParams::default().with_groups(4),
    )
    .unwrap();
    assert_eq!(s.reduction_len(), 18);
    assert_eq!(s.flops(), 2 * (2 * 8 * 7 * 7) * 18);
}

#[test]
fn empty_batch_returns_an_empty_output() {
    let x = Tensor::new([0, 3, 5, 5], vec![]).unwrap();
    let w = Tensor::full([4, 3, 3, 3], 1.0).unwrap();
    let b = Tensor::full([4], 1.0).unwrap();
    let p = Conv2dParams::default().with_padding(1);
    let gpu = engine().conv2d(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(gpu.shape(), [0, 4, 5, 5]);
    assert!(gpu.is_empty());
    let cpu = cpu::reference::conv2d(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(cpu.shape(), [0, 4, 5, 5]);
}
