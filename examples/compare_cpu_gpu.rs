//! Time one ResNet layer on the GPU and on the fair CPU baseline, and compare the results.
//!
//! `cargo run --release --example compare_cpu_gpu`

use wgconv::bench::{bench_layer, BenchOptions, Layer};
use wgconv::Engine;

fn main() -> wgconv::Result<()> {
    let engine = Engine::new()?;
    let layer = Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1);
    let options = BenchOptions {
        batch: 1,
        repeat: 5,
        gpu: true,
        cpu: true,
    };
    let r = bench_layer(Some(&engine), &layer, &options)?;
    let (gpu, cpu) = (r.gpu_ms.unwrap_or(f64::NAN), r.cpu_ms.unwrap_or(f64::NAN));
    println!("{} on {}", layer.name, engine.adapter());
    println!(
        "  GPU kernel     {gpu:8.2} ms  {:6.1} GFLOP/s ({:?})",
        r.gflops(gpu),
        r.kernel
    );
    println!(
        "  GPU end to end {:8.2} ms",
        r.gpu_e2e_ms.unwrap_or(f64::NAN)
    );
    println!(
        "  CPU baseline   {cpu:8.2} ms  {:6.1} GFLOP/s",
        r.gflops(cpu)
    );
    println!(
        "  speedup {:.2}x, max |GPU - CPU| {:.1e}",
        cpu / gpu,
        r.max_abs_err.unwrap_or(f64::NAN)
    );
    Ok(())
}
