//! `wgconv run --activation A --residual R.npy`: the fused epilogue from the command line on
//! the GPU and the CPU reference, in 1D, 2D and 3D, and its errors (a usage error naming the
//! activations for a bad one, the residual's shape naming both, no output file); and
//! `--flip-kernel`, true convolution, as the convolution with the turned weight file.

mod common;

use std::process::Output;

use wgconv::{cpu, io, Activation, ConvNdParams, PaddingNd};

use common::{npy_file, wgconv};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_applies_the_activation_after_the_residual_in_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let value = |i: usize| ((i * 37) % 23) as f32 / 4.0 - 2.5;
    // (input, weight, output) shapes of a conv1d, a conv2d and a conv3d with padding 1.
    let ranks: [(&[usize], &[usize], &[usize]); 3] = [
        (&[2, 3, 9], &[4, 3, 3], &[2, 4, 9]),
        (&[2, 3, 5, 6], &[4, 3, 3, 3], &[2, 4, 5, 6]),
        (&[1, 2, 3, 4, 5], &[3, 2, 3, 3, 3], &[1, 3, 3, 4, 5]),
    ];
    for (rank, (input, weight, output)) in ranks.into_iter().enumerate() {
        let x = npy_file(dir.path(), &format!("x{rank}.npy"), input, value);
        let w = npy_file(dir.path(), &format!("w{rank}.npy"), weight, |i| {
            value(i * 3) / 8.0
        });
        let r = npy_file(dir.path(), &format!("r{rank}.npy"), output, value);
        for act in ["gelu", "leaky-relu=0.2", "clamp=-1,0.5", "hardswish"] {
            let activation: Activation = act.parse().unwrap();
            let (xt, wt, rt) = (
                io::read_npy(&x).unwrap(),
                io::read_npy(&w).unwrap(),
                io::read_npy(&r).unwrap(),
            );
            let want = match rank {
                0 => cpu::reference::conv_nd_fused(
                    &xt,
                    &wt,
                    None,
                    Some(&rt),
                    &params::<1>(activation),
                ),
                1 => cpu::reference::conv_nd_fused(
                    &xt,
                    &wt,
                    None,
                    Some(&rt),
                    &params::<2>(activation),
                ),
                _ => cpu::reference::conv_nd_fused(
                    &xt,
                    &wt,
                    None,
                    Some(&rt),
                    &params::<3>(activation),
                ),
            }
            .unwrap();
            for device in ["gpu", "cpu"] {
                let y = dir.path().join(format!("y{rank}_{device}.npy"));
                let out = wgconv(&[
                    "run",
                    "--input",
                    &x,
                    "--weight",
                    &w,
                    "--residual",
                    &r,
                    "--padding",
                    "1",
                    "--activation",
                    act,
                    "--device",
                    device,
                    "--output",
                    y.to_str().unwrap(),
                ]);
                let context = format!("conv{}d {act} {device}", rank + 1);
                assert!(out.status.success(), "{context}: {}", stderr(&out));
                let got = io::read_npy(&y).unwrap();
                assert_eq!(got.shape(), want.shape(), "{context}");
                for (g, r) in got.data().iter().zip(want.data()) {
                    assert!(
                        (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                        "{context}: {g} vs {r}"
                    );
                }
            }
        }
    }
}

/// Padding 1 on every axis with `activation`.
fn params<const N: usize>(activation: Activation) -> ConvNdParams<N> {
    ConvNdParams {
        padding: PaddingNd::Explicit([[1, 1]; N]),
        activation,
        ..ConvNdParams::default()
    }
}

#[test]
fn a_bad_activation_or_residual_is_refused_without_an_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = npy_file(dir.path(), "x.npy", &[1, 2, 5, 5], |i| i as f32);
    let w = npy_file(dir.path(), "w.npy", &[3, 2, 3, 3], |i| i as f32);
    let y = dir.path().join("y.npy");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--input",
            &x,
            "--weight",
            &w,
            "--output",
            y.to_str().unwrap(),
        ];
        args.extend(extra);
        wgconv(&args)
    };
    // An activation that does not exist, or a parameter that is not a number: usage errors
    // naming the activations.
    for bad in ["swish", "leaky-relu=fast", "clamp=1"] {
        let out = run(&["--activation", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(bad), "{bad}: {}", stderr(&out));
        assert!(!y.exists());
    }
    assert!(stderr(&run(&["--activation", "swish"])).contains("gelu-tanh, silu, hardswish"));
    // A residual of the input's shape, not the output's: both shapes named, exit 1.
    let r = npy_file(dir.path(), "r.npy", &[1, 3, 5, 5], |i| i as f32);
    for device in ["gpu", "cpu"] {
        let out = run(&["--residual", &r, "--device", device]);
        assert_eq!(out.status.code(), Some(1), "{device}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "residual has shape [1, 3, 5, 5], but the convolution's output has shape [1, 3, 3, 3]"
            ),
            "{device}: {}",
            stderr(&out)
        );
        assert!(!y.exists());
    }
}

#[test]
fn run_flip_kernel_is_the_convolution_with_the_turned_weight_file_in_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let value = |i: usize| ((i * 29) % 19) as f32 / 4.0 - 2.0;
    let ranks: [(&[usize], &[usize]); 3] = [
        (&[2, 3, 9], &[4, 3, 3]),
        (&[3, 5, 6], &[4, 3, 2, 3]),
        (&[1, 2, 3, 4, 5], &[3, 2, 2, 3, 2]),
    ];
    for (rank, (input, weight)) in ranks.into_iter().enumerate() {
        let x = npy_file(dir.path(), &format!("x{rank}.npy"), input, value);
        let w = npy_file(dir.path(), &format!("w{rank}.npy"), weight, |i| {
            value(i * 7)
        });
        let turned = io::read_npy(&w).unwrap().kernel_turned().unwrap();
        let w_turned = dir.path().join(format!("w{rank}_turned.npy"));
        io::write_npy(&w_turned, &turned).unwrap();
        for device in ["gpu", "cpu"] {
            let run = |weight: &str, flip: bool, name: &str| {
                let y = dir.path().join(format!("{name}{rank}_{device}.npy"));
                let mut args = vec!["run", "--input", &x, "--weight", weight];
                args.extend(["--padding", "1", "--padding-mode", "circular"]);
                args.extend(["--device", device, "--output", y.to_str().unwrap()]);
                if flip {
                    args.push("--flip-kernel");
                }
                let out = wgconv(&args);
                let context = format!("conv{}d {device} flip {flip}", rank + 1);
                assert!(out.status.success(), "{context}: {}", stderr(&out));
                io::read_npy(&y).unwrap()
            };
            let flipped = run(&w, true, "flipped");
            let plain = run(w_turned.to_str().unwrap(), false, "plain");
            let unturned = run(&w, false, "unturned");
            let context = format!("conv{}d {device}", rank + 1);
            assert_eq!(flipped, plain, "{context}");
            assert_ne!(flipped, unturned, "{context}: the flag changed nothing");
        }
    }
}
