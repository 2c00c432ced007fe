//! Every shader file parses and validates with naga, so a broken shader fails with no GPU at all.

use std::path::Path;

use wgconv::gpu::kernels::Kernel;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
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
            validate(&path.display().to_string(), &source);
            count += 1;
        }
    }
    assert!(
        count >= 2,
        "expected at least the direct and pointwise shaders, found {count}"
    );
}

#[test]
fn every_kernel_source_is_a_shader_file_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for kernel in Kernel::ALL {
        let on_disk = std::fs::read_to_string(dir.join(format!("{}.wgsl", kernel.name())))
            .unwrap_or_else(|e| {
                panic!("{}: no shaders/{}.wgsl: {e}", kernel.name(), kernel.name())
            });
        assert_eq!(
            on_disk,
            kernel.source(),
            "{} is not the file's text",
            kernel.name()
        );
        validate(kernel.name(), kernel.source());
    }
}
