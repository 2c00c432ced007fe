//! A real problem past the software adapters' limits: an input of over 512 MiB (four times
//! lavapipe's and llvmpipe's 128 MiB `max_storage_buffer_binding_size`) and over the adapter's
//! binding limit (SwiftShader's is 1 GiB), runs split and matches the
//! f64 CPU reference on sampled outputs, including every row on each side of every cut between
//! pieces. In a file of its own so that no other test runs beside it and its 2 GB.

mod common;

use rand::RngExt;
use wgconv::{Conv2dParams, Conv2dShape, Tensor};

use common::{engine, rng, tolerance};

/// One output of the convolution, in f64, straight from the definition (no shared helpers).
fn output_at(s: &Conv2dShape, x: &[f32], w: &[f32], b: &[f32], [n, o, p, q]: [usize; 4]) -> f64 {
    let cg = s.in_channels_per_group();
    let g = o / s.out_channels_per_group();
    let mut sum = f64::from(b[o]);
    for c in 0..cg {
        for i in 0..s.kernel_h {
            for j in 0..s.kernel_w {
                let h = (p * s.stride_h + i * s.dilation_h) as i64 - s.pad_top as i64;
                let v = (q * s.stride_w + j * s.dilation_w) as i64 - s.pad_left as i64;
                if h < 0 || v < 0 || h >= s.in_h as i64 || v >= s.in_w as i64 {
                    continue;
                }
                let xi =
                    ((n * s.in_channels + g * cg + c) * s.in_h + h as usize) * s.in_w + v as usize;
                let wi = ((o * cg + c) * s.kernel_h + i) * s.kernel_w + j;
                sum += f64::from(x[xi]) * f64::from(w[wi]);
            }
        }
    }
    sum
}

#[test]
fn an_input_over_512_mib_is_split_and_matches_the_reference_on_samples() {
    let engine = engine();
    let mut rng = rng(0x1a7e_0001);
    // Over 512 MiB, and over this adapter's binding limit (SwiftShader's is 1 GiB).
    let target = (513u64 << 20).max(engine.limits().max_binding + (64 << 20));
    let side = ((target / 4 / 8) as f64).sqrt().ceil() as usize;
    let input = [2, 4, side, side];
    let bytes = input.iter().product::<usize>() * 4;
    assert!(
        bytes as u64 > engine.limits().max_binding.max(512 << 20),
        "{bytes} bytes"
    );
    let params = Conv2dParams::default().with_stride(2).with_padding(1);
    let x = Tensor::from_fn(input, |_| rng.random_range(-1.0f32..=1.0)).unwrap();
    let w = Tensor::from_fn([8, 4, 3, 3], |_| rng.random_range(-1.0f32..=1.0)).unwrap();
    let b = Tensor::from_fn([8], |_| rng.random_range(-1.0f32..=1.0)).unwrap();
    let shape = Conv2dShape::new(&input, w.shape(), Some(&[8]), &params).unwrap();
    let split = engine
        .schedule(&shape)
        .unwrap()
        .expect("an input over the binding limit is split");
    eprintln!(
        "input {bytes} bytes on {}: pieces of {split:?}",
        engine.adapter()
    );

    let y = engine.conv2d(&x, &w, Some(&b), &params).unwrap();
    assert_eq!(y.shape(), shape.output_shape());

    // Samples: random outputs, and the rows on both sides of every cut between row pieces.
    let [n_out, o_out, p_out, q_out] = shape.output_shape();
    let mut samples: Vec<[usize; 4]> = (0..4000)
        .map(|_| {
            [
                rng.random_range(0..n_out),
                rng.random_range(0..o_out),
                rng.random_range(0..p_out),
                rng.random_range(0..q_out),
            ]
        })
        .collect();
    for cut in (split.rows..p_out).step_by(split.rows) {
        for p in [cut - 1, cut] {
            for q in [0, 1, q_out / 2, q_out - 1] {
                samples.push([rng.random_range(0..n_out), rng.random_range(0..o_out), p, q]);
            }
        }
    }
    let tol = tolerance(shape.reduction_len(), 1.0, 1.0, 1.0);
    for idx @ [n, o, p, q] in samples {
        let want = output_at(&shape, x.data(), w.data(), b.data(), idx);
        let got = y.data()[((n * o_out + o) * p_out + p) * q_out + q];
        assert!(
            (f64::from(got) - want).abs() <= tol,
            "output {idx:?}: gpu {got}, reference {want}, tolerance {tol:e} (pieces {split:?})"
        );
    }
}
