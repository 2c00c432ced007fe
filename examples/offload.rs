//! Keep weights on the GPU and run a small stack of convolutions without host round trips,
//! reading back once at the end; then check the result against the CPU reference.
//!
//! `cargo run --release --example offload`

use wgconv::{cpu, Conv2dParams, Engine, Padding, Tensor};

fn main() -> wgconv::Result<()> {
    let engine = Engine::new()?;
    println!("running on {}", engine.adapter());

    // Three layers: 3 -> 16 (3x3, same), 16 -> 16 (3x3, stride 2), 16 -> 8 (1x1).
    let layers = [
        (
            [16, 3, 3, 3],
            Conv2dParams::default().with_padding(Padding::Same),
        ),
        (
            [16, 16, 3, 3],
            Conv2dParams::default().with_padding(1).with_stride(2),
        ),
        ([8, 16, 1, 1], Conv2dParams::default()),
    ];
    let weights: Vec<Tensor> = layers
        .iter()
        .enumerate()
        .map(|(l, (shape, _))| {
            Tensor::from_fn(shape.to_vec(), |i| {
                ((i * 31 + l * 7) % 17) as f32 / 17.0 - 0.5
            })
        })
        .collect::<wgconv::Result<_>>()?;

    // Upload and pack the weights once; they stay on the GPU across calls.
    let packed = layers
        .iter()
        .zip(&weights)
        .map(|((_, params), w)| engine.pack_weights(engine.upload(w)?, params.groups))
        .collect::<wgconv::Result<Vec<_>>>()?;

    let x = Tensor::from_fn([2, 3, 64, 64], |i| ((i * 13) % 101) as f32 / 50.0 - 1.0)?;
    let mut activation = engine.upload(&x)?;
    for ((_, params), w) in layers.iter().zip(&packed) {
        activation = engine.conv2d_gpu(&activation, w, None, params)?;
    }
    let y = engine.download(&activation)?; // the only readback
    println!("output shape {:?}", y.shape());

    // The same stack on the CPU reference.
    let mut reference = x;
    for ((_, params), w) in layers.iter().zip(&weights) {
        reference = cpu::reference::conv2d(&reference, w, None, params)?;
    }
    let worst = y
        .data()
        .iter()
        .zip(reference.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("max |GPU - CPU reference| = {worst:e}");
    Ok(())
}
