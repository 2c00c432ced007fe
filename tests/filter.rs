//! `wgconv filter`: known small images give known outputs; bad files fail cleanly.

mod common;

use rand::RngExt;
use wgconv::filter::{
    apply, image_to_tensor, read_image, sample_image, write_image, Filter, KernelChoice,
    BAND_PIXELS,
};
use wgconv::{Conv2dParams, Padding, Tensor};

use common::{engine, rng, wgconv};

fn constant(w: u32, h: u32, v: u8) -> image::RgbImage {
    image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]))
}

#[test]
fn identity_kernel_returns_the_image() {
    let img = sample_image();
    let id = KernelChoice::Custom {
        kh: 3,
        kw: 3,
        weights: vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    };
    assert_eq!(apply(engine(), &img, &id).unwrap(), img);
}

#[test]
fn box_filter_keeps_flat_areas_and_darkens_the_zero_padded_corner() {
    let out = apply(
        engine(),
        &constant(9, 7, 100),
        &KernelChoice::Builtin(Filter::Box),
    )
    .unwrap();
    assert_eq!(
        out.get_pixel(4, 3).0,
        [100, 100, 100],
        "interior of a flat image"
    );
    // The 5x5 window at a corner sees 3x3 real pixels: 100 * 9 / 25 = 36.
    assert_eq!(out.get_pixel(0, 0).0, [36, 36, 36]);
}

#[test]
fn sobel_x_marks_a_vertical_edge_and_nothing_else() {
    // Left half black, right half white.
    let img = image::RgbImage::from_fn(8, 6, |x, _| {
        if x < 4 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let out = apply(engine(), &img, &KernelChoice::Builtin(Filter::SobelX)).unwrap();
    for y in 1..5 {
        assert_eq!(out.get_pixel(1, y).0[0], 0, "flat black at row {y}");
        assert_eq!(out.get_pixel(3, y).0[0], 255, "edge at row {y}");
        assert_eq!(out.get_pixel(4, y).0[0], 255, "edge at row {y}");
        assert_eq!(out.get_pixel(5, y).0[0], 0, "flat white at row {y}");
    }
    // Horizontal derivative sees no vertical edge in the interior.
    let out = apply(engine(), &img, &KernelChoice::Builtin(Filter::SobelY)).unwrap();
    assert!((1..5).all(|y| (1..7).all(|x| out.get_pixel(x, y).0[0] == 0)));
}

#[test]
fn every_builtin_filter_keeps_the_size() {
    let img = sample_image();
    for (name, f) in Filter::ALL {
        let out = apply(engine(), &img, &KernelChoice::Builtin(f)).unwrap();
        assert_eq!(out.dimensions(), img.dimensions(), "{name}");
    }
}

#[test]
fn images_round_trip_through_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.png");
    write_image(&path, &sample_image()).unwrap();
    assert_eq!(read_image(&path).unwrap(), sample_image());
}

/// `choice` applied by the CPU reference to the whole image at once (no bands), with the same
/// mapping to colours as `apply`.
fn whole_image_reference(img: &image::RgbImage, choice: &KernelChoice) -> image::RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let same = Conv2dParams::default().with_padding(Padding::Same);
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let x = image_to_tensor(img).unwrap();
    let plane = w * h;
    let luma = || {
        let d = x.data();
        Tensor::from_fn([1, 1, h, w], |i| {
            0.299 * d[i] + 0.587 * d[plane + i] + 0.114 * d[2 * plane + i]
        })
        .unwrap()
    };
    let grey = |values: Vec<u8>| {
        image::RgbImage::from_fn(img.width(), img.height(), |px, py| {
            let v = values[py as usize * w + px as usize];
            image::Rgb([v, v, v])
        })
    };
    match choice {
        KernelChoice::Builtin(Filter::Edges) => {
            let (_, _, sx) = Filter::SobelX.kernel();
            let (_, _, sy) = Filter::SobelY.kernel();
            let k = Tensor::new([2, 1, 3, 3], [sx, sy].concat()).unwrap();
            let g = wgconv::cpu::reference::conv2d(&luma(), &k, None, &same).unwrap();
            let (gx, gy) = g.data().split_at(plane);
            grey(
                gx.iter()
                    .zip(gy)
                    .map(|(a, b)| to_u8((a * a + b * b).sqrt() / 4.0))
                    .collect(),
            )
        }
        KernelChoice::Builtin(f) if f.is_derivative() => {
            let (kh, kw, weights) = f.kernel();
            let k = Tensor::new([1, 1, kh, kw], weights).unwrap();
            let y = wgconv::cpu::reference::conv2d(&luma(), &k, None, &same).unwrap();
            grey(y.data().iter().map(|v| to_u8(v.abs())).collect())
        }
        _ => {
            let (kh, kw, weights) = match choice {
                KernelChoice::Builtin(f) => f.kernel(),
                KernelChoice::Custom { kh, kw, weights } => (*kh, *kw, weights.clone()),
            };
            let k = Tensor::new([3, 1, kh, kw], weights.repeat(3)).unwrap();
            let y = wgconv::cpu::reference::conv2d(&x, &k, None, &same.with_groups(3)).unwrap();
            let d = y.data();
            image::RgbImage::from_fn(img.width(), img.height(), |px, py| {
                let i = py as usize * w + px as usize;
                image::Rgb([0, 1, 2].map(|c| to_u8(d[c * plane + i])))
            })
        }
    }
}

#[test]
fn images_of_several_bands_match_the_whole_image_convolution() {
    let mut rng = rng(0xba4d);
    // Two bands (the second short), and bands of one row each with halo from both sides.
    let tall = (600, (BAND_PIXELS / 600 + 53) as u32);
    let wide = (BAND_PIXELS as u32 / 2 + 7, 5);
    let even = KernelChoice::Custom {
        kh: 4,
        kw: 2,
        weights: (1..=8).map(|v| v as f32 / 36.0).collect(),
    };
    let taller_than_the_image = KernelChoice::Custom {
        kh: 7,
        kw: 1,
        weights: vec![1.0 / 7.0; 7],
    };
    for ((w, h), choices) in [
        (
            tall,
            vec![
                KernelChoice::Builtin(Filter::Gaussian),
                KernelChoice::Builtin(Filter::Edges),
                KernelChoice::Builtin(Filter::Laplacian),
                even.clone(),
            ],
        ),
        (
            wide,
            vec![
                KernelChoice::Builtin(Filter::Box),
                KernelChoice::Builtin(Filter::Edges),
                taller_than_the_image,
            ],
        ),
    ] {
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            image::Rgb([0; 3].map(|_| rng.random_range(100..=255)))
        });
        for choice in choices {
            let got = apply(engine(), &img, &choice).unwrap();
            let want = whole_image_reference(&img, &choice);
            // The GPU sums in f32, the reference in f64: a value near .5 may round either way.
            let bad = got
                .enumerate_pixels()
                .zip(want.pixels())
                .find(|((_, _, g), r)| (0..3).any(|c| g[c].abs_diff(r[c]) > 1));
            if let Some(((x, y, g), r)) = bad {
                panic!("{w}x{h} {choice:?}: pixel ({x}, {y}) is {g:?}, the reference {r:?}");
            }
        }
    }
}

#[test]
fn cli_filter_writes_the_image_and_fails_cleanly_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    let out = wgconv(&["sample-image", "--output", photo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edges = dir.path().join("edges.png");
    let out = wgconv(&[
        "filter",
        "--input",
        photo.to_str().unwrap(),
        "--kernel",
        "edges",
        "--output",
        edges.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_image(&edges).unwrap().dimensions(), (128, 128));

    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image").unwrap();
    let target = dir.path().join("never.png");
    for (input, output, needle) in [
        (
            garbage.to_str().unwrap(),
            target.to_str().unwrap(),
            "not a readable PNG or JPEG image",
        ),
        (
            "/nonexistent/photo.png",
            target.to_str().unwrap(),
            "/nonexistent/photo.png",
        ),
        (
            photo.to_str().unwrap(),
            dir.path().join("never.bmp").to_str().unwrap(),
            "must end in .png, .jpg or .jpeg",
        ),
    ] {
        let out = wgconv(&[
            "filter", "--input", input, "--kernel", "box", "--output", output,
        ]);
        assert_eq!(out.status.code(), Some(1), "{input} -> {output}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
    assert!(!target.exists() && !dir.path().join("never.bmp").exists());
}
