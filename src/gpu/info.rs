//! What an engine can tell about itself: its adapter, the limits plans are made against, its
//! profile, and its tuning cache (what `wgconv info` prints).

use crate::gpu::engine::Engine;
use crate::gpu::plan::Algorithm;

impl Engine {
    /// A few lines on this engine: the adapter (first, alone on its line), limits, subgroups, the profile the planner starts
    /// from, the algorithms `--algorithm` takes, and the tuning cache (where, how many winners,
    /// which kernels did not build).
    pub fn describe(&self) -> String {
        let l = self.limits();
        let mut lines = vec![
            self.adapter().to_string(),
            format!(
                "  limits: max_storage_buffer_binding_size {} B, max_buffer_size {} B, max workgroups per dimension {}",
                l.max_binding, l.max_buffer, l.max_workgroups_per_dim
            ),
            match l.subgroup_size {
                Some(size) => format!("  subgroups: {size} invocations"),
                None => "  subgroups: not available".into(),
            },
            format!("  profile: {}", self.profile()),
        ];
        let names: Vec<String> = Algorithm::NAMED.iter().map(|a| a.name()).collect();
        lines.push(format!(
            "  algorithms (--algorithm): {}, register-tiled-TMxTN",
            names.join(", ")
        ));
        let cache = self.tuning_cache();
        match cache.path() {
            None => lines.push("  tuning: off (WGCONV_TUNING=off, or no cache folder)".into()),
            Some(path) => {
                lines.push(format!(
                    "  tuning cache: {} ({} winners, {} kernels that did not build, for this adapter and wgconv {})",
                    path.display(),
                    cache.winners().len(),
                    cache.failures().len(),
                    env!("CARGO_PKG_VERSION")
                ));
                for w in cache.winners() {
                    lines.push(format!(
                        "    {} {}: {} ({} us)",
                        w.op.name(),
                        w.class,
                        w.choice,
                        w.micros
                    ));
                }
                for (kernel, why) in cache.failures() {
                    lines.push(format!("    did not build: {kernel} ({why})"));
                }
            }
        }
        lines.join("\n")
    }
}
