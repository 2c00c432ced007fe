//! `wgconv`: the command-line tool. Thin: parses arguments, calls the library, prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wgconv::gpu::by_rank::reference_by_rank;
use wgconv::gpu::tuning::Tuning;
use wgconv::spec::ConvArgs;
use wgconv::{io, Algorithm, Engine, EngineOptions};

/// `println!` that ends the program quietly when standard output is closed (`wgconv bench |
/// head`), where `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(e);
        }
    }};
}

/// `eprintln!` that ignores a standard error that cannot be written (`2>/dev/full`, a closed
/// pipe): the exit status must not depend on whether the message could be shown.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    note!("wgconv: error: cannot write to standard output: {e}");
    std::process::exit(1)
}

/// The name of an output in messages: standard output for `-`.
fn shown(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "standard output".into()
    } else {
        path.display().to_string()
    }
}

#[derive(Parser)]
#[command(
    name = "wgconv",
    version,
    about = "PyTorch-exact 2D convolution on the GPU through wgpu, checked against a CPU reference",
    after_help = "Exit status: 0 success, 1 error (one message on stderr), 2 bad command line.",
    long_about = "PyTorch-exact 2D convolution on the GPU through wgpu, checked against a CPU reference.\n\n\
                  With no command, runs the lecture's worked examples on the GPU and on the CPU reference.\n\
                  Pick an adapter with WGPU_BACKEND=vulkan|gl, WGPU_ADAPTER_NAME=<substring>, WGPU_POWER_PREF=low|high."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the lecture's worked examples on the GPU and on the CPU reference (the default).
    Demo,
    /// List every adapter wgpu sees and the one wgconv would pick.
    Info,
    /// Convolve float32 .npy files: weight [O,C/groups,k] conv1d, [O,C/groups,kh,kw] conv2d, [O,C/groups,kd,kh,kw] conv3d.
    Run(RunArgs),
    /// Time convolution layers on the GPU and the CPU baseline; every run is also a correctness check.
    Bench(BenchArgs),
    /// Apply a classic kernel to a PNG/JPEG image on the GPU.
    Filter(FilterArgs),
    /// Learn the lecture's edge kernel [1, -1] by gradient descent, every step on the GPU.
    TrainEdge(TrainEdgeArgs),
    /// Find the fastest verified kernel per layer of a suite on this adapter, and keep it in the
    /// tuning cache that `run`, `bench` and the library (with tuning on) then use.
    Tune(TuneArgs),
    /// Write the small synthetic sample picture (128x128 PNG) to try `filter` on.
    SampleImage {
        /// Where to write it (.png or .jpg).
        #[arg(long)]
        output: PathBuf,
    },
}

/// Each verb's examples, shown at the end of its `--help`.
const EXAMPLES: [(&str, &str); 8] = [
    ("demo", "Examples:\n  wgconv demo\n  WGPU_BACKEND=gl wgconv demo"),
    ("info", "Examples:\n  wgconv info\n  WGPU_BACKEND=vulkan WGPU_ADAPTER_NAME=llvmpipe wgconv info"),
    ("run", "Example:\n  wgconv run --input x.npy --weight w.npy --bias b.npy --stride 2 --padding 1 --output y.npy"),
    ("bench", "Examples:\n  wgconv bench --suite quick\n  wgconv bench --suite resnet --device both --repeat 5 --json bench.json\n  wgconv bench --suite quick --pass both"),
    ("filter", "Examples:\n  wgconv sample-image --output photo.png\n  wgconv filter --input photo.png --kernel edges --output edges.png\n  wgconv filter --input photo.png --kernel-file k.npy --output out.png   (k.npy: [kh, kw] float32)"),
    ("train-edge", "Examples:\n  wgconv train-edge\n  wgconv train-edge --steps 20 --lr 0.02 --seed 7"),
    ("sample-image", "Example:\n  wgconv sample-image --output photo.png"),
    ("tune", "Examples:\n  wgconv tune --suite quick\n  wgconv tune --suite resnet --pass both\n  WGCONV_CACHE_DIR=/tmp/cache wgconv tune   (the cache's folder; `wgconv info` shows it)"),
];

/// The command line, each verb's `--help` ending with its [`EXAMPLES`]; a bad one exits 2.
fn parse_command_line() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut command = Cli::command();
    for (verb, examples) in EXAMPLES {
        command = command.mut_subcommand(verb, |c| c.after_help(examples));
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

#[derive(clap::Args)]
struct TrainEdgeArgs {
    /// SGD steps (the lecture: 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    steps: u64,
    /// Learning rate (the lecture: 3e-2).
    #[arg(long, default_value_t = 3e-2, value_parser = wgconv::spec::parse_finite_f32)]
    lr: f32,
    /// Seed of the kernel's random initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct FilterArgs {
    /// The image to filter (PNG or JPEG).
    #[arg(long)]
    input: PathBuf,
    /// A built-in kernel: sobel-x, sobel-y, edges, box, gaussian, sharpen or laplacian.
    #[arg(
        long,
        value_parser = clap::value_parser!(wgconv::filter::Filter),
        required_unless_present = "kernel_file",
        conflicts_with = "kernel_file"
    )]
    kernel: Option<wgconv::filter::Filter>,
    /// A custom kernel, float32 .npy of shape [kh, kw] or [1, 1, kh, kw], applied to each channel.
    #[arg(long)]
    kernel_file: Option<PathBuf>,
    /// Where to write the result (.png or .jpg).
    #[arg(long)]
    output: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Input tensor, float32 .npy: [N, C, *spatial] or unbatched [C, *spatial].
    #[arg(long)]
    input: PathBuf,
    /// Weight tensor, float32 .npy: [O, C/groups, k], [O, C/groups, kh, kw] or [O, C/groups, kd, kh, kw].
    #[arg(long)]
    weight: PathBuf,
    /// Optional bias, float32 .npy, shape [O].
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Optional residual, float32 .npy of the output's shape, added before the activation.
    #[arg(long)]
    residual: Option<PathBuf>,
    #[command(flatten)]
    conv: ConvArgs,
    /// Where to write the output, float32 .npy: [N, O, *spatial] ([O, *spatial] unbatched).
    #[arg(long)]
    output: PathBuf,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    /// Force a GPU kernel by name (`wgconv info` lists them; default: the tuned or planned one).
    #[arg(long, default_value = "auto")]
    algorithm: Algorithm,
}

#[derive(clap::Args)]
struct TuneArgs {
    /// Which layers: `resnet`, `quick`, or a suite file (as for `bench`).
    #[arg(long, default_value = "resnet")]
    suite: String,
    /// Batch size N (at least 1).
    #[arg(long, default_value = "1", value_parser = wgconv::spec::parse_positive)]
    batch: usize,
    /// Which passes to tune: the forward convolution, the backward kernels (weight gradient, and
    /// the forward form of the input gradient), or both.
    #[arg(long, value_enum, default_value_t = BenchPass::Forward)]
    pass: BenchPass,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Which layers: `resnet`, `quick`, `family` (conv1d beside conv2d), `modes` (padding modes beside zeros), or a suite file (one `name C H W -> K RxS [stride S] [pad P] [mode M]` per line; `C L -> K k` for conv1d).
    #[arg(long, default_value = "resnet")]
    suite: String,
    /// Batch size N (at least 1).
    #[arg(long, default_value = "1", value_parser = wgconv::spec::parse_positive)]
    batch: usize,
    /// Timed repetitions per measurement (at least 1), interleaved; the median is reported, with
    /// the spread (the JSON and CSV add the fastest and slowest runs).
    #[arg(long, default_value = "5", value_parser = wgconv::spec::parse_positive)]
    repeat: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the results as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also draw GFLOP/s per layer, GPU vs CPU, and the speedup as an SVG chart (a .svg file).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Compare wgpu backends in one run, e.g. `vulkan,gl` (default: WGPU_BACKEND, else the best adapter).
    #[arg(long, value_delimiter = ',', value_parser = wgconv::gpu::device::parse_backend)]
    backend: Vec<wgpu::Backends>,
    /// What to time.
    #[arg(long, value_enum, default_value_t = BenchDevice::Both)]
    device: BenchDevice,
    /// Which passes: the forward convolution, the backward passes (input, weight and bias
    /// gradients; GPU kernel time, checked against the CPU reference, no CPU baseline), or both.
    #[arg(long, value_enum, default_value_t = BenchPass::Forward)]
    pass: BenchPass,
    /// Force a GPU kernel by name (`wgconv info` lists them; default: the tuned or planned one).
    #[arg(long, default_value = "auto")]
    algorithm: Algorithm,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchPass {
    /// The convolution itself.
    Forward,
    /// The gradients of the input, the weights and the bias.
    Backward,
    /// Forward and backward rows side by side.
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchDevice {
    /// The GPU only (the CPU baseline still runs once to check the result).
    Gpu,
    /// The CPU baseline only.
    Cpu,
    /// Both, with the speedup.
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum Device {
    /// The wgpu adapter chosen by the environment.
    Gpu,
    /// The f64-accumulating CPU reference.
    Cpu,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles::egl=off"),
    )
    .init();
    let cli = parse_command_line();
    // Held until exit: removed with it on a normal exit.
    let runtime_dir = wgconv::files::private_runtime_dir();
    wgconv::atomic::clean_up_on_signals(runtime_dir.as_ref().map(|d| d.path().to_path_buf()));
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => finish(demo()),
        Command::Info => finish(info()),
        Command::Run(args) => finish(run(&args)),
        Command::Bench(args) => finish(bench(&args)),
        Command::Filter(args) => finish(filter(&args)),
        Command::TrainEdge(args) => finish(train_edge(&args)),
        Command::Tune(args) => finish(tune(&args)),
        Command::SampleImage { output } => finish(
            wgconv::filter::write_image(&output, &wgconv::filter::sample_image())
                .map(|()| note!("wrote {}", shown(&output))),
        ),
    }
}

/// The exit status of a verb (the library's errors and the benchmark's alike): 0, or 1 with its
/// message on one line.
fn finish(result: Result<(), impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("wgconv: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> wgconv::Result<()> {
    let adapters = wgconv::list_adapters(None);
    say!("adapters wgpu sees ({}):", adapters.len());
    for a in &adapters {
        say!("  {a}");
    }
    say!("wgconv would use: {}", engine(Algorithm::Auto)?.describe());
    Ok(())
}

/// The engine of the CLI's verbs: the environment's adapter, `algorithm`, and the tuning cache
/// (unless `WGCONV_TUNING=off`).
fn engine(algorithm: Algorithm) -> wgconv::Result<Engine> {
    Engine::with_options(engine_options(algorithm))
}

fn engine_options(algorithm: Algorithm) -> EngineOptions {
    let tuning = Tuning::from_env();
    EngineOptions {
        algorithm,
        tuning,
        ..EngineOptions::default()
    }
}

fn tune(args: &TuneArgs) -> Result<(), wgconv::bench::BenchError> {
    let layers = wgconv::bench::suite(&args.suite)?;
    let engine = engine(Algorithm::Auto)?;
    let cache = engine
        .tuning_cache()
        .path()
        .map(|p| p.display().to_string());
    let cache = cache.unwrap_or("none (tuning is off): nothing is kept".into());
    say!("tuning on {}; cache: {cache}\n", engine.adapter());
    for layer in &layers {
        for report in wgconv::bench::tune_layer(&engine, layer, args.batch, passes(args.pass))? {
            say!("{}: {report}", layer.name);
        }
    }
    Ok(())
}

fn passes(pass: BenchPass) -> wgconv::bench::Passes {
    use wgconv::bench::Passes;
    match pass {
        BenchPass::Forward => Passes::Forward,
        BenchPass::Backward => Passes::Backward,
        BenchPass::Both => Passes::Both,
    }
}

fn run(args: &RunArgs) -> wgconv::Result<()> {
    // A missing folder or a directory as the output is refused before any work.
    wgconv::atomic::check_writable(&args.output)?;
    let input = io::read_npy(&args.input)?;
    let weight = io::read_npy(&args.weight)?;
    let bias = args.bias.as_ref().map(io::read_npy).transpose()?;
    let residual = args.residual.as_ref().map(io::read_npy).transpose()?;
    let (conv, extra) = (&args.conv, (bias.as_ref(), residual.as_ref()));
    // The weight's rank picks the operation: conv1d, conv2d or conv3d.
    let output = match args.device {
        Device::Gpu => engine(args.algorithm)?.conv_by_rank(&input, &weight, extra, conv)?,
        Device::Cpu => reference_by_rank(&input, &weight, extra, conv)?,
    };
    io::write_npy(&args.output, &output)?;
    note!(
        "wrote {} with shape {:?}",
        shown(&args.output),
        output.shape()
    );
    Ok(())
}

fn train_edge(args: &TrainEdgeArgs) -> wgconv::Result<()> {
    let engine = engine(Algorithm::Auto)?;
    say!(
        "learning the edge kernel [1, -1] from X and Y = corr2d(X, [1, -1]) on {}",
        engine.adapter()
    );
    say!(
        "(forward, squared-error loss, backward and SGD step (lr {:?}) all on the GPU)",
        args.lr
    );
    let steps = usize::try_from(args.steps).unwrap_or(usize::MAX);
    let lesson =
        wgconv::layer::learn_edge_kernel(&engine, steps, args.lr, args.seed, |step, loss| {
            if step % 2 == 0 {
                say!("batch {step}, loss {loss:.3}");
            }
        })?;
    say!(
        "learned kernel: [{:.4}, {:.4}]",
        lesson.kernel[0],
        lesson.kernel[1]
    );
    Ok(())
}

fn filter(args: &FilterArgs) -> wgconv::Result<()> {
    use wgconv::filter::{apply, read_image, write_image, Filter, KernelChoice};
    let choice = match (&args.kernel_file, args.kernel) {
        (Some(path), _) => KernelChoice::from_npy(path)?,
        (None, Some(filter)) => KernelChoice::Builtin(filter),
        // clap requires one of the two.
        (None, None) => KernelChoice::Builtin(Filter::Edges),
    };
    wgconv::filter::output_format(&args.output)?;
    wgconv::atomic::check_writable(&args.output)?;
    let image = read_image(&args.input)?;
    let engine = engine(Algorithm::Auto)?;
    let out = apply(&engine, &image, &choice)?;
    write_image(&args.output, &out)?;
    note!(
        "wrote {} ({}x{}) on {}",
        shown(&args.output),
        out.width(),
        out.height(),
        engine.adapter()
    );
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<(), wgconv::bench::BenchError> {
    use wgconv::bench::{self, BenchOptions, Progress};
    let passes = passes(args.pass);
    // The backward passes have no CPU baseline and no chart: refuse those combinations up front.
    let usage = |message: &str| -> ! {
        use clap::CommandFactory as _;
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit()
    };
    if passes.backward() && args.device == BenchDevice::Cpu {
        usage("--pass backward and both time the GPU (there is no CPU baseline for the gradients); use --device gpu or both");
    }
    if args.plot.is_some() && !passes.forward() {
        usage("--plot draws the forward pass; use --pass forward or both");
    }
    let outputs = bench::Outputs {
        json: args.json.as_deref(),
        csv: args.csv.as_deref(),
        plot: args.plot.as_deref(),
    };
    outputs.check()?;
    let layers = bench::suite(&args.suite)?;
    let options = BenchOptions {
        batch: args.batch,
        repeat: args.repeat,
        gpu: args.device != BenchDevice::Cpu,
        cpu: args.device != BenchDevice::Gpu,
    };
    // One engine per requested backend (none when only the CPU is timed).
    let engines = if options.gpu {
        bench::engines(&args.backend, &engine_options(args.algorithm))?
    } else {
        Vec::new()
    };
    say!("{}", options.describe());
    // Drawn on stderr only when it is a terminal, so piped output stays a clean table.
    let progress = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        progress.set_style(style);
    }
    let results = bench::run_suite(&engines, &layers, &options, passes, |event| match event {
        Progress::Timing { step, steps, what } => {
            progress.set_length(steps as u64);
            progress.set_position(step as u64);
            progress.set_message(what);
        }
        Progress::Finished(run) => progress.suspend(|| say!("\n{}", run.table())),
    })?;
    progress.finish_and_clear();
    outputs.write(&results, |path| note!("wrote {}", shown(path)))
}

fn demo() -> wgconv::Result<()> {
    use wgconv::lessons;
    let engine = engine(Algorithm::Auto)?;
    say!("wgconv: the convolution lecture on {}\n", engine.adapter());
    for example in lessons::examples()? {
        let worked = lessons::work(&engine, &example)?;
        say!("{}", worked.text(example.title));
        if example.kernel.shape()[2..] == [1, 1] {
            let same = lessons::equals_matrix_product(&example, &worked.gpu)?;
            say!("  equals the matrix product K[2x3] . X[3x9]: {same}\n");
        }
    }
    say!("Output shapes for an 8x8 input, floor((n + pad - dilation*(k-1) - 1) / stride) + 1:");
    for case in lessons::SHAPE_CASES {
        let (p, q) = case.output_size(&engine)?;
        say!("  {:<38} -> {p}x{q}", case.name);
    }
    // A short benchmark: two small layers, GPU against the fair CPU baseline.
    say!("\nA short benchmark (median of 3; the CPU side is im2col + gemm on all cores):");
    for run in &wgconv::bench::short_benchmark(&engine)?.runs {
        say!("{}", run.table());
    }
    say!("\nComputed on {}.", engine.adapter());
    say!("Next: `wgconv info` lists adapters, `wgconv bench` times ResNet layers,");
    say!("      `wgconv run --help` convolves your own .npy files.");
    Ok(())
}
