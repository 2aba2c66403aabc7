//! Execution models shared by every configuration of one replica layout (model, device, node, TP,
//! PP, EP, precision and the engine model's settings): a search builds each once, however many
//! scheduler variants use it (building a profiled backend fits models, which costs far more than a
//! simulation).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use predictor::ExecutionModel;

use crate::config::{Resolved, SimConfig};
use crate::run::execution_model;

type Slot = Arc<OnceLock<Result<Arc<dyn ExecutionModel>, String>>>;

/// The cache; safe to share between threads (each layout is built by one of them).
#[derive(Default)]
pub struct ExecCache {
    slots: Mutex<BTreeMap<String, Slot>>,
}

impl ExecCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The execution model of `cfg`'s layout, built on first use. Every configuration of one
    /// search shares its `[predictor]` section, so the layout (with its EP degree, precision and
    /// the engine settings the scheduler implies) identifies the model.
    pub fn get(&self, cfg: &SimConfig, r: &Resolved) -> Result<Arc<dyn ExecutionModel>, String> {
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{:?}|{:?}",
            r.model.name,
            r.device.name,
            r.node.name,
            r.parallelism.tp,
            r.parallelism.pp,
            r.parallelism.ep,
            r.exec.precision,
            r.exec.engine
        );
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key).or_default().clone()
        };
        slot.get_or_init(|| execution_model(cfg, r).map_err(|e| e.to_string()))
            .clone()
    }

    /// Number of layouts built.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing was built.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::precision::{KvCacheDType, Quantization};
    use predictor::Catalog;

    #[test]
    fn one_model_per_layout() {
        let cache = ExecCache::new();
        let mut a = SimConfig::default();
        a.scheduler.name = "sarathi".into();
        let mut b = a.clone();
        a.scheduler.watermark_blocks_fraction = 0.05;
        b.scheduler.chunk_size = 1024;
        let mut c = b.clone();
        c.replica.tp = 2;
        let cat = Catalog::builtin();
        let ea = cache.get(&a, &a.resolve(&cat).unwrap()).unwrap();
        let eb = cache.get(&b, &b.resolve(&cat).unwrap()).unwrap();
        assert!(
            Arc::ptr_eq(&ea, &eb),
            "two scheduler variants share one layout"
        );
        let ec = cache.get(&c, &c.resolve(&cat).unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&ea, &ec));
        assert_eq!(cache.len(), 2);
        // EP and precision are part of the layout: Mixtral TP2 with EP 1 or 2, bf16 or FP8
        // weights, bf16 or FP8 KV cache are eight different models.
        let mut seen = Vec::new();
        for ep in [1, 2] {
            for q in [Quantization::Auto, Quantization::Fp8] {
                for kv in [KvCacheDType::Auto, KvCacheDType::Fp8] {
                    let mut m = SimConfig::default();
                    m.replica.model = "mistralai/Mixtral-8x7B-v0.1".into();
                    m.replica.tp = 2;
                    m.replica.ep = ep;
                    m.replica.quantization = q;
                    m.replica.kv_cache_dtype = kv;
                    let e = cache.get(&m, &m.resolve(&cat).unwrap()).unwrap();
                    assert!(seen.iter().all(|s| !Arc::ptr_eq(s, &e)));
                    seen.push(e);
                }
            }
        }
        assert_eq!(cache.len(), 2 + 8);
    }
}
