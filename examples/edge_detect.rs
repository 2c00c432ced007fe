//! The lecture's edge detector on the GPU: a 6x8 image with a dark band, the kernel [1, -1],
//! and the lecture's own `corr2d` for comparison.
//!
//! `cargo run --release --example edge_detect`

use ndarray::{array, s, Array4, Axis};
use wgconv::cpu::lecture::corr2d;
use wgconv::{Conv2dParams, Engine};

fn main() -> wgconv::Result<()> {
    let engine = Engine::new()?;
    // NCHW: one image, one channel, 6x8, white with a black band in columns 2..6.
    let image = Array4::from_shape_fn(
        (1, 1, 6, 8),
        |(_, _, _, j)| if (2..6).contains(&j) { 0.0f32 } else { 1.0 },
    );
    let kernel = array![[[[1.0f32, -1.0]]]];

    let edges = engine.conv2d_array(image.view(), kernel.view(), None, &Conv2dParams::default())?;
    let plane = |a: &Array4<f32>| a.index_axis(Axis(0), 0).index_axis(Axis(0), 0).to_owned();
    let lecture = corr2d(plane(&image).view(), kernel.slice(s![0, 0, .., ..]))?;

    println!("image:\n{}\n", plane(&image));
    println!(
        "edges on {} (1: white to black, -1: black to white):\n{}",
        engine.adapter(),
        plane(&edges)
    );
    println!(
        "\nthe same as the lecture's corr2d: {}",
        plane(&edges) == lecture
    );
    Ok(())
}
