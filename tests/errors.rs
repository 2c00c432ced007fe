//! Every validation error: its kind and a message that names the offending values.

mod common;

use wgconv::gpu::plan::{self, PlanLimits};
use wgconv::{
    cpu, Algorithm, Conv2dParams, Conv2dShape, Engine, EngineOptions, Error, Padding, Tensor,
};

use common::{engine, ones};

fn shape_err(input: &[usize], weight: &[usize], bias: Option<&[usize]>, p: Conv2dParams) -> Error {
    Conv2dShape::new(input, weight, bias, &p).expect_err("this configuration must be refused")
}

#[test]
fn input_rank_other_than_3_or_4_is_refused_in_pytorch_words() {
    let e = shape_err(&[8, 8], &[4, 3, 3, 3], None, Conv2dParams::default());
    assert!(
        matches!(e, Error::InputRank { op: "conv2d", ref shape, .. } if shape == &[8, 8]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [8, 8]"
    );
}

#[test]
fn conv1d_input_rank_error_reads_like_pytorch() {
    let p = wgconv::Conv1dParams::default();
    let e = wgconv::ConvNdShape::new(&[2, 3, 4, 5], &[4, 3, 3], None, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: [2, 3, 4, 5]"
    );
    let e = wgconv::ConvNdShape::new(&[2, 3, 8], &[4, 3, 3, 3], None, &p).unwrap_err();
    assert!(matches!(e, Error::WeightRank { op: "conv1d", .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "expected 3D weight [O, C/groups, k] to conv1d, but got weight of size [4, 3, 3, 3]"
    );
}

#[test]
fn conv1d_kernel_too_large_and_same_with_stride_read_like_pytorch() {
    let p = wgconv::Conv1dParams::default().with_padding(1);
    let e = wgconv::ConvNdShape::new(&[1, 3, 5], &[4, 3, 9], None, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Calculated padded input size per channel: (7). Kernel size: (9). Kernel size can't be greater than actual input size"
    );
    let p = wgconv::Conv1dParams::default()
        .with_padding(wgconv::PaddingNd::Same)
        .with_stride(2);
    let e = wgconv::ConvNdShape::new(&[1, 3, 5], &[4, 3, 3], None, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "padding='same' is not supported for strided convolutions: got stride=(2,)"
    );
    let p = wgconv::Conv1dParams::default().with_dilation(0);
    let e = wgconv::ConvNdShape::new(&[1, 3, 5], &[4, 3, 3], None, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "non-positive dilation is not supported: got dilation=(0,)"
    );
}

#[test]
fn conv1d_channel_and_bias_errors_name_the_1d_shapes() {
    let p = wgconv::Conv1dParams::default();
    let e = wgconv::ConvNdShape::new(&[2, 4, 10], &[8, 3, 3], None, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Given groups=1, weight of size [8, 3, 3], expected input[2, 4, 10] to have 3 channels, but got 4 channels instead"
    );
    let e = wgconv::ConvNdShape::new(&[4, 10], &[8, 4, 3], Some(&[7]), &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Given weight of size [8, 4, 3], expected bias to be 1-dimensional with 8 elements, but got bias of size [7] instead"
    );
}

#[test]
fn weight_rank_other_than_4_is_refused() {
    let e = shape_err(&[1, 3, 8, 8], &[4, 3, 3], None, Conv2dParams::default());
    assert!(matches!(e, Error::WeightRank { .. }), "{e:?}");
    assert!(e.to_string().contains("[4, 3, 3]"), "{e}");
}

#[test]
fn channel_mismatch_reads_like_pytorch() {
    let e = shape_err(
        &[1, 4, 64, 64],
        &[8, 3, 1, 1],
        None,
        Conv2dParams::default(),
    );
    assert!(
        matches!(
            e,
            Error::ChannelMismatch {
                expected: 3,
                got: 4,
                groups: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given groups=1, weight of size [8, 3, 1, 1], expected input[1, 4, 64, 64] to have 3 channels, but got 4 channels instead"
    );
}

#[test]
fn kernel_larger_than_padded_input_reads_like_pytorch() {
    let e = shape_err(
        &[1, 1, 1, 1],
        &[1, 1, 10, 10],
        None,
        Conv2dParams::default(),
    );
    assert!(
        matches!(
            e,
            Error::KernelTooLarge {
                ref padded,
                ref kernel,
            } if padded == &[1, 1] && kernel == &[10, 10]
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Calculated padded input size per channel: (1 x 1). Kernel size: (10 x 10). Kernel size can't be greater than actual input size"
    );
}

#[test]
fn dilated_kernel_size_counts_in_the_too_large_check() {
    // 5 + 2 padding rows fit a 3-tap kernel with dilation 3 (span 7) exactly: one output row.
    let p = Conv2dParams::default().with_dilation(3).with_padding(1);
    assert_eq!(
        wgconv::output_shape(&[1, 1, 5, 9], &[1, 1, 3, 3], &p).unwrap(),
        [1, 1, 1, 5]
    );
    let e = shape_err(&[1, 1, 4, 9], &[1, 1, 3, 3], None, p);
    assert!(
        matches!(
            e,
            Error::KernelTooLarge {
                ref padded,
                ref kernel,
            } if padded == &[6, 11] && kernel == &[7, 7]
        ),
        "{e:?}"
    );
}

#[test]
fn groups_must_divide_output_channels() {
    let e = shape_err(
        &[1, 4, 8, 8],
        &[3, 2, 3, 3],
        None,
        Conv2dParams::default().with_groups(2),
    );
    assert!(
        matches!(e, Error::OutChannelsNotDivisible { groups: 2, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size [3, 2, 3, 3] instead"
    );
}

#[test]
fn groups_must_divide_input_channels() {
    let e = shape_err(
        &[1, 5, 8, 8],
        &[4, 2, 3, 3],
        None,
        Conv2dParams::default().with_groups(2),
    );
    assert!(
        matches!(
            e,
            Error::InChannelsNotDivisible {
                groups: 2,
                channels: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("divisible by 2") && e.to_string().contains("5 channels"),
        "{e}"
    );
}

#[test]
fn bias_length_must_match_output_channels() {
    let e = shape_err(
        &[1, 3, 8, 8],
        &[8, 3, 3, 3],
        Some(&[5]),
        Conv2dParams::default(),
    );
    assert!(matches!(e, Error::BiasShape { expected: 8, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Given weight of size [8, 3, 3, 3], expected bias to be 1-dimensional with 8 elements, but got bias of size [5] instead"
    );
    let e = shape_err(
        &[1, 3, 8, 8],
        &[8, 3, 3, 3],
        Some(&[8, 1]),
        Conv2dParams::default(),
    );
    assert!(matches!(e, Error::BiasShape { .. }), "{e:?}");
}

#[test]
fn zero_stride_dilation_or_groups_is_refused() {
    let (x, w) = ([1, 3, 8, 8], [4, 3, 3, 3]);
    let e = shape_err(&x, &w, None, Conv2dParams::default().with_stride((0, 1)));
    assert!(
        matches!(e, Error::NonPositive { name: "stride", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "non-positive stride is not supported: got stride=(0, 1)"
    );
    let e = shape_err(&x, &w, None, Conv2dParams::default().with_dilation(0));
    assert!(
        matches!(
            e,
            Error::NonPositive {
                name: "dilation",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "non-positive dilation is not supported: got dilation=(0, 0)"
    );
    let e = shape_err(&x, &w, None, Conv2dParams::default().with_groups(0));
    assert!(
        matches!(e, Error::NonPositive { name: "groups", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "non-positive groups is not supported: got groups=0"
    );
}

#[test]
fn same_padding_with_stride_is_refused() {
    let e = shape_err(
        &[1, 3, 8, 8],
        &[4, 3, 3, 3],
        None,
        Conv2dParams::default()
            .with_padding(Padding::Same)
            .with_stride(2),
    );
    assert!(
        matches!(
            e,
            Error::SameWithStride { ref stride } if stride == &[2, 2]
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "padding='same' is not supported for strided convolutions: got stride=(2, 2)"
    );
}

#[test]
fn empty_non_batch_dimensions_are_refused() {
    let e = shape_err(&[1, 3, 0, 8], &[4, 3, 3, 3], None, Conv2dParams::default());
    assert!(
        matches!(e, Error::EmptyDimension { what: "input", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("[1, 3, 0, 8]"), "{e}");
    let e = shape_err(&[1, 3, 8, 8], &[0, 3, 3, 3], None, Conv2dParams::default());
    assert!(
        matches!(e, Error::EmptyDimension { what: "weight", .. }),
        "{e:?}"
    );
    // A weight has no batch, so its message names none.
    assert_eq!(
        e.to_string(),
        "expected non-zero size for every dimension of weight, but got weight of size [0, 3, 3, 3]"
    );
}

#[test]
fn data_length_must_match_the_shape() {
    let e = Tensor::new([1, 2, 3, 3], vec![0.0; 17]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DataLength {
                expected: 18,
                got: 17,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "tensor of shape [1, 2, 3, 3] needs 18 elements, but 17 were given"
    );
}

#[test]
fn shape_errors_come_before_any_gpu_work_on_every_path() {
    let x = ones(&[1, 4, 8, 8]);
    let w = ones(&[8, 3, 1, 1]);
    let p = Conv2dParams::default();
    for e in [
        engine().conv2d(&x, &w, None, &p).unwrap_err(),
        pollster::block_on(engine().conv2d_async(&x, &w, None, &p)).unwrap_err(),
        cpu::reference::conv2d(&x, &w, None, &p).unwrap_err(),
    ] {
        assert!(matches!(e, Error::ChannelMismatch { .. }), "{e:?}");
    }
}

#[test]
fn sizes_overflowing_u32_shader_indices_are_refused() {
    // 1 x 1 x 70000 x 70000 = 4.9e9 elements: more than u32 indices address.
    let s = Conv2dShape::new(
        &[1, 1, 70_000, 70_000],
        &[1, 1, 1, 1],
        None,
        &Conv2dParams::default(),
    )
    .unwrap();
    let e = plan::plan(&s, &PlanLimits::unlimited_cpu(), Algorithm::Auto).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                value: 4_900_000_000,
                limit: 4_294_967_295,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("input element count is too large: 4900000000 exceeds 4294967295"),
        "{e}"
    );
}

#[test]
fn buffers_over_the_device_limits_are_refused() {
    let s = Conv2dShape::new(
        &[1, 1, 100, 100],
        &[1, 1, 1, 1],
        None,
        &Conv2dParams::default(),
    )
    .unwrap();
    let limits = PlanLimits {
        max_binding: 1024,
        max_buffer: 1 << 20,
        ..PlanLimits::unlimited_cpu()
    };
    let e = plan::plan(&s, &limits, Algorithm::Auto).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeviceLimit {
                bytes: 40_000,
                limit: 1024,
                limit_name: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "input needs 40000 bytes, more than the device's max_storage_buffer_binding_size of 1024 bytes");
}

#[test]
fn a_device_with_small_limits_splits_what_it_can_and_refuses_the_rest_with_a_typed_error() {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 4096,
        ..wgpu::Limits::downlevel_defaults()
    };
    let small = Engine::with_options(EngineOptions {
        limits: Some(limits),
        ..EngineOptions::default()
    })
    .expect("an engine with small limits");
    let w = ones(&[1, 1, 3, 3]);
    // 1600 values, over the 1024 of one binding: split over rows, and right.
    let x = ones(&[1, 1, 40, 40]);
    let y = small
        .conv2d(&x, &w, None, &Conv2dParams::default())
        .unwrap();
    assert_eq!(y.shape(), [1, 1, 38, 38]);
    assert!(y.data().iter().all(|&v| v == 9.0));
    // One output row reads 3 rows of 2000 values: no piece fits.
    let x = ones(&[1, 1, 3, 2000]);
    let e = small
        .conv2d(&x, &w, None, &Conv2dParams::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeviceLimit {
                bytes: 24000,
                limit: 4096,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "input needs 24000 bytes, more than the device's max_storage_buffer_binding_size of 4096 bytes");
}

#[test]
fn tensors_from_another_engine_are_refused() {
    let other = Engine::new().expect("a second engine");
    let x = other.upload(&ones(&[1, 1, 4, 4])).unwrap();
    let w = engine().upload(&ones(&[1, 1, 3, 3])).unwrap();
    let e = engine()
        .conv2d_gpu(&x, &w, None, &Conv2dParams::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::ForeignTensor { what: "input", .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("download it and upload it to this engine"),
        "{e}"
    );
}

#[test]
fn an_output_tensor_of_the_wrong_shape_is_refused() {
    let x = engine().upload(&ones(&[1, 1, 4, 4])).unwrap();
    let w = engine().upload(&ones(&[1, 1, 3, 3])).unwrap();
    let mut out = engine().alloc(&[1, 1, 3, 3]).unwrap();
    let e = engine()
        .conv2d_into(&x, &w, None, &Conv2dParams::default(), &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::OutputShape { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "output tensor has shape [1, 1, 3, 3], but this convolution produces [1, 1, 2, 2]"
    );
}

#[test]
fn an_unknown_adapter_name_is_an_error_with_an_install_hint() {
    let e = Engine::with_options(EngineOptions {
        adapter_name: Some("no-such-adapter-xyz".into()),
        ..EngineOptions::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::NoAdapter { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-adapter-xyz") && msg.contains("mesa-vulkan-drivers"),
        "{msg}"
    );
}

#[test]
fn lecture_functions_refuse_bad_shapes() {
    use ndarray::{Array2, Array3, Array4};
    let e =
        wgconv::cpu::lecture::corr2d(Array2::zeros((2, 2)).view(), Array2::zeros((3, 1)).view())
            .unwrap_err();
    assert!(matches!(e, Error::KernelTooLarge { .. }), "{e:?}");
    let e = wgconv::cpu::lecture::corr2d_multi_in(
        Array3::zeros((2, 3, 3)).view(),
        Array3::zeros((3, 2, 2)).view(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ChannelMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{e:?}"
    );
    let e = wgconv::cpu::lecture::corr2d_multi_in_out_1x1(
        Array3::zeros((2, 3, 3)).view(),
        Array4::zeros((1, 2, 3, 3)).view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotPointwise { .. }), "{e:?}");
}

#[test]
fn a_forced_algorithm_that_does_not_cover_the_shape_is_refused() {
    let x = engine().upload(&ones(&[1, 2, 6, 6])).unwrap();
    let w = engine().upload(&ones(&[4, 2, 3, 3])).unwrap();
    let mut out = engine().alloc(&[1, 4, 4, 4]).unwrap();
    let e = engine()
        .conv2d_into_with(
            Algorithm::Pointwise,
            &x,
            &w,
            None,
            &Conv2dParams::default(),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedAlgorithm {
                algorithm: "pointwise",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the pointwise algorithm cannot run this convolution: it needs a 1x1 kernel, stride 1, \
         no padding and groups 1; got kernel 3x3, stride (1, 1), padding [0, 0, 0, 0], groups 1"
    );
    // A GEMM kernel the device cannot hold names the limit and the values.
    let shape =
        Conv2dShape::new(&[1, 2, 6, 6], &[4, 2, 3, 3], None, &Conv2dParams::default()).unwrap();
    let limits = PlanLimits {
        max_invocations: 8,
        ..PlanLimits::unlimited_cpu()
    };
    let e = plan::schedule(&shape, &limits, Algorithm::RegisterTiled).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "the register-tiled algorithm cannot run this convolution: its workgroups of"
        ) && e
            .to_string()
            .ends_with("exceed max_compute_invocations_per_workgroup 8"),
        "{e}"
    );
}

#[test]
fn packed_weights_refuse_other_groups() {
    let w = engine().upload(&ones(&[4, 1, 3, 3])).unwrap();
    let packed = engine().pack_weights(w, 2).unwrap();
    let x = engine().upload(&ones(&[1, 2, 6, 6])).unwrap();
    let mut out = engine().alloc(&[1, 4, 4, 4]).unwrap();
    let e = engine()
        .conv2d_into(&x, &packed, None, &Conv2dParams::default(), &mut out)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::PackedGroups {
                packed: 2,
                requested: 1
            }
        ),
        "{e:?}"
    );
    let e = engine()
        .pack_weights(engine().upload(&ones(&[3, 1, 3, 3])).unwrap(), 2)
        .unwrap_err();
    assert!(
        matches!(e, Error::OutChannelsNotDivisible { groups: 2, .. }),
        "{e:?}"
    );
}

#[test]
fn absurd_sizes_are_errors_not_panics() {
    // Padding::Same with a huge dilation: the span overflows and is refused.
    let p = Conv2dParams::default()
        .with_padding(Padding::Same)
        .with_dilation(usize::MAX / 2);
    assert!(Conv2dShape::new(&[1, 1, 8, 8], &[1, 1, 3, 3], None, &p).is_err());
    // A shape whose FLOP count overflows u64 still plans to a typed error.
    let s = Conv2dShape::new(
        &[1, 1, 1 << 30, 1 << 30],
        &[1, 1, 1 << 15, 1 << 15],
        None,
        &Conv2dParams::default(),
    )
    .unwrap();
    assert_eq!(s.flops(), u64::MAX);
    assert!(plan::plan(&s, &PlanLimits::unlimited_cpu(), Algorithm::Auto).is_err());
    // Host memory that cannot be had is an error, not an abort.
    let e = Tensor::full([1 << 20, 1 << 20, 1 << 10], 0.0).unwrap_err();
    assert!(
        matches!(e, Error::HostMemory { bytes, .. } if bytes == 1 << 52),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(
            "a tensor of shape [1048576, 1048576, 1024] needs 4503.6 TB (4503599627370496 bytes) of host memory, but "
        ),
        "{e}"
    );
}

#[test]
fn an_unbounded_wait_is_allowed() {
    let forever = Engine::with_options(EngineOptions {
        wait_timeout: std::time::Duration::MAX,
        ..EngineOptions::default()
    })
    .unwrap();
    let y = forever
        .conv2d(
            &ones(&[1, 1, 4, 4]),
            &ones(&[1, 1, 3, 3]),
            None,
            &Conv2dParams::default(),
        )
        .unwrap();
    assert!(y.data().iter().all(|&v| v == 9.0));
    forever.synchronize().unwrap();
}

#[test]
fn a_convolution_over_four_spatial_axes_is_refused() {
    let p = wgconv::ConvNdParams::<4>::default();
    let e =
        wgconv::ConvNdShape::new(&[1, 1, 2, 2, 2, 2], &[1, 1, 1, 1, 1, 1], None, &p).unwrap_err();
    assert!(matches!(e, Error::SpatialDims { dims: 4 }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "convolutions have 1, 2 or 3 spatial dimensions, but 4 were asked for"
    );
}

#[test]
fn unbatched_channel_errors_name_the_batch_of_one_as_pytorch_does() {
    let e =
        Conv2dShape::new(&[4, 8, 8], &[8, 3, 1, 1], None, &Conv2dParams::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Given groups=1, weight of size [8, 3, 1, 1], expected input[1, 4, 8, 8] to have 3 channels, but got 4 channels instead"
    );
}
