//! Other backends against the same measurements (`simulator calibrate --baseline`): the plain
//! roofline (Vidur's stage formula, default efficiencies, no front end, synchronous scheduling,
//! the margin-based memory plan) and the profiled backend over published profiles.
//!
//! Published profiles (Vidur's) cover few of today's models; an experiment is simulated with the
//! profile of a model of the same shape (layers, hidden size, heads, KV heads, MLP width) on the
//! same GPU when one exists, under that model's name, and left out otherwise.

use std::path::{Path, PathBuf};

use predictor::{BackendChoice, Catalog, ModelSpec};

use super::experiment::{run_config, to_config, SimShape};
use super::fit::Prepared;
use super::report::Table;
use super::Baseline;
use crate::config::SimConfig;

/// The catalog model of the same shape as `model` with a profile on `device` under `profiles`.
pub fn profile_twin(model: &ModelSpec, device: &str, profiles: &Path) -> Option<String> {
    let same = |m: &ModelSpec| {
        (
            m.num_hidden_layers,
            m.hidden_size,
            m.num_attention_heads,
            m.num_key_value_heads,
            m.intermediate_size,
            m.moe.is_none(),
        )
    };
    let dirs = [PathBuf::from(profiles)];
    Catalog::builtin()
        .models()
        .filter(|m| same(m) == same(model))
        .find(|m| predictor::profile::ProfileLayout::find_compute(&dirs, device, &m.name).is_some())
        .map(|m| m.name.clone())
}

/// The configuration of `p` for the baseline `kind`, or why there is none.
fn config(
    p: &Prepared,
    kind: Baseline,
    profiles: &Path,
    shape: &SimShape,
) -> Result<SimConfig, String> {
    let mut cfg = to_config(&p.exp, &Default::default(), shape)?;
    cfg.predictor.coefficients = None;
    cfg.scheduler.vllm_v1.async_scheduling = Some(false);
    match kind {
        Baseline::Roofline => cfg.predictor.backend = BackendChoice::Roofline,
        Baseline::Profiled => {
            let model = Catalog::builtin()
                .model(&p.exp.model)
                .map_err(|e| e.to_string())?;
            let twin = profile_twin(&model, &p.exp.gpu, profiles).ok_or_else(|| {
                format!(
                    "no profile of a model shaped like {} on {}",
                    p.exp.model, p.exp.gpu
                )
            })?;
            cfg.replica.model = twin;
            cfg.predictor.backend = BackendChoice::Profiled;
            cfg.predictor.profiles = vec![profiles.to_path_buf()];
        }
    }
    Ok(cfg)
}

/// Simulates the experiments `kind` covers and tabulates them.
pub fn evaluate(exps: &[Prepared], kind: Baseline, profiles: &Path, shape: &SimShape) -> Table {
    let mut rows = Vec::new();
    for p in exps {
        let Ok(cfg) = config(p, kind, profiles, shape) else {
            continue;
        };
        let sim = run_config(&cfg, p.stages.len());
        rows.extend(p.rows(&sim));
    }
    Table { rows }
}
