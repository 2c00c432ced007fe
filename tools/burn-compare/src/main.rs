//! burn-compare: times burn 0.22's wgpu `conv2d` end to end over wgconv's `resnet` suite, so
//! its GFLOP/s can be put beside `wgconv bench --suite resnet` (the `gpu e2e` column) on the
//! same adapter in the same session.
//!
//! Per layer: host f32 data in (`Tensor::from_data` of input, weight and bias), `conv2d`, the
//! result read back into a host `Vec<f32>`, on one wall clock (`std::time::Instant`). One
//! untimed warm-up run per layer first (pipeline compilation, autotune), then the median of N
//! timed runs. FLOPs = 2*N*K*P*Q*C*R*S. Each timed run starts after an untimed
//! `Device::sync`, and its output is dropped off the clock.
//!
//! Usage: burn-compare [RUNS] [--runs N] [--layers name,name] [--check name,name|none]
//!
//! The adapter: cubecl (burn's wgpu runtime) does not read `WGPU_BACKEND` itself (it builds
//! its wgpu instances from its own backend list: Vulkan, then DX12, then GL, preferring a
//! backend with a non-CPU adapter), so this tool reads `WGPU_BACKEND` and pins burn's device to
//! that graphics API (`WgpuDevice::default().on(..)`). Which Vulkan driver is used is the
//! Vulkan loader's business (`VK_ICD_FILENAMES`); `CUBECL_WGPU_DEFAULT_DEVICE` still picks the
//! device kind as in cubecl.

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use burn::backend::wgpu::{WgpuBackend, WgpuDevice};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// One layer of the suite: `name C H W -> K RxS stride pad`, batch 1, with bias.
#[derive(Clone, Debug)]
struct Layer {
    name: &'static str,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    stride: usize,
    pad: usize,
}

/// wgconv's `resnet` suite (src/bench/suites.rs, `RESNET_SUITE`), batch 1.
const RESNET: &[Layer] = &[
    layer("stem", 3, 224, 224, 64, 7, 7, 2, 3),
    layer("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
    layer("conv1x1", 64, 56, 56, 256, 1, 1, 1, 0),
    layer("conv3x3_s2", 128, 56, 56, 128, 3, 3, 2, 1),
    layer("conv1x1_s2", 512, 28, 28, 1024, 1, 1, 2, 0),
    layer("deep", 512, 7, 7, 512, 3, 3, 1, 1),
    layer("thin", 16, 112, 112, 16, 3, 3, 1, 1),
    layer("vgg", 64, 224, 224, 64, 3, 3, 1, 1),
];

#[allow(clippy::too_many_arguments)]
const fn layer(
    name: &'static str,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    stride: usize,
    pad: usize,
) -> Layer {
    Layer {
        name,
        c,
        h,
        w,
        k,
        r,
        s,
        stride,
        pad,
    }
}

const BATCH: usize = 1;

impl Layer {
    fn p(&self) -> usize {
        (self.h + 2 * self.pad - self.r) / self.stride + 1
    }
    fn q(&self) -> usize {
        (self.w + 2 * self.pad - self.s) / self.stride + 1
    }
    fn flops(&self) -> f64 {
        2.0 * (BATCH * self.k * self.p() * self.q() * self.c * self.r * self.s) as f64
    }
    fn describe(&self) -> String {
        let mut d = format!(
            "{} {} {} -> {} {}x{}",
            self.c, self.h, self.w, self.k, self.r, self.s
        );
        if self.stride != 1 {
            d += &format!(" s{}", self.stride);
        }
        if self.pad != 0 {
            d += &format!(" p{}", self.pad);
        }
        d
    }
}

/// Deterministic values in [-1, 1): the same linear congruential sequence as wgconv's bench
/// (`src/bench/run.rs`, `data`), with its seeds (input 1, weight 2, bias 3), so both tools
/// convolve the same numbers.
fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The host inputs of one layer.
struct Inputs {
    x: TensorData,
    w: TensorData,
    b: TensorData,
    xv: Vec<f32>,
    wv: Vec<f32>,
    bv: Vec<f32>,
}

fn inputs(l: &Layer) -> Inputs {
    let xv = data(BATCH * l.c * l.h * l.w, 1);
    let wv = data(l.k * l.c * l.r * l.s, 2);
    let bv = data(l.k, 3);
    Inputs {
        x: TensorData::new(xv.clone(), [BATCH, l.c, l.h, l.w]),
        w: TensorData::new(wv.clone(), [l.k, l.c, l.r, l.s]),
        b: TensorData::new(bv.clone(), [l.k]),
        xv,
        wv,
        bv,
    }
}

/// One end-to-end run: upload, convolve, read back into a host vector. The host `TensorData`
/// copies are made, and the device synchronised, before the clock starts; the output is
/// returned and dropped by the caller, off the clock.
fn run_once(dev: &Device, l: &Layer, inp: &Inputs) -> Result<(Duration, Vec<f32>), String> {
    let (x, w, b) = (inp.x.clone(), inp.w.clone(), inp.b.clone());
    dev.sync().map_err(|e| format!("sync: {e:?}"))?;
    let t0 = Instant::now();
    let x = Tensor::<4>::from_data(x, dev);
    let w = Tensor::<4>::from_data(w, dev);
    let b = Tensor::<1>::from_data(b, dev);
    let opts = ConvOptions::new([l.stride, l.stride], [l.pad, l.pad], [1, 1], 1);
    let y = conv2d(x, w, Some(b), opts);
    let out = y
        .try_into_data()
        .map_err(|e| format!("readback: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("readback data: {e:?}"))?;
    let elapsed = t0.elapsed();
    let want = BATCH * l.k * l.p() * l.q();
    if out.len() != want {
        return Err(format!("output has {} values, expected {want}", out.len()));
    }
    Ok((elapsed, out))
}

/// Naive direct convolution in f64 (cross-correlation, zero padding, with bias).
fn conv_ref(l: &Layer, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (p, q) = (l.p(), l.q());
    let mut out = vec![0.0f64; BATCH * l.k * p * q];
    for n in 0..BATCH {
        for k in 0..l.k {
            for op in 0..p {
                for oq in 0..q {
                    let mut acc = b[k] as f64;
                    for c in 0..l.c {
                        for i in 0..l.r {
                            let ih = (op * l.stride + i) as isize - l.pad as isize;
                            if ih < 0 || ih >= l.h as isize {
                                continue;
                            }
                            for j in 0..l.s {
                                let iw = (oq * l.stride + j) as isize - l.pad as isize;
                                if iw < 0 || iw >= l.w as isize {
                                    continue;
                                }
                                let xi = ((n * l.c + c) * l.h + ih as usize) * l.w + iw as usize;
                                let wi = ((k * l.c + c) * l.r + i) * l.s + j;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    out[((n * l.k + k) * p + op) * q + oq] = acc;
                }
            }
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    runs: usize,
    layers: Option<Vec<String>>,
    check: Option<Vec<String>>,
    no_check: bool,
}

const USAGE: &str = "usage: burn-compare [RUNS] [--runs N] [--layers name,name,...] \
[--check name,...|none]\n  RUNS/--runs: timed runs per layer (median reported), default 3\n  \
--layers: only these layers of the resnet suite\n  --check: the layers whose warm-up output is \
compared with a naive f64 CPU conv (default: the smallest selected layer); 'none' skips it\n  \
Environment: WGPU_BACKEND=vulkan|gl|dx12|metal pins burn's graphics API; VK_ICD_FILENAMES picks \
the Vulkan driver; CUBECL_WGPU_DEFAULT_DEVICE the device kind.";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 3,
        layers: None,
        check: None,
        no_check: false,
    };
    let mut it = std::env::args().skip(1);
    let parse_runs = |v: &str| -> Result<usize, String> {
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("runs must be a positive integer, got '{v}'")),
        }
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--runs" | "-n" => args.runs = parse_runs(&value("--runs")?)?,
            "--layers" => {
                let v = value("--layers")?;
                let names: Vec<String> = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                for n in &names {
                    if !RESNET.iter().any(|l| l.name == n) {
                        return Err(format!(
                            "unknown layer '{n}'; the resnet suite has: {}",
                            RESNET.iter().map(|l| l.name).collect::<Vec<_>>().join(",")
                        ));
                    }
                }
                args.layers = Some(names);
            }
            "--check" => {
                let v = value("--check")?;
                if v == "none" {
                    args.no_check = true;
                } else {
                    let names: Vec<String> = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if let Some(bad) = names.iter().find(|n| !RESNET.iter().any(|l| l.name == *n)) {
                        return Err(format!("unknown layer '{bad}' for --check"));
                    }
                    args.check = Some(names);
                }
            }
            s if !s.starts_with('-') => args.runs = parse_runs(s)?,
            s => return Err(format!("unknown argument '{s}'\n{USAGE}")),
        }
    }
    Ok(args)
}

/// `WGPU_BACKEND`, read the way wgpu's `Backends::from_env` reads it, as one graphics API for
/// burn's device: exactly one named backend pins it, anything else leaves cubecl's `Auto`.
fn backend_from_env() -> (WgpuBackend, Option<String>) {
    let Ok(raw) = std::env::var("WGPU_BACKEND") else {
        return (WgpuBackend::Auto, None);
    };
    let mut named = Vec::new();
    for part in raw
        .to_lowercase()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let b = match part {
            "vulkan" | "vk" => WgpuBackend::Vulkan,
            "dx12" | "d3d12" => WgpuBackend::Dx12,
            "metal" | "mtl" => WgpuBackend::Metal,
            "opengl" | "gles" | "gl" => WgpuBackend::Gl,
            "webgpu" => WgpuBackend::WebGpu,
            _ => {
                return (
                    WgpuBackend::Auto,
                    Some(format!(
                        "WGPU_BACKEND='{raw}' not understood, using cubecl's Auto"
                    )),
                )
            }
        };
        if !named.contains(&b) {
            named.push(b);
        }
    }
    match named.as_slice() {
        [one] => (*one, None),
        _ => (
            WgpuBackend::Auto,
            Some(format!(
                "WGPU_BACKEND='{raw}' names several or no APIs, using cubecl's Auto"
            )),
        ),
    }
}

/// The adapters wgpu lists on the graphics API burn's device resolves to (for the table's
/// header: driver and driver info, which burn itself does not report). `Auto` is resolved as
/// cubecl does on Linux: Vulkan where it lists any adapter, else GL.
fn list_adapters(backend: WgpuBackend) -> Vec<wgpu::AdapterInfo> {
    let list = |backends: wgpu::Backends| -> Vec<wgpu::AdapterInfo> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        pollster::block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect()
    };
    match backend {
        WgpuBackend::Vulkan => list(wgpu::Backends::VULKAN),
        WgpuBackend::Gl => list(wgpu::Backends::GL),
        WgpuBackend::Dx12 => list(wgpu::Backends::DX12),
        WgpuBackend::Metal => list(wgpu::Backends::METAL),
        WgpuBackend::WebGpu => list(wgpu::Backends::BROWSER_WEBGPU),
        WgpuBackend::Auto => {
            let vulkan = list(wgpu::Backends::VULKAN);
            if vulkan.is_empty() {
                list(wgpu::Backends::GL)
            } else {
                vulkan
            }
        }
    }
}

fn env_or_unset(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| "(unset)".into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("burn-compare: {e}");
            return ExitCode::from(2);
        }
    };
    let layers: Vec<Layer> = match &args.layers {
        Some(names) => RESNET
            .iter()
            .filter(|l| names.iter().any(|n| n == l.name))
            .cloned()
            .collect(),
        None => RESNET.to_vec(),
    };
    if layers.is_empty() {
        eprintln!("burn-compare: no layers selected");
        return ExitCode::from(2);
    }
    // The layers whose warm-up output is checked against the naive f64 CPU conv.
    let check_names: Vec<String> = if args.no_check {
        Vec::new()
    } else {
        args.check.clone().unwrap_or_else(|| {
            vec![layers
                .iter()
                .min_by(|a, b| a.flops().partial_cmp(&b.flops()).unwrap())
                .unwrap()
                .name
                .to_string()]
        })
    };
    for n in &check_names {
        if !layers.iter().any(|l| l.name == n) {
            eprintln!("burn-compare: --check {n}: that layer is not selected (--layers)");
            return ExitCode::from(2);
        }
    }

    let (backend, note) = backend_from_env();
    if let Some(note) = note {
        eprintln!("burn-compare: {note}");
    }
    let wgpu_device = WgpuDevice::default().on(backend);
    let device = Device::new(wgpu_device.clone());

    println!("# burn-compare: burn 0.22 wgpu conv2d, end to end (host in, conv2d, host out)");
    println!(
        "# env: WGPU_BACKEND={} VK_ICD_FILENAMES={} CUBECL_WGPU_DEFAULT_DEVICE={}",
        env_or_unset("WGPU_BACKEND"),
        env_or_unset("VK_ICD_FILENAMES"),
        env_or_unset("CUBECL_WGPU_DEFAULT_DEVICE")
    );
    println!("# burn device: {wgpu_device:?}");
    let adapters = list_adapters(backend);
    // Opening the device here also surfaces a missing adapter before any layer runs.
    let identity = match panic::catch_unwind(AssertUnwindSafe(|| device.as_dispatch().identity())) {
        Ok(id) => id,
        Err(_) => {
            eprintln!("burn-compare: burn could not open a wgpu device (see the panic above)");
            return ExitCode::from(1);
        }
    };
    match &identity {
        Some(id) => {
            println!("# burn reports adapter: {}", id.name);
            for a in adapters.iter().filter(|a| a.name == id.name) {
                println!(
                    "#   wgpu: {:?} {:?}, driver {} ({}), vendor {:#x} device {:#x}",
                    a.backend, a.device_type, a.driver, a.driver_info, a.vendor, a.device
                );
            }
        }
        None => println!("# burn reports no adapter identity"),
    }
    if adapters.len() > 1 {
        let names: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.name, a.backend))
            .collect();
        println!("# all adapters wgpu lists there: {}", names.join(", "));
    }
    let features: Vec<&str> = [
        cfg!(feature = "autotune").then_some("autotune"),
        cfg!(feature = "fusion").then_some("fusion"),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!(
        "# burn features: wgpu (f32, WGSL){}{}; batch {BATCH}; 1 warm-up + median of {} timed runs",
        if features.is_empty() { "" } else { " + " },
        features.join(" + "),
        args.runs
    );

    struct Row {
        layer: Layer,
        result: Result<(f64, f64, f64), String>,
    }
    let mut rows = Vec::new();
    let mut check_lines = Vec::new();
    let start_all = Instant::now();
    for l in &layers {
        let inp = inputs(l);
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| -> Result<(f64, f64, f64), String> {
                let t = Instant::now();
                let (_, warm_out) = run_once(&device, l, &inp)?;
                eprintln!(
                    "[{}] warm-up {:.2} s (includes pipeline compile/autotune)",
                    l.name,
                    t.elapsed().as_secs_f64()
                );
                if check_names.iter().any(|n| n == l.name) {
                    let reference = conv_ref(l, &inp.xv, &inp.wv, &inp.bv);
                    let (mut max_abs, mut max_ref) = (0.0f64, 0.0f64);
                    for (g, r) in warm_out.iter().zip(&reference) {
                        max_abs = max_abs.max((*g as f64 - r).abs());
                        max_ref = max_ref.max(r.abs());
                    }
                    check_lines.push(format!(
                        "# check: {} ({}): max |burn - naive f64 CPU| = {:.3e} over {} outputs \
                     (max |ref| {:.2})",
                        l.name,
                        l.describe(),
                        max_abs,
                        reference.len(),
                        max_ref
                    ));
                }
                drop(warm_out);
                let mut ms = Vec::with_capacity(args.runs);
                for i in 0..args.runs {
                    let (d, out) = run_once(&device, l, &inp)?;
                    drop(out);
                    ms.push(d.as_secs_f64() * 1e3);
                    eprintln!("[{}] run {}/{}: {:.2} ms", l.name, i + 1, args.runs, ms[i]);
                }
                let (min, max) = ms
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
                Ok((median(&mut ms), min, max))
            }));
        let result = match outcome {
            Ok(r) => r,
            Err(p) => Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into())),
        };
        if let Err(e) = &result {
            eprintln!("[{}] FAILED: {e}", l.name);
        }
        rows.push(Row {
            layer: l.clone(),
            result,
        });
    }

    println!();
    println!(
        "{:<11} {:<26} {:>8} {:>11} {:>11} {:>11} {:>9}",
        "layer", "shape (C H W -> K RxS)", "GFLOP", "e2e ms", "min ms", "max ms", "GFLOP/s"
    );
    let mut gflops = Vec::new();
    for row in &rows {
        let l = &row.layer;
        match &row.result {
            Ok((med, min, max)) => {
                let g = l.flops() / (med / 1e3) / 1e9;
                gflops.push(g);
                println!(
                    "{:<11} {:<26} {:>8.3} {:>11.2} {:>11.2} {:>11.2} {:>9.2}",
                    l.name,
                    l.describe(),
                    l.flops() / 1e9,
                    med,
                    min,
                    max,
                    g
                );
            }
            Err(e) => println!(
                "{:<11} {:<26} {:>8.3} {:>11} (failed: {})",
                l.name,
                l.describe(),
                l.flops() / 1e9,
                "-",
                e.lines().next().unwrap_or("")
            ),
        }
    }
    if !gflops.is_empty() {
        let geo = (gflops.iter().map(|g| g.ln()).sum::<f64>() / gflops.len() as f64).exp();
        println!(
            "{:<11} {:<26} {:>8} {:>11} {:>11} {:>11} {:>9.2}",
            "geomean",
            format!("({} of {} layers)", gflops.len(), rows.len()),
            "",
            "",
            "",
            "",
            geo
        );
    }
    println!();
    if check_names.is_empty() {
        println!("# check: skipped (--check none)");
    }
    for c in &check_lines {
        println!("{c}");
    }
    if check_lines.len() < check_names.len() {
        println!(
            "# check: {} of {} not run (layer failed)",
            check_names.len() - check_lines.len(),
            check_names.len()
        );
    }
    println!(
        "# total wall time {:.1} s",
        start_all.elapsed().as_secs_f64()
    );
    if rows.iter().any(|r| r.result.is_err()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
