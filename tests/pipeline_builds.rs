//! Pipeline builds are bounded: a build past the engine's `pipeline_timeout` does not take the
//! caller with it; the shape falls back to the direct kernel, the failure is remembered (on disk
//! with a tuning cache), and only when the fallback does not build either is it `Error::Timeout`.
//!
//! Slow builds come from the test hook `WGCONV_SLOW_PIPELINES` (read when an engine is made), so
//! no driver has to hang; in a file of its own since it sets the process's environment.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wgconv::gpu::kernels::Kernel;
use wgconv::gpu::tuning::Tuning;
use wgconv::{cpu, Conv2dParams, Conv2dShape, Engine, EngineOptions, Error, Tensor};

use common::{compare, engine_with, random_tensor, rng, temp_dir, tolerance};

/// Serializes setting the hook and making the engine that reads it.
static HOOK: Mutex<()> = Mutex::new(());

const BOUND: Duration = Duration::from_millis(500);

fn engine_with_slow_builds(slow: &str, tuning: Tuning) -> Engine {
    let _hook = HOOK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::env::set_var("WGCONV_SLOW_PIPELINES", slow);
    let engine = engine_with(EngineOptions {
        pipeline_timeout: BOUND,
        tuning,
        ..EngineOptions::default()
    });
    std::env::remove_var("WGCONV_SLOW_PIPELINES");
    engine
}

/// A layer every adapter plans with an implicit-GEMM kernel (register-tiled or shared-memory).
fn problem() -> (Tensor, Tensor, Conv2dParams, Conv2dShape) {
    let mut r = rng(0xb01d_0001);
    let x = random_tensor(&mut r, &[1, 32, 16, 16]);
    let w = random_tensor(&mut r, &[32, 32, 3, 3]);
    let p = Conv2dParams::default().with_padding(1);
    let s = Conv2dShape::new(x.shape(), w.shape(), None, &p).unwrap();
    (x, w, p, s)
}

#[test]
fn a_build_past_the_bound_falls_back_to_the_direct_kernel_and_is_remembered() {
    let (x, w, p, s) = problem();
    let dir = temp_dir("slow-builds");
    let engine = engine_with_slow_builds("conv2d_igemm:20000", Tuning::Cached(dir.clone()));
    let planned = engine.plan(&s).unwrap().kernel;
    assert!(planned.name().starts_with("conv2d_igemm"), "{planned:?}");

    let start = Instant::now();
    let y = engine.conv2d(&x, &w, None, &p).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the caller waited {:?} for a build bounded at {BOUND:?}",
        start.elapsed()
    );
    let (_, want) = cpu::reference::conv2d_f64(&x, &w, None, &p).unwrap();
    let tol = tolerance(s.reduction_len(), 1.0, 1.0, 0.0);
    compare("fallback", s.output_shape(), y.data(), &want, tol).unwrap();
    assert_eq!(engine.plan(&s).unwrap().kernel, Kernel::Direct);
    let cache = engine.tuning_cache();
    assert!(cache.has_failed(&planned.name()), "{:?}", cache.failures());

    // A new engine on the same cache skips the kernel at once, without the hook.
    let again = engine_with(EngineOptions {
        tuning: Tuning::Cached(dir.clone()),
        ..EngineOptions::default()
    });
    assert_eq!(again.plan(&s).unwrap().kernel, Kernel::Direct);
    let y = again.conv2d(&x, &w, None, &p).unwrap();
    compare("remembered", s.output_shape(), y.data(), &want, tol).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn when_the_fallback_does_not_build_either_the_call_is_a_timeout_naming_the_bound() {
    let (x, w, p, _) = problem();
    let engine = engine_with_slow_builds("conv2d_:20000", Tuning::Off);
    let start = Instant::now();
    let e = engine.conv2d(&x, &w, None, &p).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            &e,
            Error::Timeout { during, bound: "pipeline-build bound", .. }
                if during.contains("conv2d_direct")
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("pipeline-build bound"), "{e}");
}

#[test]
fn a_forced_kernel_that_does_not_build_is_the_callers_error_not_a_fallback() {
    let (x, w, p, s) = problem();
    let engine = engine_with_slow_builds("conv2d_igemm:20000", Tuning::Off);
    let forced = engine.plan(&s).unwrap().kernel;
    let algorithm = wgconv::Algorithm::of_kernel(forced).expect("a forward kernel");
    let gx = engine.upload(&x).unwrap();
    let gw = engine.upload(&w).unwrap();
    let mut out = engine.alloc(&s.output_shape()).unwrap();
    let e = engine
        .conv2d_into_with(algorithm, &gx, &gw, None, &p, &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    // Remembered: the second call fails at once, naming the kernel.
    let e = engine
        .conv2d_into_with(algorithm, &gx, &gw, None, &p, &mut out)
        .unwrap_err();
    assert!(
        matches!(&e, Error::PipelineBuild { kernel, .. } if *kernel == forced.name()),
        "{e:?}"
    );
    assert!(e.to_string().contains("it is not built again"), "{e}");
}
