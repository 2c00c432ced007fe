//! Shared test helpers: one engine per test binary, the tolerance, and a comparison that says
//! exactly what went wrong.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgconv::{Conv2dParams, Engine, Padding, Tensor};

mod differences;
mod numeric;
#[allow(unused_imports)]
pub use differences::*;
pub use numeric::*;
/// The engine every GPU test in this binary uses. No adapter is a failure, never a skip.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| match Engine::new() {
        Ok(e) => {
            eprintln!("GPU tests run on: {}", e.adapter());
            e
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter and found none: {e}\n\
             Install a software one: `apt-get update && apt-get install -y mesa-vulkan-drivers` (lavapipe) \
             and run with WGPU_BACKEND=vulkan, or WGPU_BACKEND=gl with Mesa's EGL (llvmpipe)."
        ),
    })
}

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgconv::Conv2dShape;

/// `WGCONV_TEST_SEED=N` shifts every random test's seed by N (default 0).
pub fn seed_offset() -> u64 {
    std::env::var("WGCONV_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

/// A seeded generator, shifted by [`seed_offset`].
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_add(seed_offset()))
}

/// One random convolution: shapes and parameters.
pub struct Config {
    pub input: [usize; 4],
    pub weight: [usize; 4],
    pub bias: bool,
    pub params: Conv2dParams,
}

impl Config {
    /// The one-line description for failure messages.
    pub fn describe(&self) -> String {
        describe(&self.input, &self.weight, self.bias, &self.params)
    }
}

/// An integer from `lo` to `hi`, uniform in log scale (small sizes as likely as large ones).
pub fn log_uniform(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> usize {
    let v = (lo as f64).ln() + rng.random::<f64>() * ((hi as f64 + 1.0).ln() - (lo as f64).ln());
    (v.exp() as usize).clamp(lo, hi)
}

/// Draws one valid configuration with at most `max_macs` multiply-adds: batch 1-4, channels
/// 1-64, kernels 1-7 (even and non-square; `pointwise_only` keeps them 1x1), stride 1-3,
/// asymmetric padding or same/valid, dilation 1-3, groups incl. depthwise with channel
/// multipliers 1-8, inputs from 1x1 up, with or without bias.
pub fn random_config(rng: &mut ChaCha8Rng, max_macs: usize, pointwise_only: bool) -> Config {
    loop {
        let batch = rng.random_range(1..=4);
        let (groups, c, o) = match rng.random_range(0..12) {
            0..=5 => (1, log_uniform(rng, 1, 64), log_uniform(rng, 1, 64)),
            6..=7 => {
                let g = rng.random_range(2..=4);
                (
                    g,
                    g * rng.random_range(1..=16),
                    g * rng.random_range(1..=16),
                )
            }
            8..=10 => {
                let c = log_uniform(rng, 1, 64);
                (c, c, c * rng.random_range(1..=3))
            }
            _ => {
                let c = log_uniform(rng, 1, 8);
                (c, c, c * rng.random_range(5..=8))
            }
        };
        let (kh, kw) = match rng.random_range(0..6) {
            _ if pointwise_only => (1, 1),
            0 => (1, 1),
            _ => (rng.random_range(1..=7), rng.random_range(1..=7)),
        };
        let mut stride = (rng.random_range(1..=3), rng.random_range(1..=3));
        let dilation = (rng.random_range(1..=3), rng.random_range(1..=3));
        let mut padding = match rng.random_range(0..20) {
            0..=2 => {
                stride = (1, 1);
                Padding::Same
            }
            3..=4 => Padding::Valid,
            _ => Padding::explicit(
                rng.random_range(0..=3),
                rng.random_range(0..=3),
                rng.random_range(0..=3),
                rng.random_range(0..=3),
            ),
        };
        let mut groups = groups;
        // Pointwise runs are mostly plain matrix products (stride 1, no padding, one group).
        if pointwise_only && rng.random_bool(0.7) {
            (groups, stride, padding) = (1, (1, 1), Padding::uniform(0));
        }
        let (t, b, l, r) = padding.resolve((kh, kw), dilation);
        // Inputs from 1x1 up, grown only as much as the dilated kernel needs.
        let span_h = dilation.0 * (kh - 1) + 1;
        let span_w = dilation.1 * (kw - 1) + 1;
        let h = log_uniform(rng, 1, 48).max(span_h.saturating_sub(t + b));
        let w = log_uniform(rng, 1, 48).max(span_w.saturating_sub(l + r));
        let params = Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
            ..Conv2dParams::default()
        };
        let input = [batch, c, h, w];
        let weight = [o, c / groups, kh, kw];
        let bias = rng.random_bool(0.5);
        let Ok(shape) = Conv2dShape::new(&input, &weight, bias.then_some(&[o][..]), &params) else {
            continue;
        };
        if shape.output_len() * shape.reduction_len() <= max_macs {
            return Config {
                input,
                weight,
                bias,
                params,
            };
        }
    }
}

/// Values uniform in [-1, 1] (zero mean, as the tolerance argument assumes).
pub fn random_tensor(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-1.0f32..=1.0)).expect("shape fits")
}

/// A random configuration with its data, the reference result and the tolerance.
pub struct Case {
    pub cfg: Config,
    pub x: Tensor,
    pub w: Tensor,
    pub b: Option<Tensor>,
    /// Output shape `[N, O, P, Q]`.
    pub shape: [usize; 4],
    /// The f64 reference output.
    pub want: Vec<f64>,
    /// `tolerance(K, max|x|, max|w|, max|b|)`.
    pub tol: f64,
}

/// Draws a configuration ([`random_config`]), its data in [-1, 1] (input, weight, then bias),
/// and computes the reference result and the tolerance.
pub fn random_case(rng: &mut ChaCha8Rng, max_macs: usize, pointwise_only: bool) -> Case {
    let cfg = random_config(rng, max_macs, pointwise_only);
    let x = random_tensor(rng, &cfg.input);
    let w = random_tensor(rng, &cfg.weight);
    let b = cfg.bias.then(|| random_tensor(rng, &[cfg.weight[0]]));
    let (shape, want) = wgconv::cpu::reference::conv2d_f64(&x, &w, b.as_ref(), &cfg.params)
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.describe()));
    let tol = tolerance(
        shape.reduction_len(),
        max_abs(&x),
        max_abs(&w),
        b.as_ref().map_or(0.0, max_abs),
    );
    Case {
        cfg,
        x,
        w,
        b,
        shape: shape.output_shape(),
        want,
        tol,
    }
}

/// Runs `command` to completion within `deadline`, killing it and failing the test otherwise.
pub fn run_with_deadline(
    mut command: std::process::Command,
    deadline: std::time::Duration,
) -> std::process::Output {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    // Drained while it runs, so a full pipe cannot stall it.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("{command:?} still ran after {deadline:?}; killed it. stderr so far: {stderr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A FIFO (named pipe) at `path`, which must lie in a temporary folder (never a system path).
pub fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {} failed", path.display());
}

/// `wgconv ARGS` through `sh` under an address-space limit of `kib` KiB (`ulimit -v`), so a test
/// of an absurd size cannot take the machine down if the refusal regresses.
pub fn wgconv_under_ulimit(kib: u64, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_wgconv"))
        .args(args);
    command
}

/// Names in `dir`, sorted.
pub fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs the `wgconv` binary with `args` and collects its output.
pub fn wgconv(args: &[&str]) -> std::process::Output {
    // Untuned, so the tests' kernels do not depend on a tuning cache the user may have.
    std::process::Command::new(env!("CARGO_BIN_EXE_wgconv"))
        .env("WGCONV_TUNING", "off")
        .args(args)
        .output()
        .expect("the wgconv binary runs")
}

/// A tensor of ones.
pub fn ones(shape: &[usize]) -> Tensor {
    Tensor::full(shape.to_vec(), 1.0).unwrap()
}

/// Writes `dir/name`, a float32 `.npy` of `shape` with element `i` = `f(i)`, and returns its path
/// as text.
pub fn npy_file(
    dir: &std::path::Path,
    name: &str,
    shape: &[usize],
    f: impl Fn(usize) -> f32,
) -> String {
    let path = dir.join(name);
    wgconv::io::write_npy(&path, &Tensor::from_fn(shape.to_vec(), f).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

/// An engine of its own with `options`, for tests that change its state (tuning, bounds). No
/// adapter is a failure, never a skip.
pub fn engine_with(options: wgconv::EngineOptions) -> Engine {
    Engine::with_options(options).unwrap_or_else(|e| {
        panic!(
            "GPU tests need a wgpu adapter and found none: {e}\n\
             Install a software one: `apt-get install -y mesa-vulkan-drivers` (lavapipe, WGPU_BACKEND=vulkan)"
        )
    })
}

/// An engine on the downlevel default limits with storage bindings of `bytes` bytes, to split
/// problems that small (no adapter is a failure, as for [`engine`]).
pub fn small_binding_engine(bytes: u64) -> Engine {
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: bytes,
        ..wgpu::Limits::downlevel_defaults()
    };
    engine_with(wgconv::EngineOptions {
        limits: Some(limits),
        ..wgconv::EngineOptions::default()
    })
}

/// A fresh, empty folder under the system's temporary folder for this test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgconv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// Downloads a GPU backward pass's gradients and compares them with the reference's
/// ([`compare_grads_nd`]); `scale` is `(max|x|, max|w|, max|grad_output|)`.
pub fn check_gpu_grads<const N: usize>(
    engine: &Engine,
    context: &str,
    grads: &wgconv::Conv2dGrads,
    want: &wgconv::cpu::reference::ConvNdGrads64<N>,
    scale: (f64, f64, f64),
) -> Result<(), String> {
    let down = |t: &wgconv::GpuTensor| engine.download(t).map_err(|e| format!("{context}: {e}"));
    let (input, weight) = (down(&grads.input)?, down(&grads.weight)?);
    let bias = grads.bias.as_ref().map(down).transpose()?;
    let got = Grads {
        input: input.data(),
        weight: weight.data(),
        bias: bias.as_ref().map(Tensor::data),
    };
    compare_grads_nd(context, want, got, scale)
}

/// `params` as the parameters of `M` axes when `M == N` (the caller matched on the rank).
pub fn axes<const N: usize, const M: usize>(
    p: &wgconv::ConvNdParams<N>,
) -> wgconv::ConvNdParams<M> {
    use wgconv::PaddingNd;
    let cut = |v: [usize; N]| -> [usize; M] { std::array::from_fn(|a| v[a]) };
    wgconv::ConvNdParams {
        stride: cut(p.stride),
        padding: match p.padding {
            PaddingNd::Explicit(pads) => PaddingNd::Explicit(std::array::from_fn(|a| pads[a])),
            PaddingNd::Same => PaddingNd::Same,
            PaddingNd::Valid => PaddingNd::Valid,
        },
        padding_mode: p.padding_mode,
        dilation: cut(p.dilation),
        groups: p.groups,
        activation: p.activation,
        flip_kernel: p.flip_kernel,
    }
}
