//! Every shader file parses and validates with naga, so a broken shader fails with no GPU at all;
//! so does the generated register-tiled kernel over a sweep of geometries.

use std::path::Path;

use wgconv::gpu::codegen::{grad_weight_source, regtile_source, RegTileSpec};
use wgconv::gpu::kernels::{with_epilogue, with_params, EPILOGUE_WGSL, PARAMS_WGSL, SHADER_FILES};
use wgconv::PaddingMode;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        // Subgroup operations are used only where the device has them (wgpu's SUBGROUP feature).
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
}

#[test]
fn every_shader_file_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let source = std::fs::read_to_string(&path).expect("readable shader");
            // Kernel files are completed by the shared uniform block (and the forward kernels
            // by the epilogue), as the engine does; the epilogue on its own by the output and
            // uniform bindings it reads.
            let full = if source == PARAMS_WGSL {
                // Its functions read the uniform block each kernel binds.
                format!("{source}\n@group(0) @binding(4) var<uniform> params: Params;\n")
            } else if source == EPILOGUE_WGSL {
                with_epilogue(
                    "@group(0) @binding(3) var<storage, read_write> output: array<f32>;\n\
                     @group(0) @binding(4) var<uniform> params: Params;\n",
                )
            } else if source.contains("epilogue(") {
                with_epilogue(&source)
            } else {
                with_params(&source)
            };
            validate(&path.display().to_string(), &full);
            count += 1;
        }
    }
    assert_eq!(
        count,
        SHADER_FILES.len() + 2,
        "every file in shaders/ is compiled into the crate and vice versa"
    );
}

#[test]
fn compiled_in_sources_are_the_files_on_disk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for (name, source) in SHADER_FILES {
        let on_disk = std::fs::read_to_string(dir.join(format!("{name}.wgsl")))
            .unwrap_or_else(|e| panic!("no shaders/{name}.wgsl: {e}"));
        assert_eq!(on_disk, source, "{name} is not the file's text");
    }
    let params = std::fs::read_to_string(dir.join("conv_params.wgsl")).expect("conv_params.wgsl");
    assert_eq!(params, PARAMS_WGSL);
    let epilogue = std::fs::read_to_string(dir.join("epilogue.wgsl")).expect("epilogue.wgsl");
    assert_eq!(epilogue, EPILOGUE_WGSL);
}

#[test]
fn generated_register_tiled_kernels_validate() {
    let mut count = 0;
    for (tm, tn) in [(8, 4), (16, 16), (32, 8), (8, 16)] {
        for (padded, mode) in [
            (false, PaddingMode::Zeros),
            (true, PaddingMode::Zeros),
            (true, PaddingMode::Reflect),
            (true, PaddingMode::Replicate),
            (true, PaddingMode::Circular),
        ] {
            for (unrolled_channels, subgroup) in [
                (None, None),
                (Some(1), None),
                (Some(3), Some(8)),
                (None, Some(8)),
                (None, Some(4)),
            ] {
                let spec = RegTileSpec {
                    tm,
                    tn,
                    padded,
                    mode,
                    unrolled_channels,
                    subgroup,
                };
                let source = regtile_source(&spec);
                assert!(
                    !source.contains("@generated body"),
                    "{spec:?}: marker left in"
                );
                validate(&format!("{spec:?}"), &source);
                count += 1;
            }
        }
    }
    assert_eq!(count, 100);
}

#[test]
fn generated_weight_gradient_kernels_validate() {
    for tile_o in [4, 8] {
        for entries in [4, 8] {
            let source = grad_weight_source(tile_o, entries);
            assert!(
                !source.contains("@generated body"),
                "{tile_o}x{entries}: marker left in"
            );
            validate(&format!("grad weight, tile {tile_o}x{entries}"), &source);
        }
    }
}
