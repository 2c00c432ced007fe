//! The tuning cache: which kernel `wgconv tune` found fastest (and verified) per shape class on
//! one adapter, and which kernels did not build there, kept in a text file under the user's cache
//! folder and reused across runs.
//!
//! One line per fact, tab-separated; a line belongs to one adapter, driver and wgconv version, so
//! a driver update or a new wgconv starts afresh (the old lines stay, for the old versions):
//!
//! ```text
//! winner  <adapter> <backend> <driver> <driver info> <wgconv version> <op> <shape class> <choice> <microseconds>
//! failed  <adapter> <backend> <driver> <driver info> <wgconv version> <kernel> <why>
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::{Conv2dShape, PaddingMode};

/// The cache file's name inside the cache folder.
pub const CACHE_FILE: &str = "tuning-v1.tsv";

/// Whether an engine uses the kernels `wgconv tune` chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tuning {
    /// The planner's choices alone (deterministic; the default of `EngineOptions`, and what tests
    /// use). Build failures are remembered for the engine's lifetime only.
    #[default]
    Off,
    /// The winners in the cache in this folder where they exist, the planner's choices elsewhere;
    /// kernels that fail to build are added to the cache so later runs skip them.
    Cached(PathBuf),
}

impl Tuning {
    /// `Cached` in the user's cache folder (see [`default_cache_dir`]), or `Off` when
    /// `WGCONV_TUNING=off` or no folder is known.
    pub fn from_env() -> Self {
        let off =
            std::env::var("WGCONV_TUNING").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"));
        match default_cache_dir() {
            Some(dir) if !off => Tuning::Cached(dir),
            _ => Tuning::Off,
        }
    }
}

/// The folder of the tuning cache: `WGCONV_CACHE_DIR`, else `$XDG_CACHE_HOME/wgconv`, else
/// `$HOME/.cache/wgconv`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("WGCONV_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("wgconv")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("wgconv")))
}

/// The operations the tuner chooses kernels for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The forward convolution (also the input gradient's stride-1 and spread forms).
    Forward,
    /// The weight gradient's split reduction.
    GradWeight,
}

impl Op {
    /// The name in the cache file.
    pub fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::GradWeight => "grad_weight",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        [Op::Forward, Op::GradWeight]
            .into_iter()
            .find(|op| op.name() == s)
    }
}

/// Every property of a convolution that changes which kernel wins, with sizes in powers of two:
/// kernel, stride, dilation, padding or not (and its mode), the kind of grouping, channels per group in and out,
/// output pixels and batch. Problems of one class share a tuned kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeClass(String);

impl ShapeClass {
    /// The class of `shape`.
    pub fn of(shape: &Conv2dShape) -> Self {
        // Small counts exactly (they change the generated code), larger ones by power of two.
        let bucket = |n: usize| if n <= 4 { n } else { n.next_power_of_two() };
        let padded = shape.pad_top + shape.pad_bottom + shape.pad_left + shape.pad_right > 0;
        let (cg, og) = (
            shape.in_channels_per_group(),
            shape.out_channels_per_group(),
        );
        let grouping = if shape.groups == 1 {
            "g1"
        } else if cg == 1 {
            "depthwise"
        } else {
            "grouped"
        };
        ShapeClass(format!(
            "k{}x{}_s{}x{}_d{}x{}_{}_{grouping}_cg{}_og{}_px{}_n{}",
            shape.kernel_h,
            shape.kernel_w,
            shape.stride_h,
            shape.stride_w,
            shape.dilation_h,
            shape.dilation_w,
            match (padded, shape.padding_mode) {
                (false, _) => "nopad".to_string(),
                (true, PaddingMode::Zeros) => "pad".to_string(),
                (true, mode) => format!("pad{mode}"),
            },
            bucket(cg),
            bucket(og),
            bucket(shape.out_h * shape.out_w),
            bucket(shape.batch),
        ))
    }

    /// The class as written in the cache.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShapeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One tuned winner: the choice's name (an [`Algorithm`](crate::Algorithm) name for the forward
/// convolution, `grad-weight-TO` for the weight gradient) and its measured kernel time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Winner {
    /// The operation.
    pub op: Op,
    /// The shape class.
    pub class: ShapeClass,
    /// The chosen kernel, by name.
    pub choice: String,
    /// Its median kernel time on the tuning problem, in microseconds.
    pub micros: u64,
}

/// What a cache line's adapter fields must match: the adapter's name, backend, driver and driver
/// details, and this wgconv's version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterKey(Vec<String>);

impl AdapterKey {
    /// The key of an adapter as wgpu describes it (`AdapterSummary`'s fields).
    pub fn new(name: &str, backend: &str, driver: &str, driver_info: &str) -> Self {
        AdapterKey(vec![
            field(name),
            field(backend),
            field(driver),
            field(driver_info),
            env!("CARGO_PKG_VERSION").to_string(),
        ])
    }
}

/// The cache as read from disk: this adapter's winners and failures, and every other line as it
/// was (other adapters', drivers', versions').
#[derive(Clone, Debug, Default)]
pub struct TuningCache {
    path: Option<PathBuf>,
    key: Option<AdapterKey>,
    winners: Vec<Winner>,
    failed: Vec<(String, String)>,
    others: Vec<String>,
}

fn field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

impl TuningCache {
    /// The cache in `dir` for `adapter` (empty when the file does not exist or cannot be read:
    /// a cache is never a reason to fail).
    pub fn load(dir: &Path, key: AdapterKey) -> Self {
        let path = dir.join(CACHE_FILE);
        let mut cache = TuningCache {
            path: Some(path.clone()),
            key: Some(key),
            ..TuningCache::default()
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if !cache.take(line) {
                cache.others.push(line.to_string());
            }
        }
        cache
    }

    /// Takes `line` when it is this adapter's; false when it is another's (or unreadable).
    fn take(&mut self, line: &str) -> bool {
        let fields: Vec<&str> = line.split('\t').collect();
        let ours = self
            .key
            .as_ref()
            .is_some_and(|key| fields.len() > 6 && fields[1..6].iter().eq(key.0.iter()));
        if !ours {
            return false;
        }
        match (fields[0], &fields[6..]) {
            ("winner", [op, class, choice, micros]) => {
                let (Some(op), Ok(micros)) = (Op::parse(op), micros.parse()) else {
                    return false;
                };
                self.put(Winner {
                    op,
                    class: ShapeClass(class.to_string()),
                    choice: choice.to_string(),
                    micros,
                });
                true
            }
            ("failed", [kernel, why]) => {
                self.failed.push((kernel.to_string(), why.to_string()));
                true
            }
            _ => false,
        }
    }

    fn put(&mut self, winner: Winner) {
        self.winners
            .retain(|w| (w.op, &w.class) != (winner.op, &winner.class));
        self.winners.push(winner);
    }

    /// Where the cache lives.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The tuned choice for `op` on problems of `class`.
    pub fn winner(&self, op: Op, class: &ShapeClass) -> Option<&Winner> {
        self.winners
            .iter()
            .find(|w| w.op == op && &w.class == class)
    }

    /// This adapter's winners.
    pub fn winners(&self) -> &[Winner] {
        &self.winners
    }

    /// Kernels (by name) that did not build on this adapter, with why.
    pub fn failures(&self) -> &[(String, String)] {
        &self.failed
    }

    /// Whether `kernel` (by name) is remembered as not building here.
    pub fn has_failed(&self, kernel: &str) -> bool {
        self.failed.iter().any(|(k, _)| k == kernel)
    }

    /// Records `winner` (replacing the class's old one) and saves.
    ///
    /// # Errors
    /// The file system's error while saving.
    pub fn record_winner(&mut self, winner: Winner) -> std::io::Result<()> {
        self.put(winner);
        self.save()
    }

    /// Records that `kernel` did not build here, and saves.
    ///
    /// # Errors
    /// The file system's error while saving.
    pub fn record_failure(&mut self, kernel: &str, why: &str) -> std::io::Result<()> {
        if !self.has_failed(kernel) {
            self.failed.push((field(kernel), field(why)));
        }
        self.save()
    }

    /// Writes the whole file anew next to itself, then renames it into place: readers see the old
    /// file or the new one, never half of one.
    fn save(&self) -> std::io::Result<()> {
        let (Some(path), Some(key)) = (&self.path, &self.key) else {
            return Ok(());
        };
        let key = key.0.join("\t");
        let mut text = String::new();
        for line in &self.others {
            text.push_str(line);
            text.push('\n');
        }
        for w in &self.winners {
            text.push_str(&format!(
                "winner\t{key}\t{}\t{}\t{}\t{}\n",
                w.op.name(),
                w.class,
                field(&w.choice),
                w.micros
            ));
        }
        for (kernel, why) in &self.failed {
            text.push_str(&format!("failed\t{key}\t{kernel}\t{why}\n"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Conv2dParams;

    fn adapter(name: &str) -> AdapterKey {
        AdapterKey::new(name, "Vulkan", "d", "1.0")
    }

    #[test]
    fn winners_and_failures_survive_a_reload_per_adapter_and_other_lines_are_kept() {
        let dir = std::env::temp_dir().join(format!("wgconv-tuning-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shape = Conv2dShape::new(
            &[1, 8, 9, 9],
            &[16, 8, 3, 3],
            None,
            &Conv2dParams::default(),
        )
        .expect("a valid shape");
        let class = ShapeClass::of(&shape);
        let mut a = TuningCache::load(&dir, adapter("A"));
        a.record_winner(Winner {
            op: Op::Forward,
            class: class.clone(),
            choice: "register-tiled-16x8".into(),
            micros: 12,
        })
        .expect("saved");
        let mut b = TuningCache::load(&dir, adapter("B"));
        assert!(
            b.winner(Op::Forward, &class).is_none(),
            "another adapter's winner"
        );
        b.record_failure("conv2d_igemm_regtile_32x8", "ran past 30 s")
            .expect("saved");
        let a = TuningCache::load(&dir, adapter("A"));
        assert_eq!(
            a.winner(Op::Forward, &class).map(|w| w.choice.as_str()),
            Some("register-tiled-16x8")
        );
        assert!(!a.has_failed("conv2d_igemm_regtile_32x8"));
        assert!(TuningCache::load(&dir, adapter("B")).has_failed("conv2d_igemm_regtile_32x8"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_class_names_what_changes_the_winner() {
        let p = Conv2dParams::default();
        let class = |x: &[usize], w: &[usize]| {
            ShapeClass::of(&Conv2dShape::new(x, w, None, &p).expect("a valid shape"))
        };
        assert_eq!(
            class(&[1, 64, 56, 56], &[64, 64, 3, 3]).as_str(),
            "k3x3_s1x1_d1x1_nopad_g1_cg64_og64_px4096_n1"
        );
        // 60 and 64 channels share a class; 3 and 4 do not (unrolled channels differ).
        assert_eq!(
            class(&[1, 60, 56, 56], &[64, 60, 3, 3]),
            class(&[1, 64, 56, 56], &[64, 64, 3, 3])
        );
        assert_ne!(
            class(&[1, 3, 56, 56], &[64, 3, 3, 3]),
            class(&[1, 4, 56, 56], &[64, 4, 3, 3])
        );
    }
}
