//! `wgconv tune`: the verified autotuner ([`Engine::tune_forward`], [`Engine::tune_grad_weight`])
//! over a suite's layers.

use super::suite_run::Passes;
use super::suites::Layer;
use crate::error::Result;
use crate::gpu::engine::Engine;
use crate::gpu::tuner::TuneReport;

/// Tunes `layer` at batch `batch` on `engine`: the forward convolution for `passes.forward()`;
/// for `passes.backward()`, the weight gradient and the forward problem the input gradient runs
/// as (when it runs as one). The winners go into the engine's tuning cache.
///
/// # Errors
/// The layer's shape errors and the tuner's errors.
pub fn tune_layer(
    engine: &Engine,
    layer: &Layer,
    batch: usize,
    passes: Passes,
) -> Result<Vec<TuneReport>> {
    let shape = layer.shape(batch)?;
    let mut reports = Vec::new();
    if passes.forward() {
        reports.push(engine.tune_forward(&shape, &[])?);
    }
    if passes.backward() {
        reports.push(engine.tune_grad_weight(&shape)?);
        if let Some(forward) = engine.input_gradient_forward(&shape) {
            reports.push(engine.tune_forward(&forward, &[])?);
        }
    }
    Ok(reports)
}
