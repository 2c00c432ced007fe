//! Adapter profiles: what the planner starts from on each driver family it knows (tile sizes,
//! subgroup use, how much straight-line code a driver's shader compiler takes well).
//!
//! Measured on this project's CI machine (see BENCHMARKS.md): Mesa's llvmpipe/lavapipe compile
//! 256-accumulator register tiles in about a second and run them fastest. SwiftShader's Subzero
//! compiles a 32x8 tile in 4.7 s and 64x4 with padding in 4.4 s, but does not finish in minutes
//! (its memory growing without bound, and every later build on the device queued behind it) as
//! soon as one loop body has more than 4 masked loads: 8x8 with padding, or the weight gradient's
//! 8 entries. Real GPUs want workgroup-memory tiles.

use std::fmt;

/// The driver families whose compilers and hardware the planner knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverFamily {
    /// Mesa's llvmpipe (OpenGL) and lavapipe (Vulkan): LLVM on the CPU, 8-wide SIMD lanes.
    Llvmpipe,
    /// Google's SwiftShader (Vulkan; headless Chrome's WebGPU): Subzero on the CPU.
    SwiftShader,
    /// NVIDIA GPUs.
    Nvidia,
    /// AMD GPUs.
    Amd,
    /// Intel GPUs (mostly integrated).
    Intel,
    /// Apple GPUs (Metal).
    Apple,
    /// Anything else: a CPU adapter or a GPU wgconv has no measurements for.
    Unknown,
}

/// PCI vendor ids wgpu reports (`AdapterInfo::vendor`); Mesa's and Google's are Khronos ids.
const VENDOR_NVIDIA: u32 = 0x10de;
const VENDOR_AMD: u32 = 0x1002;
const VENDOR_INTEL: u32 = 0x8086;
const VENDOR_APPLE: u32 = 0x106b;
const VENDOR_MESA: u32 = 0x10005;
const VENDOR_GOOGLE: u32 = 0x1ae0;

impl DriverFamily {
    /// The family of an adapter from its name, driver name and PCI vendor id.
    pub fn detect(name: &str, driver: &str, vendor: u32) -> Self {
        let text = format!("{name} {driver}").to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&["llvmpipe", "lavapipe"]) || vendor == VENDOR_MESA && has(&["llvm"]) {
            DriverFamily::Llvmpipe
        } else if has(&["swiftshader"]) || vendor == VENDOR_GOOGLE {
            DriverFamily::SwiftShader
        } else if vendor == VENDOR_NVIDIA || has(&["nvidia", "geforce", "quadro", "tesla"]) {
            DriverFamily::Nvidia
        } else if vendor == VENDOR_AMD || has(&["amd", "radeon"]) {
            DriverFamily::Amd
        } else if vendor == VENDOR_INTEL || has(&["intel"]) {
            DriverFamily::Intel
        } else if vendor == VENDOR_APPLE || has(&["apple"]) {
            DriverFamily::Apple
        } else {
            DriverFamily::Unknown
        }
    }

    /// A short lowercase name for reports and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            DriverFamily::Llvmpipe => "llvmpipe",
            DriverFamily::SwiftShader => "swiftshader",
            DriverFamily::Nvidia => "nvidia",
            DriverFamily::Amd => "amd",
            DriverFamily::Intel => "intel",
            DriverFamily::Apple => "apple",
            DriverFamily::Unknown => "unknown",
        }
    }
}

/// What the planner starts from on one adapter: the defaults the autotuner can improve on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    /// The driver family the profile is for.
    pub family: DriverFamily,
    /// Whether `Algorithm::Auto` prefers the barrier-free register-tiled kernels (CPU adapters,
    /// where barriers are expensive and loads cost per lane) over the workgroup-memory ones.
    pub register_tiles_first: bool,
    /// Most accumulators (`TM * TN`) per invocation of a register-tiled kernel.
    pub max_register_tile: u32,
    /// Most multiply-adds written out in one loop body of a generated kernel (the register tile
    /// times its unrolled channels): the straight-line code a driver compiles in reasonable time.
    pub max_straight_line_macs: u32,
    /// Most masked loads (a load under a bounds test, `select`ed to zero outside) in one loop
    /// body: the padded register tile's pixels per invocation, the weight gradient's entries.
    pub max_masked_loads: u32,
    /// Whether the register-tiled kernel broadcasts weights through subgroups when the device has
    /// them (and a fixed subgroup size).
    pub subgroups: bool,
    /// Most output channels per invocation of the weight-gradient kernel (4 or 8).
    pub max_grad_weight_tile: u32,
}

impl Profile {
    /// The profile for `family`; `cpu_adapter` (wgpu's device type) matters for unknown ones.
    pub fn for_family(family: DriverFamily, cpu_adapter: bool) -> Self {
        let base = Profile {
            family,
            register_tiles_first: cpu_adapter,
            max_register_tile: 256,
            max_straight_line_macs: 1024,
            subgroups: true,
            max_masked_loads: 16,
            max_grad_weight_tile: 8,
        };
        match family {
            DriverFamily::Llvmpipe => Profile {
                register_tiles_first: true,
                ..base
            },
            // Builds measured alone: 8x4 padded 1.2 s, 16x4 padded 1.5 s, 32x4 padded 2.6 s,
            // 32x4 padded with 3 unrolled channels 1.6 s, 16x8 2.1 s; 8x8 padded, 4x16 padded and
            // the weight gradient with 8 entries did not finish in 40 s. Builds on one device
            // queue behind each other, so tiles stay small enough to keep each within seconds.
            DriverFamily::SwiftShader => Profile {
                register_tiles_first: true,
                max_register_tile: 128,
                max_straight_line_macs: 384,
                max_masked_loads: 4,
                ..base
            },
            // GPUs: registers are per invocation and spill to slow memory; the register-tiled
            // kernel is a tuning candidate there, with tiles a GPU's register file holds.
            DriverFamily::Nvidia
            | DriverFamily::Amd
            | DriverFamily::Intel
            | DriverFamily::Apple => Profile {
                register_tiles_first: false,
                max_register_tile: 64,
                max_straight_line_macs: 256,
                ..base
            },
            // An unknown compiler: the sizes every known one handles.
            DriverFamily::Unknown => Profile {
                max_register_tile: 64,
                max_straight_line_macs: 192,
                max_masked_loads: 4,
                ..base
            },
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} first, register tiles up to {} accumulators, up to {} straight-line \
             multiply-adds and {} masked loads per loop body, subgroups {}, weight-gradient tiles \
             up to {} channels",
            self.family.name(),
            if self.register_tiles_first {
                "register tiles"
            } else {
                "workgroup-memory tiles"
            },
            self.max_register_tile,
            self.max_straight_line_macs,
            self.max_masked_loads,
            if self.subgroups { "on" } else { "off" },
            self.max_grad_weight_tile
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_software_adapters_of_ci_are_recognised() {
        let family = |name, driver, vendor| DriverFamily::detect(name, driver, vendor);
        assert_eq!(
            family("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe", VENDOR_MESA),
            DriverFamily::Llvmpipe
        );
        assert_eq!(
            family(
                "SwiftShader Device (Subzero)",
                "SwiftShader driver",
                VENDOR_GOOGLE
            ),
            DriverFamily::SwiftShader
        );
        assert_eq!(
            family("NVIDIA H200", "NVIDIA", VENDOR_NVIDIA),
            DriverFamily::Nvidia
        );
        assert_eq!(family("Mystery", "", 0x1234), DriverFamily::Unknown);
    }

    #[test]
    fn swiftshader_gets_smaller_straight_line_kernels_than_llvmpipe() {
        let swift = Profile::for_family(DriverFamily::SwiftShader, true);
        let mesa = Profile::for_family(DriverFamily::Llvmpipe, true);
        assert!(swift.max_register_tile < mesa.max_register_tile);
        assert!(swift.max_straight_line_macs < mesa.max_straight_line_macs);
        assert!(swift.max_masked_loads < mesa.max_masked_loads);
    }
}
