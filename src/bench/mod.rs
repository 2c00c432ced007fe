//! Benchmarks (feature `bench`): suites of convolution layers, timed runs on the GPU and on the
//! fair CPU baseline ([`cpu::fast`](crate::cpu::fast)), every run also a correctness check, and
//! the results as a table, JSON, CSV and an SVG chart. Nothing outside this module knows of it.
//!
//! - [`bench_layer`] times one layer forward: the GPU kernel time (inputs and packed weights
//!   resident, the clock stopped once the device has finished), the GPU end-to-end time (upload,
//!   convolution, readback) and the CPU baseline, and reports the largest GPU-vs-CPU difference.
//! - [`bench_layer_backward`] times the backward passes' GPU kernels, checked against the CPU
//!   reference.
//! - [`run_suite`] times a [`suite`] on several [`engines`], the CPU baseline once;
//!   [`EngineRun::table`] prints a run; [`SuiteResults::json`], [`SuiteResults::csv`] and
//!   [`write_plot_svg`] make the files of `wgconv bench --json`, `--csv` and `--plot`
//!   ([`Outputs`]).
//!
//! # The timing protocol
//!
//! Every time is taken the same way, on one clock (`std::time::Instant`):
//!
//! - **Interleaved, each timed run warm.** `repeat` rounds, each running every measurement of a
//!   layer (GPU kernel, GPU end to end, CPU baseline; or the four backward passes) twice, first
//!   untimed, then timed; round `r` starts with measurement `r % count`. So all measurements of a
//!   layer see the same state of the machine over time (a software adapter such as lavapipe
//!   shares the CPU cores with everything else), none always runs right after the same other
//!   one, and every timed run follows a run of its own: pipeline builds, first-touch
//!   allocations and lazily compiled shader variants stay out of the figures, and one side's
//!   worker threads (the software adapter's, rayon's) do not run on the other side's clock.
//! - **Nothing earlier on the clock.** A GPU measurement first waits, untimed, for the device to
//!   finish any work already queued; the kernel time then stops once the device has finished
//!   (`synchronize`), the end-to-end time once the output is back on the host. A run's output is
//!   dropped off the clock.
//! - **Spread as well as median.** Each measurement reports the median of its `repeat` runs
//!   (`gpu_ms`, `gpu_e2e_ms`, `cpu_ms`, `grad_input_ms`, ...; the mean of the middle two for an
//!   even count) with the fastest and the slowest (`gpu_ms_min`, `gpu_ms_max`, ...).
//!
//! FLOPs count a multiply-add as two: `2 * N * K * P * Q * C/groups * R * S`. The input gradient
//! and the weight gradient each take the forward's count; the bias gradient one add per output
//! element, `N * K * P * Q`.
//!
//! # Suite files
//!
//! One convolution layer per line, in the words of [`Layer`]:
//!
//! ```text
//! name C H W -> K RxS [stride S] [pad P]
//! name C L -> K k [stride S] [pad P]
//! name C D H W -> K TxRxS [stride S] [pad P]
//! ```
//!
//! - `name` is any text without spaces or `#`, unique within the file;
//! - two sizes `C L` and a kernel length `k` (`9`) make a conv1d layer, timed as the conv2d of
//!   height 1 that [`Engine::conv1d`](crate::Engine::conv1d) runs (stride and pad apply to the
//!   length; FLOPs `2 * N * K * L_out * C/groups * k`);
//! - four sizes `C D H W` and a kernel `TxRxS` (`3x3x3`) make a conv3d layer, timed through
//!   [`Engine::conv3d`](crate::Engine::conv3d) and its siblings (the depth-folding passes are on
//!   the clock; stride and pad apply to every axis; FLOPs `2 * N * K * OD*P*Q * C/groups * T*R*S`);
//!   its CPU baseline is [`cpu::fast::conv3d`](crate::cpu::fast::conv3d);
//! - `C H W` are the input channels, height and width, `K` the output channels and `RxS` the kernel
//!   height and width (`3x3`, `1x7`); all are positive integers;
//! - `stride S` (positive, default 1), `pad P` (zero or more, default 0) and `mode M` (a
//!   [`PaddingMode`](crate::PaddingMode) name: `zeros`, the default, `reflect`, `replicate` or
//!   `circular`) and `act A` (the fused epilogue's [`Activation`](crate::Activation), as
//!   `--activation` spells it: `relu`, `gelu`, `leaky-relu=0.1`, `clamp=-1,1`, ...; none by
//!   default; the backward rows time the convolution's gradients alone) may follow in any
//!   order, each at most once, and apply to every axis;
//! - every number is at most [`MAX_SUITE_NUMBER`] (2147483647, `i32::MAX`), and so are the padded
//!   input's height and width `H + 2 P` and `W + 2 P`: the shaders form input coordinates
//!   (`p * stride + i - pad`) in i32 and pass every size as u32;
//! - `#` starts a comment that runs to the end of the line; blank lines are ignored.
//!
//! ```text
//! # ResNet-50 stage 2, batch chosen on the command line
//! stem       3 224 224 ->  64 7x7 stride 2 pad 3
//! conv3x3   64  56  56 ->  64 3x3 pad 1      # stride defaults to 1
//! conv1x1   64  56  56 -> 256 1x1            # pad defaults to 0
//! ```
//!
//! Every layer must also be a valid convolution (the kernel fits in the padded input); a file
//! without any layer is an error. A suite file is UTF-8 text of at most [`MAX_SUITE_BYTES`]
//! (1 MiB), and a regular file (not a FIFO or a device such as `/dev/zero`). The built-in suites
//! are [`RESNET_SUITE`], [`QUICK_SUITE`], [`FAMILY_SUITE`] (the family's rows beside conv2d
//! rows of the same multiply-adds), [`MODES_SUITE`] (each padding mode beside zeros) and
//! [`ACTIVATIONS_SUITE`] (each fused activation beside none).
//!
//! ```
//! use std::path::Path;
//! use wgconv::bench::parse_suite_str;
//!
//! let layers = parse_suite_str("c 64 56 56 -> 64 3x3 pad 1\n", Path::new("suite.txt")).unwrap();
//! assert_eq!((layers[0].k, layers[0].r, layers[0].stride, layers[0].pad), (64, 3, 1, 1));
//! ```

mod chart;
mod error;
mod ops;
mod report;
mod run;
mod suite_run;
mod suites;
mod table;
mod timing;
mod tune;

pub use chart::{check_chart_name, write_plot_svg};
pub use error::BenchError;
pub use report::{
    backward_csv_string, csv_string, write_csv, write_json, Outputs, BACKWARD_CSV_HEADER,
    CSV_HEADER,
};
pub use run::{
    bench_layer, bench_layer_backward, geomean, BackwardResult, BenchOptions, LayerResult,
    REFERENCE_CHECK_MAX_MACS,
};
pub use suite_run::{
    engines, run_suite, short_benchmark, EngineRun, Passes, Progress, SuiteResults,
};
pub use suites::{
    family_suite, parse_suite, parse_suite_str, quick_suite, resnet_suite, suite, Layer,
    ACTIVATIONS_SUITE, FAMILY_SUITE, MAX_SUITE_BYTES, MAX_SUITE_NUMBER, MODES_SUITE, QUICK_SUITE,
    RESNET_SUITE,
};
pub use tune::tune_layer;
