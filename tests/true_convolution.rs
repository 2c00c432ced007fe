//! True convolution (`flip_kernel`), the lecture's "convolution versus cross-correlation": the
//! kernel turned 180 degrees. A unit impulse convolved with a kernel gives the kernel back (the
//! cross-correlation gives it turned); the GPU's true convolution is exactly its
//! cross-correlation with the turned weight, on every path (host tensors, GPU tensors, packed
//! weights, 1 to 3 axes); the host and device turns agree, and turning twice is the identity.
//! Random configurations with the flag (conv1d.rs, conv3d.rs, padding_modes.rs, epilogue.rs)
//! and the PyTorch goldens (golden_nd.rs) check it against the reference, gradients included.

mod common;

use wgconv::cpu::reference;
use wgconv::{ConvNdParams, PaddingNd, Tensor};

use common::{engine, random_tensor, rng};

/// `[1, 1, *kernel]` weight with distinct values `1, 2, ...`, and a one-element input `[1, 1,
/// 1, ...]` holding 1: padded by `k-1` on both sides of every axis, the convolution's output is
/// the kernel itself, the cross-correlation's the kernel turned.
fn impulse<const N: usize>(kernel: [usize; N]) -> (Tensor, Tensor, ConvNdParams<N>) {
    let mut w_shape = vec![1, 1];
    w_shape.extend(kernel);
    let w = Tensor::from_fn(w_shape, |i| i as f32 + 1.0).unwrap();
    let x = Tensor::full(vec![1; N + 2], 1.0).unwrap();
    let pads = kernel.map(|k| [k - 1, k - 1]);
    let params = ConvNdParams::<N>::default().with_padding(PaddingNd::Explicit(pads));
    (x, w, params)
}

#[test]
fn an_impulse_convolved_with_a_kernel_gives_the_kernel_back() {
    fn check<const N: usize>(
        kernel: [usize; N],
        gpu: impl Fn(&Tensor, &Tensor, &ConvNdParams<N>) -> wgconv::Result<Tensor>,
    ) {
        let (x, w, params) = impulse(kernel);
        let turned = w.kernel_turned().unwrap();
        for (flip, want) in [(true, &w), (false, &turned)] {
            let p = params.with_flip_kernel(flip);
            let context = format!("kernel {kernel:?}, flip {flip}");
            let y = reference::conv_nd(&x, &w, None, &p).expect(&context);
            assert_eq!(y.data(), want.data(), "reference, {context}");
            let y = gpu(&x, &w, &p).expect(&context);
            assert_eq!(y.data(), want.data(), "GPU, {context}");
        }
    }
    let e = engine();
    check([5], |x, w, p| e.conv1d(x, w, None, p));
    check([3, 4], |x, w, p| e.conv2d(x, w, None, &p.into()));
    check([2, 3, 4], |x, w, p| e.conv3d(x, w, None, p));
}

#[test]
fn turning_a_kernel_on_the_host_and_on_the_device_agree_and_twice_is_the_identity() {
    let e = engine();
    let mut rng = rng(0x7c0_0001);
    for shape in [
        vec![3, 2, 5],
        vec![4, 3, 2, 3],
        vec![2, 2, 3, 1, 2],
        vec![1, 1, 1, 1],
        vec![5, 1, 7, 7],
    ] {
        let w = random_tensor(&mut rng, &shape);
        let host = w.kernel_turned().unwrap();
        if shape[2..].iter().product::<usize>() > 1 {
            assert_ne!(host.data(), w.data(), "{shape:?}: turning changed nothing");
        }
        let device = e.kernel_turned(&e.upload(&w).unwrap()).unwrap();
        assert_eq!(e.download(&device).unwrap(), host, "{shape:?}");
        assert_eq!(host.kernel_turned().unwrap(), w, "{shape:?}: twice");
        let twice = e.kernel_turned(&device).unwrap();
        assert_eq!(
            e.download(&twice).unwrap(),
            w,
            "{shape:?}: twice on the device"
        );
    }
}

/// The true convolution of `x` by `w` with `params` and the cross-correlation by the turned `w`,
/// through `run` (host or device, any rank): the same kernels with the same weights in the same
/// order, so the same bits.
fn assert_flip_is_cross_correlation_with_turned_weight<const N: usize>(
    context: &str,
    params: ConvNdParams<N>,
    (x, w, b): (&Tensor, &Tensor, Option<&Tensor>),
    run: impl Fn(&Tensor, &Tensor, Option<&Tensor>, &ConvNdParams<N>) -> wgconv::Result<Tensor>,
) {
    let flipped = run(x, w, b, &params.with_flip_kernel(true)).expect(context);
    let turned = w.kernel_turned().unwrap();
    let plain = run(x, &turned, b, &params.with_flip_kernel(false)).expect(context);
    assert_eq!(flipped, plain, "{context}");
}

#[test]
fn true_convolution_is_cross_correlation_with_the_turned_weight_on_every_path() {
    let e = engine();
    let mut rng = rng(0x7c0_0002);
    let gpu = |t: &Tensor| e.upload(t).unwrap();
    // conv1d: host tensors, GPU tensors and packed weights.
    let (x, w, b) = (
        random_tensor(&mut rng, &[2, 6, 40]),
        random_tensor(&mut rng, &[8, 3, 5]),
        random_tensor(&mut rng, &[8]),
    );
    let p1 = ConvNdParams::<1>::default()
        .with_groups(2)
        .with_stride(2)
        .with_padding([[3, 1]]);
    let tensors = (&x, &w, Some(&b));
    assert_flip_is_cross_correlation_with_turned_weight(
        "conv1d host",
        p1,
        tensors,
        |x, w, b, p| e.conv1d(x, w, b, p),
    );
    assert_flip_is_cross_correlation_with_turned_weight("conv1d gpu", p1, tensors, |x, w, b, p| {
        let y = e.conv1d_gpu(&gpu(x), &gpu(w), b.map(gpu).as_ref(), p)?;
        e.download(&y)
    });
    assert_flip_is_cross_correlation_with_turned_weight(
        "conv1d packed",
        p1,
        tensors,
        |x, w, b, p| {
            let packed = e.pack_weights(gpu(w), p.groups)?;
            let y = e.conv1d_gpu(&gpu(x), &packed, b.map(gpu).as_ref(), p)?;
            e.download(&y)
        },
    );
    // conv2d with reflect padding, dilation and a fused activation and residual.
    let (x, w) = (
        random_tensor(&mut rng, &[1, 4, 9, 11]),
        random_tensor(&mut rng, &[6, 4, 3, 2]),
    );
    let r = random_tensor(&mut rng, &[1, 6, 7, 11]);
    let p2 = ConvNdParams::<2>::default()
        .with_padding([[1, 1], [1, 0]])
        .with_dilation([2, 1])
        .with_padding_mode(wgconv::PaddingMode::Reflect)
        .with_activation(wgconv::Activation::Silu);
    let tensors = (&x, &w, None);
    assert_flip_is_cross_correlation_with_turned_weight(
        "conv2d host",
        p2,
        tensors,
        |x, w, b, p| e.conv2d_fused(x, w, b, Some(&r), &p.into()),
    );
    assert_flip_is_cross_correlation_with_turned_weight("conv2d gpu", p2, tensors, |x, w, b, p| {
        let params = p.into();
        let y = e.conv2d_fused_gpu(
            &gpu(x),
            &gpu(w),
            b.map(gpu).as_ref(),
            Some(&gpu(&r)),
            &params,
        )?;
        e.download(&y)
    });
    // conv3d: the depth turns too.
    let (x, w, b) = (
        random_tensor(&mut rng, &[1, 2, 5, 6, 4]),
        random_tensor(&mut rng, &[3, 2, 3, 2, 2]),
        random_tensor(&mut rng, &[3]),
    );
    let p3 = ConvNdParams::<3>::default().with_padding(1);
    let tensors = (&x, &w, Some(&b));
    assert_flip_is_cross_correlation_with_turned_weight(
        "conv3d host",
        p3,
        tensors,
        |x, w, b, p| e.conv3d(x, w, b, p),
    );
    assert_flip_is_cross_correlation_with_turned_weight("conv3d gpu", p3, tensors, |x, w, b, p| {
        let y = e.conv3d_gpu(&gpu(x), &gpu(w), b.map(gpu).as_ref(), p)?;
        e.download(&y)
    });
}

#[test]
fn true_convolution_gradients_are_the_cross_correlations_with_the_weight_gradient_turned_back() {
    let e = engine();
    let mut rng = rng(0x7c0_0003);
    let gpu = |t: &Tensor| e.upload(t).unwrap();
    let (x, w) = (
        random_tensor(&mut rng, &[2, 3, 6, 7]),
        random_tensor(&mut rng, &[4, 3, 3, 2]),
    );
    let p = wgconv::Conv2dParams::default().with_padding(1);
    let gy = random_tensor(&mut rng, &[2, 4, 6, 8]);
    let flipped = e
        .conv2d_backward(
            &gpu(&x),
            &gpu(&w),
            &gpu(&gy),
            &p.with_flip_kernel(true),
            true,
        )
        .unwrap();
    let turned = w.kernel_turned().unwrap();
    let plain = e
        .conv2d_backward(&gpu(&x), &gpu(&turned), &gpu(&gy), &p, true)
        .unwrap();
    let down = |t: &wgconv::GpuTensor| e.download(t).unwrap();
    assert_eq!(down(&flipped.input), down(&plain.input), "input gradient");
    let plain_weight = down(&plain.weight).kernel_turned().unwrap();
    assert_eq!(down(&flipped.weight), plain_weight, "weight gradient");
    // The reference, whose window turns the kernel itself, agrees in f64 terms.
    let want =
        reference::conv_nd_backward_f64(&x, &w, &gy, &(&p.with_flip_kernel(true)).into()).unwrap();
    let plain = reference::conv_nd_backward_f64(&x, &turned, &gy, &(&p).into()).unwrap();
    assert_eq!(want.input, plain.input);
    let turned_back = Tensor::new(
        w.shape(),
        plain.weight.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    )
    .unwrap()
    .kernel_turned()
    .unwrap();
    let want_weight: Vec<f32> = want.weight.iter().map(|&v| v as f32).collect();
    assert_eq!(want_weight, turned_back.data());
}
