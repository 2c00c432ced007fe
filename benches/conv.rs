//! Criterion benches over the same layers as `wgconv bench`: the GPU kernel time (inputs and
//! packed weights resident, the clock stops after the device has finished), the GPU end-to-end
//! time (upload, convolution, readback) and the CPU baseline, kept in separate groups; and the
//! backward passes' GPU kernel times (input gradient, weight gradient) for the first two layers.
//!
//! `cargo bench` runs the quick suite; `WGCONV_BENCH_SUITE=resnet cargo bench` the ResNet one.
//! Throughput is reported in FLOPs (a multiply-add counts two), so criterion prints FLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgconv::bench::{quick_suite, resnet_suite, Layer};
use wgconv::{cpu, Engine, Tensor};

fn layers() -> Vec<Layer> {
    match std::env::var("WGCONV_BENCH_SUITE").as_deref() {
        Ok("resnet") => resnet_suite(),
        _ => quick_suite(),
    }
}

fn data(shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |i| {
        ((i * 7919) % 2001) as f32 / 1000.0 - 1.0
    })
    .expect("shape fits")
}

fn benches(c: &mut Criterion) {
    let engine = Engine::new().unwrap_or_else(|e| panic!("the benches need a wgpu adapter: {e}"));
    eprintln!("GPU: {}", engine.adapter());
    for layer in layers() {
        let shape = layer.shape(1).expect("suite layers are valid");
        let params = layer.params();
        let (x, w, b) = (
            data(&shape.input_shape()),
            data(&shape.weight_shape()),
            data(&[layer.k]),
        );

        let mut group = c.benchmark_group("gpu_kernel");
        group
            .sample_size(10)
            .throughput(Throughput::Elements(shape.flops()));
        let gx = engine.upload(&x).expect("upload");
        let gb = engine.upload(&b).expect("upload");
        let packed = engine
            .pack_weights(engine.upload(&w).expect("upload"), params.groups)
            .expect("pack");
        let mut out = engine.alloc(&shape.output_shape()).expect("alloc");
        group.bench_function(BenchmarkId::from_parameter(&layer.name), |bench| {
            bench.iter(|| {
                engine
                    .conv2d_into(&gx, &packed, Some(&gb), &params, &mut out)
                    .expect("conv");
                engine.synchronize().expect("wait");
            })
        });
        group.finish();

        let mut group = c.benchmark_group("gpu_end_to_end");
        group
            .sample_size(10)
            .throughput(Throughput::Elements(shape.flops()));
        group.bench_function(BenchmarkId::from_parameter(&layer.name), |bench| {
            bench.iter(|| engine.conv2d(&x, &w, Some(&b), &params).expect("conv"))
        });
        group.finish();

        let mut group = c.benchmark_group("cpu_baseline");
        group
            .sample_size(10)
            .throughput(Throughput::Elements(shape.flops()));
        group.bench_function(BenchmarkId::from_parameter(&layer.name), |bench| {
            bench.iter(|| cpu::fast::conv2d(&x, &w, Some(&b), &params).expect("conv"))
        });
        group.finish();
    }
}

/// The input and weight gradients, everything resident, waiting for the device each run; each
/// has the forward's FLOP count.
fn backward(c: &mut Criterion) {
    let engine = Engine::new().unwrap_or_else(|e| panic!("the benches need a wgpu adapter: {e}"));
    for layer in layers().into_iter().take(2) {
        let shape = layer.shape(1).expect("suite layers are valid");
        let params = layer.params();
        let (input_shape, weight_shape) = (shape.input_shape(), shape.weight_shape());
        let gx = engine.upload(&data(&input_shape)).expect("upload");
        let gw = engine.upload(&data(&weight_shape)).expect("upload");
        let gg = engine.upload(&data(&shape.output_shape())).expect("upload");

        let mut group = c.benchmark_group("backward");
        group
            .sample_size(10)
            .throughput(Throughput::Elements(shape.flops()));
        group.bench_function(BenchmarkId::new("grad_input", &layer.name), |bench| {
            bench.iter(|| {
                let grad = engine
                    .conv2d_grad_input(&gg, &gw, &input_shape, &params)
                    .expect("grad input");
                engine.synchronize().expect("wait");
                grad
            })
        });
        group.bench_function(BenchmarkId::new("grad_weight", &layer.name), |bench| {
            bench.iter(|| {
                let grad = engine
                    .conv2d_grad_weight(&gx, &gg, &weight_shape, &params)
                    .expect("grad weight");
                engine.synchronize().expect("wait");
                grad
            })
        });
        group.finish();
    }
}

criterion_group!(conv, benches, backward);
criterion_main!(conv);
