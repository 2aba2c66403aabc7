//! Execution models shared by every configuration of one replica layout (model, device, node, TP,
//! PP): a search builds each once, however many scheduler variants use it (building a profiled
//! backend fits models, which costs far more than a simulation).

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
    /// search shares its `[predictor]` section, so the layout identifies the model.
    pub fn get(&self, cfg: &SimConfig, r: &Resolved) -> Result<Arc<dyn ExecutionModel>, String> {
        let key = format!(
            "{}|{}|{}|{}|{}",
            r.model.name, r.device.name, r.node.name, r.parallelism.tp, r.parallelism.pp
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
    use predictor::Catalog;

    #[test]
    fn one_model_per_layout() {
        let cache = ExecCache::new();
        let mut a = SimConfig::default();
        a.scheduler.name = "vllm".into();
        let b = SimConfig::default();
        let mut c = SimConfig::default();
        c.replica.tp = 2;
        let cat = Catalog::builtin();
        let ea = cache.get(&a, &a.resolve(&cat).unwrap()).unwrap();
        let eb = cache.get(&b, &b.resolve(&cat).unwrap()).unwrap();
        assert!(Arc::ptr_eq(&ea, &eb), "two schedulers share one layout");
        let ec = cache.get(&c, &c.resolve(&cat).unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&ea, &ec));
        assert_eq!(cache.len(), 2);
    }
}
