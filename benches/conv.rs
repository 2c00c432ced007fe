//! Criterion benches over the same layers as `wgconv bench`: the GPU kernel time (inputs and
//! packed weights resident, the clock stops after the device has finished), the GPU end-to-end
//! time (upload, convolution, readback) and the CPU baseline, kept in separate groups.
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
                    .conv2d_packed_into(&gx, &packed, Some(&gb), &params, &mut out)
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

criterion_group!(conv, benches);
criterion_main!(conv);
