//! The CPU reference's backward pass and transposed convolution, checked without PyTorch: central
//! differences of the forward reference, adjoint identities, hand-worked examples, and the
//! transposed convolution's shape errors.

mod common;

use rand_chacha::ChaCha8Rng;
use wgconv::cpu::reference::{conv2d_backward_f64, conv2d_f64, conv_transpose2d_f64};
use wgconv::{
    Conv2dParams, Conv2dShape, ConvTranspose2dParams, ConvTranspose2dShape, Error, Padding, Tensor,
};

use common::{
    abs_plus, check_against_central_differences, dot, random_config, random_tensor, rng, to_f64,
    Config,
};

/// Multiply-adds per random configuration: small, so that dozens of them run in well under a
/// second, yet large enough for multi-channel, strided, dilated and grouped shapes.
const MAX_MACS: usize = 3000;

/// A random configuration with batch <= 2, at most 8 input and 16 output channels.
fn small_config(rng: &mut ChaCha8Rng) -> Config {
    loop {
        let cfg = random_config(rng, MAX_MACS, false);
        if cfg.input[0] <= 2 && cfg.input[1] <= 8 && cfg.weight[0] <= 16 {
            return cfg;
        }
    }
}

/// Hand-picked configurations that every run covers whatever the seed: depthwise with a channel
/// multiplier, grouped, even kernel with 'same', asymmetric padding with stride and dilation,
/// stride leaving rows unread, batch 2, a 1x1 input.
fn fixed_configs() -> Vec<Config> {
    let cfg = |input, weight, params| Config {
        input,
        weight,
        bias: true,
        params,
    };
    let p = Conv2dParams::default;
    vec![
        cfg(
            [2, 3, 7, 6],
            [6, 1, 3, 3],
            p().with_groups(3).with_padding(1).with_stride(2),
        ),
        cfg(
            [1, 4, 6, 7],
            [6, 2, 2, 3],
            p().with_groups(2).with_dilation((2, 1)),
        ),
        cfg([1, 2, 5, 6], [3, 2, 4, 2], p().with_padding(Padding::Same)),
        cfg(
            [2, 2, 8, 9],
            [3, 2, 3, 2],
            p().with_padding([0, 2, 3, 1])
                .with_stride((2, 3))
                .with_dilation((2, 2)),
        ),
        cfg([1, 2, 11, 10], [2, 2, 3, 3], p().with_stride(3)),
        cfg([1, 3, 1, 1], [2, 3, 3, 3], p().with_padding(1)),
        cfg([1, 1, 6, 8], [1, 1, 1, 2], p()),
    ]
}

#[test]
fn gradients_match_central_differences_on_random_configurations() {
    let mut rng = rng(0x6772_6164);
    let mut configs = fixed_configs();
    configs.extend((0..64).map(|_| small_config(&mut rng)));
    for cfg in &configs {
        let params = (&cfg.params).into();
        check_against_central_differences(
            &cfg.describe(),
            &cfg.input,
            &cfg.weight,
            &params,
            &mut rng,
        );
    }
}

/// `L` is linear in `x` and in `w` separately, so `L(x, w, b) = <x, dL/dx> + <b, dL/db>` and
/// `L = <w, dL/dw> + <b, dL/db>`, with `L = <conv2d(x, w, b), G>`: the input gradient is the
/// adjoint of the convolution in `x`, the weight gradient in `w`.
///
/// Tolerance: the three sides sum the same products `G * x * w` (and `G * b`) in different
/// orders, each side at most `K + M + 1` deep for the forward and `O/groups*kh*kw + N*C*H*W` or
/// `N*P*Q + weights` deep for the gradients; each is within `depth * eps64/2 * S` of exact,
/// `S = <|G|, conv2d(|x|, |w|, |b|)>`. The check allows the sum of all depths times `eps64 * S`.
#[test]
fn input_and_weight_gradients_are_adjoints_of_the_convolution() {
    let mut rng = rng(0x6164_6a6f);
    let mut configs = fixed_configs();
    configs.extend((0..64).map(|_| small_config(&mut rng)));
    for cfg in &configs {
        let context = cfg.describe();
        let x = random_tensor(&mut rng, &cfg.input);
        let w = random_tensor(&mut rng, &cfg.weight);
        let b = random_tensor(&mut rng, &[cfg.weight[0]]);
        let (s, y) = conv2d_f64(&x, &w, Some(&b), &cfg.params).expect(&context);
        let g = random_tensor(&mut rng, &s.output_shape());
        let grads = conv2d_backward_f64(&x, &w, &g, &cfg.params).expect(&context);

        let forward = dot(&y, &to_f64(&g));
        let bias_part = dot(&to_f64(&b), &grads.bias);
        let through_input = dot(&to_f64(&x), &grads.input) + bias_part;
        let through_weight = dot(&to_f64(&w), &grads.weight) + bias_part;

        let (_, y_abs) = conv2d_f64(
            &abs_plus(&x, 0.0),
            &abs_plus(&w, 0.0),
            Some(&abs_plus(&b, 0.0)),
            &cfg.params,
        )
        .expect(&context);
        let size = dot(&y_abs, &to_f64(&abs_plus(&g, 0.0)));
        let depth = (s.reduction_len() + s.output_len() + 1)
            + (s.out_channels_per_group() * s.kernel_h * s.kernel_w + s.input_len())
            + (s.batch * s.out_h * s.out_w + s.weight_len())
            + s.out_channels;
        let tol = depth as f64 * f64::EPSILON * size;
        assert!(
            (forward - through_input).abs() <= tol,
            "{context}: <conv2d(x, w, b), G> = {forward:e} but <x, dL/dx> + <b, dL/db> = \
             {through_input:e} (tolerance {tol:e})"
        );
        assert!(
            (forward - through_weight).abs() <= tol,
            "{context}: <conv2d(x, w, b), G> = {forward:e} but <w, dL/dw> + <b, dL/db> = \
             {through_weight:e} (tolerance {tol:e})"
        );
    }
}

/// The transposed convolution PyTorch would use for a convolution's input gradient: same stride,
/// padding, dilation and groups, and the output padding that restores the input size
/// (`H - ((P-1)*sh - 2*ph + dh*(kh-1) + 1)`, always below the stride).
fn transposed_params_of(s: &Conv2dShape) -> ConvTranspose2dParams {
    assert_eq!((s.pad_top, s.pad_left), (s.pad_bottom, s.pad_right));
    let full = |n: usize, st: usize, pad: usize, d: usize, k: usize| {
        ((n - 1) * st + d * (k - 1) + 1) as i128 - 2 * pad as i128
    };
    let op_h = s.in_h as i128 - full(s.out_h, s.stride_h, s.pad_top, s.dilation_h, s.kernel_h);
    let op_w = s.in_w as i128 - full(s.out_w, s.stride_w, s.pad_left, s.dilation_w, s.kernel_w);
    ConvTranspose2dParams::default()
        .with_stride((s.stride_h, s.stride_w))
        .with_padding((s.pad_top, s.pad_left))
        .with_output_padding((op_h as usize, op_w as usize))
        .with_dilation((s.dilation_h, s.dilation_w))
        .with_groups(s.groups)
}

/// A random small configuration whose padding is symmetric (as `conv_transpose2d`'s is).
fn symmetric_config(rng: &mut ChaCha8Rng) -> Config {
    loop {
        let cfg = small_config(rng);
        let s = Conv2dShape::new(&cfg.input, &cfg.weight, None, &cfg.params).expect("valid");
        if (s.pad_top, s.pad_left) == (s.pad_bottom, s.pad_right) {
            return cfg;
        }
    }
}

/// The scatter over the convolution's terms and the scatter over the transposed convolution's
/// input elements add the same products `G * w` into each input-gradient element, in different
/// orders: at most `O/groups * kh * kw` of them, so each side is within that many `eps64/2` of
/// the sum of their absolute values (the same transposed convolution on `|G|`, `|w|`).
#[test]
fn conv_transpose2d_with_a_convolutions_parameters_is_its_input_gradient() {
    let mut rng = rng(0x7472_616e);
    let mut configs: Vec<Config> = fixed_configs()
        .into_iter()
        .filter(|c| {
            let s = Conv2dShape::new(&c.input, &c.weight, None, &c.params).expect("valid");
            (s.pad_top, s.pad_left) == (s.pad_bottom, s.pad_right)
        })
        .collect();
    configs.extend((0..64).map(|_| symmetric_config(&mut rng)));
    let mut output_padding_used = false;
    for cfg in &configs {
        let context = cfg.describe();
        let s = Conv2dShape::new(&cfg.input, &cfg.weight, None, &cfg.params).expect(&context);
        let w = random_tensor(&mut rng, &cfg.weight);
        let x = random_tensor(&mut rng, &cfg.input);
        let g = random_tensor(&mut rng, &s.output_shape());
        let grads = conv2d_backward_f64(&x, &w, &g, &cfg.params).expect(&context);

        let tp = transposed_params_of(&s);
        output_padding_used |= tp.output_padding != (0, 0);
        let (ts, got) = conv_transpose2d_f64(&g, &w, None, &tp)
            .unwrap_or_else(|e| panic!("{context}: transposed {tp:?}: {e}"));
        assert_eq!(
            ts,
            ConvTranspose2dShape::input_gradient_of(&s),
            "{context}: {tp:?}"
        );
        assert_eq!(ts.output_shape(), s.input_shape(), "{context}");

        let (_, size) =
            conv_transpose2d_f64(&abs_plus(&g, 0.0), &abs_plus(&w, 0.0), None, &tp).expect("ok");
        let terms = s.out_channels_per_group() * s.kernel_h * s.kernel_w;
        for (k, ((&t, &r), &m)) in got.iter().zip(&grads.input).zip(&size).enumerate() {
            let tol = terms as f64 * f64::EPSILON * m;
            assert!(
                (t - r).abs() <= tol,
                "{context}: {tp:?}: element {k}: conv_transpose2d {t:e}, input gradient {r:e}"
            );
        }
    }
    assert!(
        output_padding_used,
        "no configuration needed an output padding"
    );
}

/// `x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]`, `w = [[1, 2], [3, 4]]`, `G = ones(2, 2)`: each weight
/// sees the 2x2 block it slides over (`1+2+4+5 = 12`, ...), each input element the weights that
/// touch it (the centre all four: `1+2+3+4 = 10`), the bias the four outputs.
#[test]
fn gradients_of_a_2x2_kernel_on_a_3x3_image_worked_by_hand() {
    let x = Tensor::new([1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let w = Tensor::new([1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let g = Tensor::full([1, 1, 2, 2], 1.0).unwrap();
    let grads = conv2d_backward_f64(&x, &w, &g, &Conv2dParams::default()).unwrap();
    assert_eq!(grads.weight, [12.0, 16.0, 24.0, 28.0]);
    assert_eq!(grads.input, [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    assert_eq!(grads.bias, [4.0]);
}

/// Stride 2 with a 2x2 kernel pastes one scaled copy of the kernel per input element, side by side;
/// padding 1 crops a ring off the 4x4 result, and output padding 1 widens the window at the
/// bottom/right again, into rows and columns that still hold contributions.
#[test]
fn transposed_convolution_with_stride_padding_and_output_padding_worked_by_hand() {
    let x = Tensor::new([1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let w = Tensor::new([1, 1, 2, 2], vec![1.0, 10.0, 100.0, 1000.0]).unwrap();
    let p = ConvTranspose2dParams::default().with_stride(2);
    let (s, full) = conv_transpose2d_f64(&x, &w, None, &p).unwrap();
    assert_eq!(s.output_shape(), [1, 1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        1.0, 10.0, 2.0, 20.0,
        100.0, 1000.0, 200.0, 2000.0,
        3.0, 30.0, 4.0, 40.0,
        300.0, 3000.0, 400.0, 4000.0,
    ];
    assert_eq!(full, want);

    let (s, cropped) = conv_transpose2d_f64(&x, &w, None, &p.with_padding(1)).unwrap();
    assert_eq!(s.output_shape(), [1, 1, 2, 2]);
    assert_eq!(cropped, [1000.0, 200.0, 30.0, 4.0]);

    let b = Tensor::new([1], vec![0.5]).unwrap();
    let p = p.with_padding(1).with_output_padding(1);
    let (s, widened) = conv_transpose2d_f64(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(s.output_shape(), [1, 1, 3, 3]);
    #[rustfmt::skip]
    let want = [
        1000.5, 200.5, 2000.5,
        30.5, 4.5, 40.5,
        3000.5, 400.5, 4000.5,
    ];
    assert_eq!(widened, want);
}

/// With stride 1 and dilation 2, output padding 1 is allowed (it is below the dilation) and adds a
/// row and a column past the full scatter: there only the bias lands.
#[test]
fn output_padding_at_or_above_the_stride_is_allowed_below_the_dilation() {
    let x = Tensor::full([1, 1, 2, 2], 1.0).unwrap();
    let w = Tensor::full([1, 1, 2, 2], 1.0).unwrap();
    let b = Tensor::new([1], vec![-1.0]).unwrap();
    let p = ConvTranspose2dParams::default()
        .with_dilation(2)
        .with_output_padding(1);
    let (s, out) = conv_transpose2d_f64(&x, &w, Some(&b), &p).unwrap();
    // (2-1)*1 - 0 + 2*(2-1) + 1 + 1 = 5.
    assert_eq!(s.output_shape(), [1, 1, 5, 5]);
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 0.0, -1.0,
        0.0, 0.0, 0.0, 0.0, -1.0,
        0.0, 0.0, 0.0, 0.0, -1.0,
        0.0, 0.0, 0.0, 0.0, -1.0,
        -1.0, -1.0, -1.0, -1.0, -1.0,
    ];
    assert_eq!(out, want);
}

#[test]
fn empty_batch_has_zero_weight_and_bias_gradients() {
    let x = Tensor::new([0, 2, 5, 5], vec![]).unwrap();
    let w = Tensor::full([3, 2, 3, 3], 1.0).unwrap();
    let g = Tensor::new([0, 3, 3, 3], vec![]).unwrap();
    let grads = conv2d_backward_f64(&x, &w, &g, &Conv2dParams::default()).unwrap();
    assert!(grads.input.is_empty());
    assert_eq!(grads.weight, vec![0.0; 54]);
    assert_eq!(grads.bias, vec![0.0; 3]);
}

#[test]
fn grad_output_of_the_wrong_shape_is_refused_naming_both_shapes() {
    let x = Tensor::full([1, 2, 4, 4], 1.0).unwrap();
    let w = Tensor::full([3, 2, 3, 3], 1.0).unwrap();
    for bad in [vec![1, 3, 3, 3], vec![3, 2, 2], vec![1, 2, 2, 2]] {
        let g = Tensor::full(bad.clone(), 1.0).unwrap();
        let e = conv2d_backward_f64(&x, &w, &g, &Conv2dParams::default()).unwrap_err();
        match &e {
            Error::GradOutputShape { expected, got } => {
                assert_eq!(expected, &[1, 3, 2, 2]);
                assert_eq!(got, &bad);
            }
            other => panic!("{bad:?}: expected GradOutputShape, got {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            format!(
                "Mismatch in shape: grad_output has a shape of {bad:?} and the convolution's \
                 output has a shape of [1, 3, 2, 2]"
            )
        );
    }
    // The convolution itself is validated first, as the forward pass validates it.
    let g = Tensor::full([1, 3, 2, 2], 1.0).unwrap();
    let w4 = Tensor::full([3, 4, 3, 3], 1.0).unwrap();
    let e = conv2d_backward_f64(&x, &w4, &g, &Conv2dParams::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ChannelMismatch {
                expected: 4,
                got: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

fn transposed(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    p: ConvTranspose2dParams,
) -> Error {
    let e = ConvTranspose2dShape::new(input, weight, bias, &p).unwrap_err();
    // The f64 reference refuses it with the same error.
    let t = |shape: &[usize]| Tensor::full(shape.to_vec(), 1.0).unwrap();
    let b = bias.map(t);
    let e2 = conv_transpose2d_f64(&t(input), &t(weight), b.as_ref(), &p).unwrap_err();
    assert_eq!(e.to_string(), e2.to_string());
    e
}

#[test]
fn transposed_output_padding_not_below_stride_or_dilation_is_refused() {
    let p = ConvTranspose2dParams::default()
        .with_stride(2)
        .with_output_padding((0, 2));
    let e = transposed(&[1, 2, 4, 4], &[2, 3, 3, 3], None, p);
    assert!(
        matches!(
            &e,
            Error::OutputPaddingTooLarge {
                output_padding,
                stride,
                dilation,
            } if output_padding == &[0, 2] && stride == &[2, 2] && dilation == &[1, 1]
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "output padding must be smaller than either stride or dilation, but got \
         output_padding_height: 0 output_padding_width: 2 stride_height: 2 stride_width: 2 \
         dilation_height: 1 dilation_width: 1"
    );
    // Equal to both the stride and the dilation: still refused.
    let p = ConvTranspose2dParams::default()
        .with_dilation(2)
        .with_stride(2)
        .with_output_padding(2);
    let e = transposed(&[1, 2, 4, 4], &[2, 3, 3, 3], None, p);
    assert!(matches!(e, Error::OutputPaddingTooLarge { .. }), "{e:?}");
    // Below the dilation (though not the stride) on both axes: accepted.
    let p = ConvTranspose2dParams::default()
        .with_dilation(3)
        .with_output_padding(2);
    let s = ConvTranspose2dShape::new(&[1, 2, 4, 4], &[2, 3, 3, 3], None, &p).unwrap();
    // (4-1)*1 - 0 + 3*(3-1) + 2 + 1 = 12.
    assert_eq!(s.output_shape(), [1, 3, 12, 12]);
}

#[test]
fn transposed_channel_mismatch_names_weight_and_input() {
    let e = transposed(
        &[1, 2, 4, 4],
        &[3, 3, 3, 3],
        None,
        ConvTranspose2dParams::default(),
    );
    assert!(
        matches!(
            &e,
            Error::TransposedChannelMismatch { expected: 3, got: 2, weight, input }
                if weight == &[3, 3, 3, 3] && input == &[1, 2, 4, 4]
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given transposed=1, weight of size [3, 3, 3, 3], expected input[1, 2, 4, 4] to have \
         3 channels, but got 2 channels instead"
    );
}

#[test]
fn transposed_groups_must_divide_the_weights_first_dimension() {
    let p = ConvTranspose2dParams::default().with_groups(2);
    let e = transposed(&[1, 3, 4, 4], &[3, 2, 3, 3], None, p);
    assert!(
        matches!(&e, Error::OutChannelsNotDivisible { groups: 2, weight } if weight == &[3, 2, 3, 3]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of \
         size [3, 2, 3, 3] instead"
    );
    // Divisible: weight [4, 3, ..] with groups 2 maps 4 input channels to 6 output channels.
    let s = ConvTranspose2dShape::new(&[1, 4, 4, 4], &[4, 3, 3, 3], None, &p).unwrap();
    assert_eq!(s.output_shape(), [1, 6, 6, 6]);
}

#[test]
fn transposed_bias_must_have_one_element_per_output_channel() {
    // Output channels are weight[1] * groups = 3 * 2.
    let p = ConvTranspose2dParams::default().with_groups(2);
    let e = transposed(&[1, 4, 4, 4], &[4, 3, 3, 3], Some(&[4]), p);
    assert!(
        matches!(&e, Error::TransposedBiasShape { expected: 6, got, weight } if got == &[4] && weight == &[4, 3, 3, 3]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given transposed=1, weight of size [4, 3, 3, 3], expected bias to be 1-dimensional \
         with 6 elements, but got bias of size [4] instead"
    );
}

#[test]
fn transposed_padding_that_removes_the_whole_output_is_refused() {
    // (4-1)*1 - 2*3 + (3-1) + 1 = 0.
    let p = ConvTranspose2dParams::default().with_padding(3);
    let e = transposed(&[1, 2, 4, 4], &[2, 3, 3, 3], None, p);
    assert!(
        matches!(
            &e,
            Error::TransposedOutputTooSmall { input, output }
                if input == &[4, 4] && output == &[0, 0]
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Given input size per channel: (4 x 4). Calculated output size per channel: (0 x 0). \
         Output size is too small"
    );
    // Negative on one axis only.
    let p = ConvTranspose2dParams::default().with_padding((1, 5));
    let e = transposed(&[1, 2, 4, 4], &[2, 3, 3, 3], None, p);
    assert!(
        matches!(
            &e,
            Error::TransposedOutputTooSmall { input, output }
                if input == &[4, 4] && output == &[4, -4]
        ),
        "{e:?}"
    );
}

/// An input row that no output reads (stride 4 over a 3-row kernel skips every fourth) gets no
/// term at all: its gradient is exactly zero, while every row that is read gets a non-zero one.
#[test]
fn input_rows_a_stride_skips_get_exactly_zero_gradient() {
    let mut rng = rng(0x736b_6970);
    // H = 11, kernel 3, stride 4: rows 0-2 and 4-6 are read, 3, 7 and up are not.
    let x = random_tensor(&mut rng, &[1, 2, 11, 5]);
    let w = random_tensor(&mut rng, &[3, 2, 3, 1]);
    let g = random_tensor(&mut rng, &[1, 3, 3, 5]);
    let p = Conv2dParams::default().with_stride((4, 1));
    let grads = conv2d_backward_f64(&x, &w, &g, &p).unwrap();
    for c in 0..2 {
        for h in 0..11 {
            let row = &grads.input[(c * 11 + h) * 5..(c * 11 + h + 1) * 5];
            let read = h % 4 != 3;
            assert_eq!(
                row.iter().all(|&v| v != 0.0),
                read,
                "channel {c} row {h}: {row:?}"
            );
            if !read {
                assert!(row.iter().all(|&v| v == 0.0));
            }
        }
    }
}
