//! The lecture's last step, on the GPU: learn the edge kernel [1, -1] from an image X and its
//! edges Y = corr2d(X, [1, -1]). A 1x2 convolution starts from a random kernel; each of 10 steps
//! runs the forward pass, the squared-error loss and its gradient, the backward pass and an SGD
//! step (lr 3e-2), all on the GPU, printing the loss every 2 steps as the lecture does.
//!
//! `cargo run --release --example learn_edge_kernel` (also `wgconv train-edge`)

use wgconv::layer::learn_edge_kernel;
use wgconv::Engine;

fn main() -> wgconv::Result<()> {
    let engine = Engine::new()?;
    println!("learning the edge kernel on {}", engine.adapter());
    let lesson = learn_edge_kernel(&engine, 10, 3e-2, 0, |step, loss| {
        if step % 2 == 0 {
            println!("batch {step}, loss {loss:.3}");
        }
    })?;
    println!(
        "learned kernel: [{:.4}, {:.4}] (the lecture's: [1, -1])",
        lesson.kernel[0], lesson.kernel[1]
    );
    Ok(())
}
