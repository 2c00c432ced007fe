//! Out of memory on allocation is an error, not an abort.
//!
//! Software adapters take "device" memory from the process, so the test runs a child process (this
//! same test binary) under an address-space limit (`ulimit -v`) and allocates GPU tensors of
//! 512 MiB until the device cannot back one. The child must report `Error::OutOfMemory`, keep
//! working for small problems afterwards, and exit normally.

mod common;

use std::process::Command;

use wgconv::{Conv2dParams, Error, Tensor};

/// Address space allowed to the child, in KiB: room for the driver and a few 512 MiB buffers.
const CHILD_LIMIT_KIB: u64 = 3 << 20;

/// The child process's environment variable: set, this binary is the child.
const CHILD: &str = "WGCONV_OOM_CHILD";

/// A test binary of its own without the libtest harness (`harness = false` in Cargo.toml): run
/// plainly it is the parent, which runs itself again as the child under the memory limit.
fn main() {
    if std::env::var_os(CHILD).is_some() {
        child_allocates_until_the_device_runs_out();
    } else {
        allocations_the_device_cannot_back_are_errors_not_aborts();
    }
}

fn allocations_the_device_cannot_back_are_errors_not_aborts() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {CHILD_LIMIT_KIB} && exec \"$0\""))
        .arg(&exe)
        .env(CHILD, "1")
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child under `ulimit -v {CHILD_LIMIT_KIB}` failed ({}):\n{stderr}",
        out.status
    );
    assert!(stderr.contains("out of memory after"), "{stderr}");
    println!("test allocations_the_device_cannot_back_are_errors_not_aborts ... ok");
}

/// Run by the parent under a memory limit (on its own it would allocate until the machine's
/// memory runs out).
fn child_allocates_until_the_device_runs_out() {
    let engine = common::engine();
    let mut held = Vec::new();
    let error = loop {
        match engine.alloc(&[128 << 20]) {
            // Write to it, so that drivers that commit memory lazily must commit it now.
            Ok(t) => {
                held.push(t);
                if let Err(e) = engine.synchronize() {
                    break e;
                }
            }
            Err(e) => break e,
        }
        assert!(held.len() < 64, "32 GiB allocated under a 3 GiB limit");
    };
    eprintln!(
        "out of memory after {} tensors of 512 MiB: {error}",
        held.len()
    );
    assert!(matches!(error, Error::OutOfMemory { .. }), "{error:?}");
    // What was allocated is released, and the engine still works.
    drop(held);
    let x = Tensor::full([1, 1, 4, 4], 1.0).unwrap();
    let w = Tensor::full([1, 1, 3, 3], 1.0).unwrap();
    let y = engine
        .conv2d(&x, &w, None, &Conv2dParams::default())
        .expect("a small convolution after running out of memory");
    assert_eq!(y.data(), [9.0; 4]);
}
