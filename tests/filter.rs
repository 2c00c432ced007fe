//! `wgconv filter`: known small images give known outputs; bad files fail cleanly.

mod common;

use std::process::Command;

use wgconv::filter::{apply, read_image, sample_image, write_image, Filter, KernelChoice};

use common::engine;

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

fn wgconv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .args(args)
        .output()
        .expect("the wgconv binary runs")
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
