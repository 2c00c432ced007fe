//! Suite files in, CSV and SVG reports out: pure host code, no GPU.

use std::fs;
use std::path::{Path, PathBuf};

use wgconv::bench::{
    backward_csv_string, check_chart_name, csv_string, parse_suite, parse_suite_str, quick_suite,
    resnet_suite, write_csv, write_json, write_plot_svg, BackwardResult, BenchError, EngineRun,
    Layer, LayerResult, Passes, SuiteResults, BACKWARD_CSV_HEADER, CSV_HEADER,
};
use wgconv::{AdapterSummary, Error};

fn suite_path() -> PathBuf {
    PathBuf::from("custom.suite")
}

/// The line and message of a parse error, failing the test on anything else.
fn parse_error(text: &str) -> (usize, String) {
    match parse_suite_str(text, &suite_path()) {
        Err(BenchError::Parse {
            path,
            line,
            message,
        }) => {
            assert_eq!(path, suite_path());
            (line, message)
        }
        other => panic!("expected a parse error for {text:?}, got {other:?}"),
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "expected {needle:?} in {haystack:?}"
        );
    }
}

fn result(layer: Layer, gpu_ms: Option<f64>, cpu_ms: Option<f64>) -> LayerResult {
    let flops = 2 * layer.k as u64 * (layer.h * layer.w * layer.c * layer.r * layer.s) as u64;
    let mut r = LayerResult::unmeasured(&layer, 1, flops);
    r.kernel = gpu_ms.map(|_| "conv2d_direct".to_string());
    (r.gpu_ms, r.gpu_ms_min, r.gpu_ms_max) = (
        gpu_ms,
        gpu_ms.map(|ms| ms * 0.75),
        gpu_ms.map(|ms| ms * 2.0),
    );
    let e2e = gpu_ms.map(|ms| ms * 3.0);
    (r.gpu_e2e_ms, r.gpu_e2e_ms_min, r.gpu_e2e_ms_max) =
        (e2e, e2e.map(|ms| ms - 1.0), e2e.map(|ms| ms + 1.0));
    (r.cpu_ms, r.cpu_ms_min, r.cpu_ms_max) = (cpu_ms, cpu_ms, cpu_ms.map(|ms| ms * 1.5));
    r.max_abs_err = gpu_ms.and(cpu_ms).map(|_| 2.5e-7);
    r
}

/// Entries of a folder, to check that a failed or finished write left no temporary file.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ----------------------------------------------------------------------------------- suite files

#[test]
fn suite_file_with_comments_blank_lines_and_defaults_parses_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my.suite");
    let text = "# my layers\n\
                \n\
                stem   3 224 224 -> 64 7x7 stride 2 pad 3   # ResNet stem\n\
                \t conv3x3 64 56 56 -> 64 3x3 pad 1\n\
                conv1x1 64 56 56 -> 256 1x1\n\
                wide 8 9 17 -> 4 1x7 pad 2 stride 3\n\
                   # trailing comment\n";
    fs::write(&path, text).unwrap();

    let layers = parse_suite(&path).unwrap();

    assert_eq!(
        layers,
        vec![
            Layer::new("stem", 3, 224, 224, 64, 7, 7, 2, 3),
            Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
            Layer::new("conv1x1", 64, 56, 56, 256, 1, 1, 1, 0),
            Layer::new("wide", 8, 9, 17, 4, 1, 7, 3, 2),
        ]
    );
}

#[test]
fn built_in_suites_are_the_resnet_quick_and_family_layers() {
    assert_eq!(
        resnet_suite(),
        vec![
            Layer::new("stem", 3, 224, 224, 64, 7, 7, 2, 3),
            Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
            Layer::new("conv1x1", 64, 56, 56, 256, 1, 1, 1, 0),
            Layer::new("conv3x3_s2", 128, 56, 56, 128, 3, 3, 2, 1),
            Layer::new("conv1x1_s2", 512, 28, 28, 1024, 1, 1, 2, 0),
            Layer::new("deep", 512, 7, 7, 512, 3, 3, 1, 1),
            Layer::new("thin", 16, 112, 112, 16, 3, 3, 1, 1),
            Layer::new("vgg", 64, 224, 224, 64, 3, 3, 1, 1),
        ]
    );
    assert_eq!(
        quick_suite(),
        vec![
            Layer::new("conv3x3_small", 32, 28, 28, 32, 3, 3, 1, 1),
            Layer::new("conv1x1_small", 64, 28, 28, 64, 1, 1, 1, 0),
            Layer::new("deep", 512, 7, 7, 512, 3, 3, 1, 1),
            Layer::new("stem_small", 3, 64, 64, 16, 7, 7, 2, 3),
        ]
    );
    assert_eq!(
        wgconv::bench::family_suite(),
        vec![
            Layer::conv1d("conv1d_audio", 32, 16000, 64, 9, 4, 4),
            Layer::new("conv2d_audio", 32, 160, 400, 64, 3, 3, 4, 1),
            Layer::conv1d("conv1d_k9", 64, 4096, 64, 9, 1, 4),
            Layer::new("conv2d_3x3", 64, 64, 64, 64, 3, 3, 1, 1),
            Layer::conv3d("conv3d_video", [16, 8, 56, 56], 32, [3, 3, 3], 1, 1),
            Layer::new("conv2d_video", 48, 112, 224, 32, 3, 3, 1, 1),
        ]
    );
    // Each conv1d or conv3d row has its conv2d neighbour's multiply-adds; a conv1d runs as a
    // conv2d of height 1.
    let family = wgconv::bench::family_suite();
    for pair in family.chunks(2) {
        let (one, two) = (pair[0].shape(1).unwrap(), pair[1].shape(1).unwrap());
        assert_eq!(
            one.flops(),
            two.flops(),
            "{} vs {}",
            pair[0].name,
            pair[1].name
        );
        if pair[0].dims == 1 {
            assert_eq!(
                (one.in_h, one.kernel_h, one.stride_h, one.pad_top),
                (1, 1, 1, 0)
            );
        }
    }
}

#[test]
fn suite_line_without_arrow_is_a_parse_error_naming_the_line() {
    let (line, message) = parse_error("ok 1 4 4 -> 1 1x1\nbad 64 56 56 64 3x3\n");
    assert_eq!(line, 2);
    assert_contains(&message, &["missing '->'", "bad 64 56 56 64 3x3"]);
}

#[test]
fn suite_unknown_token_after_the_kernel_is_a_parse_error() {
    let (line, message) = parse_error("c 64 56 56 -> 64 3x3 dilation 2\n");
    assert_eq!(line, 1);
    assert_contains(
        &message,
        &[
            "unknown token 'dilation'",
            "'stride S', 'pad P', 'mode zeros|reflect|replicate|circular' or 'act ACTIVATION'",
        ],
    );
}

#[test]
fn suite_padding_mode_is_read_and_a_bad_one_is_a_parse_error() {
    let layers = wgconv::bench::parse_suite_str(
        "a 8 16 16 -> 8 3x3 pad 1 mode reflect\nb 8 100 -> 8 9 mode circular pad 4\n",
        &suite_path(),
    )
    .unwrap();
    assert_eq!(layers[0].mode, wgconv::PaddingMode::Reflect);
    assert_eq!(
        layers[0].params().padding_mode,
        wgconv::PaddingMode::Reflect
    );
    assert_eq!(layers[1].mode, wgconv::PaddingMode::Circular);
    assert_eq!(
        layers[1].shape(1).unwrap().padding_mode,
        wgconv::PaddingMode::Circular
    );
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 pad 1 mode mirror\n");
    assert_contains(&message, &["padding_mode must be one of", "'mirror'"]);
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 mode reflect mode zeros\n");
    assert_contains(&message, &["'mode' is given twice"]);
}

#[test]
fn built_in_activations_suite_pairs_every_activation_with_none() {
    let layers = wgconv::bench::suite("activations").unwrap();
    let named: Vec<String> = layers.iter().map(|l| l.activation.to_string()).collect();
    for act in wgconv::Activation::ALL {
        assert!(
            named.iter().any(|n| n.starts_with(act.name())),
            "{} missing from {named:?}",
            act.name()
        );
    }
    // Every row has the multiply-adds of its family's none row.
    for layer in &layers {
        let none = layers
            .iter()
            .find(|l| l.dims == layer.dims && l.activation.is_none())
            .unwrap();
        assert_eq!(
            layer.shape(1).unwrap().flops(),
            none.shape(1).unwrap().flops()
        );
    }
}

#[test]
fn suite_activation_is_read_and_a_bad_one_is_a_parse_error() {
    let layers = wgconv::bench::parse_suite_str(
        "a 8 16 16 -> 8 3x3 pad 1 act gelu\nb 8 100 -> 8 9 act clamp=-1,2 pad 4\n",
        &suite_path(),
    )
    .unwrap();
    assert_eq!(layers[0].activation, wgconv::Activation::Gelu);
    assert_eq!(layers[0].params().activation, wgconv::Activation::Gelu);
    let clamp = wgconv::Activation::Clamp {
        min: -1.0,
        max: 2.0,
    };
    assert_eq!(layers[1].shape(1).unwrap().activation, clamp);
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 pad 1 act swish\n");
    assert_contains(&message, &["unknown activation 'swish'", "gelu-tanh"]);
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 act relu act tanh\n");
    assert_contains(&message, &["'act' is given twice"]);
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 act\n");
    assert_contains(&message, &["'act' needs a value"]);
}

#[test]
fn suite_option_given_twice_or_without_value_is_a_parse_error() {
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 pad 1 pad 2\n");
    assert_contains(&message, &["'pad' is given twice"]);
    let (_, message) = parse_error("c 64 56 56 -> 64 3x3 stride\n");
    assert_contains(&message, &["'stride' needs a value"]);
}

#[test]
fn suite_non_numeric_size_is_a_parse_error_quoting_the_text() {
    let (line, message) = parse_error("\n# c\nc 64 fifty 56 -> 64 3x3\n");
    assert_eq!(line, 3);
    assert_contains(
        &message,
        &["H (input height)", "positive integer", "'fifty'"],
    );
}

#[test]
fn suite_zero_size_and_zero_stride_are_parse_errors() {
    let (_, message) = parse_error("c 0 56 56 -> 64 3x3\n");
    assert_contains(&message, &["C (input channels)", "'0'"]);
    let (_, message) = parse_error("c 3 56 56 -> 64 3x3 stride 0\n");
    assert_contains(&message, &["stride", "positive integer", "'0'"]);
    // Zero padding is fine, negative is not.
    let (_, message) = parse_error("c 3 56 56 -> 64 3x3 pad -1\n");
    assert_contains(&message, &["pad", "non-negative integer", "'-1'"]);
}

#[test]
fn suite_kernel_not_r_by_s_is_a_parse_error() {
    let (line, message) = parse_error("c 3 56 56 -> 64 3\n");
    assert_eq!(line, 1);
    assert_contains(&message, &["'RxS'", "'3'"]);
    let (_, message) = parse_error("c 3 56 56 -> 64 3x\n");
    assert_contains(&message, &["kernel width S in '3x'"]);
}

#[test]
fn suite_wrong_number_of_input_sizes_is_a_parse_error() {
    let (_, message) = parse_error("c 64 56 -> 64 3x3\n");
    assert_contains(
        &message,
        &[
            "a conv1d layer ('C L ->') takes its kernel as one length 'k'",
            "'3x3'",
        ],
    );
    let (_, message) = parse_error("c 64 56 56 56 -> 64 3x3\n");
    assert_contains(
        &message,
        &["a conv3d layer ('C D H W ->') takes its kernel as 'TxRxS'"],
    );
    let (_, message) = parse_error("c 64 8 56 56 56 -> 64 3x3x3\n");
    assert_contains(
        &message,
        &[
            "expected 3 sizes 'C H W' (or 2, 'C L', for a conv1d; 4, 'C D H W', for a conv3d)",
            "got 5",
        ],
    );
    let (_, message) = parse_error("c 64 56 56 -> 64 9\n");
    assert_contains(&message, &["expected the kernel as 'RxS'"]);
    let (_, message) = parse_error("c 64 56 56 ->\n");
    assert_contains(&message, &["expected 'K RxS' after '->'"]);
}

#[test]
fn suite_duplicate_name_is_a_parse_error_naming_the_first_line() {
    let (line, message) =
        parse_error("a 3 8 8 -> 4 3x3\n# gap\nb 3 8 8 -> 4 1x1\na 3 9 9 -> 4 1x1\n");
    assert_eq!(line, 4);
    assert_contains(&message, &["duplicate layer name 'a'", "line 1"]);
}

#[test]
fn suite_kernel_larger_than_padded_input_is_a_parse_error() {
    let (line, message) = parse_error("tiny 3 2 2 -> 4 3x3\n");
    assert_eq!(line, 1);
    assert_contains(
        &message,
        &["'tiny' is not a valid convolution", "Kernel size"],
    );
}

#[test]
fn suite_with_only_comments_is_a_parse_error() {
    let (line, message) = parse_error("# nothing here\n\n   \n");
    assert_eq!(line, 0);
    assert_contains(&message, &["no layers", "3 lines"]);
    let (_, message) = parse_error("");
    assert_contains(&message, &["no layers"]);
}

#[test]
fn parse_error_display_leads_with_file_and_line() {
    let err = parse_suite_str("x 1 2 -> 3 3x3\n", Path::new("dir/s.suite")).unwrap_err();
    assert!(err.to_string().starts_with("dir/s.suite:1: "), "{err}");
}

#[test]
fn missing_suite_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.suite");
    match parse_suite(&path) {
        Err(BenchError::Wgconv(e @ Error::Io { action: "read", .. })) => {
            let Error::Io {
                path: p, source, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(
                e.to_string(),
                format!("cannot read {}: {source}", path.display())
            );
        }
        other => panic!("expected an Io error for reading, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------- CSV

#[test]
fn csv_has_the_header_and_empty_cells_for_missing_values() {
    let full = result(
        Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
        Some(2.0),
        Some(8.0),
    );
    let cpu_only = result(
        Layer::new("deep", 512, 7, 7, 512, 3, 3, 1, 1),
        None,
        Some(4.0),
    );
    let csv = csv_string(&[full.clone(), cpu_only.clone()]);
    let lines: Vec<&str> = csv.lines().collect();

    // The columns of earlier versions in their places, then the fastest and slowest runs.
    assert_eq!(
        lines[0],
        "name,n,c,h,w,k,r,s,stride,pad,flops,kernel,gpu_ms,gpu_e2e_ms,cpu_ms,gpu_gflops,cpu_gflops,speedup,max_abs_err,\
         gpu_ms_min,gpu_ms_max,gpu_e2e_ms_min,gpu_e2e_ms_max,cpu_ms_min,cpu_ms_max"
    );
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 3);
    assert!(csv.ends_with('\n'));

    let gpu_gflops = full.gflops(2.0);
    let cpu_gflops = full.gflops(8.0);
    assert_eq!(
        lines[1],
        format!(
            "conv3x3,1,64,56,56,64,3,3,1,1,{},conv2d_direct,2,6,8,{gpu_gflops},{cpu_gflops},4,\
             0.00000025,1.5,4,5,7,8,12",
            full.flops
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "deep,1,512,7,7,512,3,3,1,1,{},,,,4,,{},,,,,,,4,6",
            cpu_only.flops,
            cpu_only.gflops(4.0)
        )
    );
}

#[test]
fn csv_quotes_text_holding_commas_or_quotes() {
    let mut r = result(
        Layer::new("a,b \"q\"", 1, 4, 4, 1, 1, 1, 1, 0),
        Some(1.0),
        None,
    );
    r.kernel = Some("Tiled { tm: 4, tn: 4 }".to_string());
    let csv = csv_string(&[r]);
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("\"a,b \"\"q\"\"\",1,1,4,4,"), "{row}");
    assert!(row.contains(",\"Tiled { tm: 4, tn: 4 }\","), "{row}");
}

#[test]
fn csv_of_no_results_is_the_header_alone() {
    assert_eq!(csv_string(&[]), format!("{CSV_HEADER}\n"));
}

/// A backward result with times `ms`, `2 ms`, `ms / 4` and `4 ms`, each run from half to twice
/// its median.
fn backward(layer: Layer, ms: f64) -> BackwardResult {
    let flops = 2 * layer.k as u64 * (layer.h * layer.w * layer.c * layer.r * layer.s) as u64;
    let [input, weight, bias, all] = [ms, 2.0 * ms, ms / 4.0, 4.0 * ms];
    BackwardResult {
        bias_flops: (layer.k * layer.h * layer.w) as u64,
        layer,
        n: 1,
        flops,
        grad_input_ms: input,
        grad_input_ms_min: input / 2.0,
        grad_input_ms_max: input * 2.0,
        grad_weight_ms: weight,
        grad_weight_ms_min: weight / 2.0,
        grad_weight_ms_max: weight * 2.0,
        grad_bias_ms: bias,
        grad_bias_ms_min: bias / 2.0,
        grad_bias_ms_max: bias * 2.0,
        backward_ms: all,
        backward_ms_min: all / 2.0,
        backward_ms_max: all * 2.0,
        max_abs_err: Some([1e-6, 2e-6, 0.0]),
    }
}

#[test]
fn backward_csv_pairs_rows_by_index_and_leaves_unmeasured_forward_cells_empty() {
    let a = Layer::new("a", 3, 8, 8, 4, 3, 3, 1, 1);
    let b = Layer::new("b", 4, 8, 8, 4, 1, 1, 1, 0);
    let forward = [result(a.clone(), Some(1.0), Some(2.0))];
    let csv = backward_csv_string(&forward, &[backward(a, 1.0), backward(b.clone(), 0.5)]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], BACKWARD_CSV_HEADER);
    // The forward columns of earlier versions, the backward ones, then the spreads of both.
    let header: Vec<&str> = BACKWARD_CSV_HEADER.split(',').collect();
    let forward_header: Vec<&str> = CSV_HEADER.split(',').collect();
    assert_eq!(header[..19], forward_header[..19]);
    assert_eq!(
        header[19..22],
        ["grad_input_ms", "grad_input_gflops", "grad_weight_ms"]
    );
    assert_eq!(header[29..35], forward_header[19..]);
    assert_eq!(
        header[35..],
        [
            "grad_input_ms_min",
            "grad_input_ms_max",
            "grad_weight_ms_min",
            "grad_weight_ms_max",
            "grad_bias_ms_min",
            "grad_bias_ms_max",
            "backward_ms_min",
            "backward_ms_max",
        ]
    );
    assert_eq!(lines.len(), 3, "{csv}");
    // A row with a forward result carries its cells where csv_string puts them.
    let forward_csv = csv_string(&forward);
    let forward_cells: Vec<&str> = forward_csv.lines().nth(1).unwrap().split(',').collect();
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(cells.len(), header.len(), "{}", lines[1]);
    assert_eq!(
        (&cells[..19], &cells[29..35]),
        (&forward_cells[..19], &forward_cells[19..])
    );
    assert_eq!(cells[19], "1", "{}", lines[1]);
    // A row without one has empty forward cells.
    let bwd = backward(b, 0.5);
    let medians = format!(
        "0.5,{},1,{},0.125,2,{},0.000001,0.000002,0",
        bwd.gflops(0.5),
        bwd.gflops(1.0),
        bwd.backward_gflops()
    );
    let spreads = "0.25,1,0.5,2,0.0625,0.25,1,4";
    assert_eq!(
        lines[2],
        format!(
            "b,1,4,8,8,4,1,1,1,0,{},,,,,,,,,{medians},,,,,,,{spreads}",
            bwd.flops
        )
    );
}

/// A suite of one CPU-only run with these forward results.
fn suite(forward: Vec<LayerResult>) -> SuiteResults {
    SuiteResults {
        batch: 1,
        repeat: 1,
        passes: Passes::Forward,
        runs: vec![EngineRun {
            adapter: None,
            forward,
            backward: vec![],
        }],
    }
}

#[test]
fn write_csv_and_write_json_write_the_documents_and_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, json) = (dir.path().join("bench.csv"), dir.path().join("bench.json"));
    fs::write(&csv, "old contents").unwrap();
    let results = suite(vec![result(
        Layer::new("c", 3, 8, 8, 4, 3, 3, 1, 1),
        Some(1.0),
        Some(3.0),
    )]);

    write_csv(&csv, &results).unwrap();
    write_json(&json, &results).unwrap();

    let forward = &results.runs[0].forward;
    assert_eq!(fs::read_to_string(&csv).unwrap(), csv_string(forward));
    assert_eq!(fs::read_to_string(&json).unwrap(), results.json());
    assert_eq!(entries(dir.path()), ["bench.csv", "bench.json"]);
}

#[test]
fn write_csv_into_missing_folder_is_an_io_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("bench.csv");
    match write_csv(&path, &suite(vec![])) {
        Err(
            e @ BenchError::Wgconv(Error::Io {
                action: "write", ..
            }),
        ) => assert_eq!(
            e.to_string(),
            format!(
                "cannot write {}: folder {} does not exist",
                path.display(),
                dir.path().join("missing").display()
            )
        ),
        other => panic!("expected an Io error for writing, got {other:?}"),
    }
    assert!(entries(dir.path()).is_empty());
}

// ------------------------------------------------------------------------------------------- SVG

/// The contents of the `<text>` elements, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|element| {
            let (_, rest) = element.split_once('>')?;
            let (content, _) = rest.split_once("</text>")?;
            Some(content.trim().to_string())
        })
        .collect()
}

fn plot_results() -> Vec<LayerResult> {
    vec![
        result(
            Layer::new("conv3x3", 64, 56, 56, 64, 3, 3, 1, 1),
            Some(0.5),
            Some(6.0),
        ),
        result(
            Layer::new("conv1x1", 64, 56, 56, 256, 1, 1, 1, 0),
            Some(0.25),
            Some(2.0),
        ),
        // GPU only: one bar, no speedup.
        result(
            Layer::new("gpu_only", 512, 7, 7, 512, 3, 3, 1, 1),
            Some(0.125),
            None,
        ),
        // Nothing measured: a label and no bar.
        result(Layer::new("skipped", 3, 8, 8, 4, 3, 3, 1, 1), None, None),
    ]
}

#[test]
fn svg_chart_has_title_layer_names_legend_and_speedups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.svg");

    write_plot_svg(&path, "Test Adapter & Co, 2024-01-01", &plot_results()).unwrap();

    let svg = fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_contains(
        &svg,
        &[
            "Test Adapter &amp; Co, 2024-01-01",
            "conv3x3",
            "conv1x1",
            "gpu_only",
            "skipped",
            "GPU GFLOP/s",
            "CPU GFLOP/s",
            "GFLOP/s (log scale)",
        ],
    );
    // Speedups only above the groups where both ran.
    let speedups: Vec<String> = svg_texts(&svg)
        .into_iter()
        .filter(|t| t.ends_with('x') && t.as_bytes()[0].is_ascii_digit())
        .collect();
    assert_eq!(
        speedups,
        ["12x", "8.0x", "1.0x"],
        "the last one is the legend's sample"
    );
    assert_eq!(entries(dir.path()), ["bench.svg"]);
}

#[test]
fn svg_chart_of_nothing_measured_is_a_plot_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.svg");
    let empty = [result(Layer::new("c", 3, 8, 8, 4, 3, 3, 1, 1), None, None)];
    match write_plot_svg(&path, "t", &empty) {
        Err(BenchError::Plot { path: p, message }) => {
            assert_eq!(p, path);
            assert_contains(&message, &["none of the 1 layers"]);
        }
        other => panic!("expected a Plot error, got {other:?}"),
    }
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn svg_chart_into_missing_folder_is_an_io_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("bench.svg");
    match write_plot_svg(&path, "t", &plot_results()) {
        Err(
            e @ BenchError::Wgconv(Error::Io {
                action: "write", ..
            }),
        ) => {
            assert!(
                e.to_string()
                    .starts_with(&format!("cannot write {}: ", path.display())),
                "{e}"
            );
        }
        other => panic!("expected an Io error for writing, got {other:?}"),
    }
    assert!(entries(dir.path()).is_empty());
}

// ----------------------------------------------------------------------------------------- table

fn adapter(backend: wgconv::wgpu::Backend) -> AdapterSummary {
    AdapterSummary {
        name: format!("test {backend:?}"),
        backend,
        device_type: wgconv::wgpu::DeviceType::Cpu,
        driver: String::new(),
        driver_info: String::new(),
        vendor: 0,
    }
}

/// The table's header and row lines: from `layer ...` to the line before the geometric means.
fn table_lines(table: &str) -> Vec<&str> {
    table
        .lines()
        .skip_while(|l| !l.starts_with("layer"))
        .take_while(|l| !l.starts_with("geometric mean"))
        .collect()
}

#[test]
fn table_columns_are_as_wide_as_the_longest_layer_name() {
    let long = "a_layer_name_of_28_characters";
    let run = EngineRun {
        adapter: Some(adapter(wgconv::wgpu::Backend::Vulkan)),
        forward: vec![
            result(
                Layer::new("c", 3, 8, 8, 4, 3, 3, 1, 1),
                Some(1.0),
                Some(3.0),
            ),
            result(
                Layer::new(long, 3, 8, 8, 4, 3, 3, 1, 1),
                Some(12.5),
                Some(300.25),
            ),
        ],
        backward: vec![],
    };
    let table = run.table();
    assert!(
        table.starts_with("GPU: test Vulkan (Vulkan, Cpu)\n"),
        "{table}"
    );
    let lines = table_lines(&table);
    assert_eq!(lines.len(), 3, "{table}");
    // Every column is right-aligned after the name, so aligned rows are equally long.
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
    assert!(lines[2].starts_with(&format!("{long}  ")), "{table}");
    assert!(
        lines[1].starts_with(&format!("c{}  ", " ".repeat(long.len() - 1))),
        "{table}"
    );
}

#[test]
fn table_with_backward_rows_puts_them_under_the_forward_row() {
    let layer = Layer::new("c", 3, 8, 8, 4, 3, 3, 1, 1);
    let run = EngineRun {
        adapter: Some(adapter(wgconv::wgpu::Backend::Vulkan)),
        forward: vec![result(layer.clone(), Some(1.0), Some(3.0))],
        backward: vec![backward(layer, 2.0)],
    };
    let table = run.table();
    let lines = table_lines(&table);
    // The pass column starts where its header does (the table is ASCII here).
    let at = lines[0].find("pass").unwrap();
    let passes: Vec<&str> = lines.iter().map(|l| l[at..at + 11].trim()).collect();
    assert_eq!(
        passes,
        [
            "pass",
            "forward",
            "grad input",
            "grad weight",
            "grad bias",
            "backward"
        ],
        "{table}"
    );
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
}

#[test]
fn several_runs_name_their_rows_by_backend_in_json_and_csv() {
    let layer = Layer::new("Conv", 3, 8, 8, 4, 3, 3, 1, 1);
    let run = |backend| EngineRun {
        adapter: Some(adapter(backend)),
        forward: vec![result(layer.clone(), Some(1.0), Some(3.0))],
        backward: vec![],
    };
    let results = SuiteResults {
        batch: 1,
        repeat: 1,
        passes: Passes::Forward,
        runs: vec![
            run(wgconv::wgpu::Backend::Vulkan),
            run(wgconv::wgpu::Backend::Gl),
        ],
    };
    let names: Vec<String> = results
        .forward_rows()
        .into_iter()
        .map(|r| r.layer.name)
        .collect();
    assert_eq!(names, ["conv@vulkan", "conv@gl"]);
    let v: serde_json::Value = serde_json::from_str(&results.json()).unwrap();
    assert_eq!(v["adapter"], "test Vulkan, test Gl");
    assert_eq!(v["backend"], "Vulkan, Gl");
    assert_eq!(v["results"][1]["name"], "conv@gl");
    assert_eq!(v["results"][1]["pass"], "forward");
    assert_eq!(v["results"][1]["gpu_ms"], 1.0);
    assert!(results
        .csv()
        .lines()
        .nth(2)
        .unwrap()
        .starts_with("conv@gl,1,3,8,8,"));
    // One run keeps its names as they are.
    let one = SuiteResults {
        runs: vec![run(wgconv::wgpu::Backend::Vulkan)],
        ..results
    };
    assert_eq!(one.forward_rows()[0].layer.name, "Conv");
}

#[test]
fn table_of_one_side_shows_a_dash_for_the_side_not_measured() {
    let layer = Layer::new("c", 3, 8, 8, 4, 3, 3, 1, 1);
    let gpu_only = EngineRun {
        adapter: Some(adapter(wgconv::wgpu::Backend::Vulkan)),
        forward: vec![result(layer.clone(), Some(1.0), None)],
        backward: vec![backward(layer.clone(), 2.0)],
    };
    let cpu_only = EngineRun {
        adapter: None,
        forward: vec![result(layer, None, Some(3.0))],
        backward: vec![],
    };
    for (run, means) in [
        (
            &gpu_only,
            "geometric mean GFLOP/s: forward gpu 0.0, cpu -; grad input gpu 0.0",
        ),
        (&cpu_only, "geometric mean GFLOP/s: gpu -, cpu 0.0"),
    ] {
        let table = run.table();
        assert!(!table.to_lowercase().contains("nan"), "{table}");
        assert!(!table.contains("inf"), "{table}");
        let line = table
            .lines()
            .find(|l| l.starts_with("geometric mean"))
            .unwrap();
        assert!(line.starts_with(means), "{table}");
    }
    assert!(cpu_only.table().starts_with("GPU: not measured\n"));
}

#[test]
fn svg_chart_not_named_svg_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["bench.png", "bench", "bench.svgz"] {
        let path = dir.path().join(name);
        match write_plot_svg(&path, "t", &plot_results()) {
            Err(e @ BenchError::NotSvg { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "{}: the chart is SVG, so its name must end in .svg",
                    path.display()
                )
            ),
            other => panic!("expected NotSvg for {name}, got {other:?}"),
        }
        assert!(matches!(
            check_chart_name(&path),
            Err(BenchError::NotSvg { .. })
        ));
    }
    assert!(entries(dir.path()).is_empty());
    assert!(check_chart_name(Path::new("dir.v2/Bench.Svg")).is_ok());
}
