//! One fitting case: a model on a device (its `mlp.csv` and optional `attention.csv`) and a node
//! (its `all_reduce.csv` and `send_recv.csv`), split into one dataset per operator × TP degree
//! (× worker count or devices per node for the network), each fitted by [`select`].
//!
//! The fitted case is saved as JSON with its metadata (crate version, input file hashes, search
//! settings, every candidate's score) and cached under a key that hashes all of those, so a changed
//! CSV is never served a stale model.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::select::{one_d_candidates, select, two_d_candidates, SearchConfig};
use super::{FitError, Model, Samples};
use crate::catalog::{ModelSpec, NodeSpec};
use crate::ops::Op;
use crate::parallel::Parallelism;
use crate::profile::mlp::ModelDims;
use crate::profile::sha256_hex;
use crate::profile::{
    AttentionProfile, Collective, MlpProfile, NetworkProfile, ProfileError, ProfileLayout,
};

/// The XGBoost binding (pinned `=3.4.0` in the workspace) and library (PyPI `xgboost-cpu` 3.4.1,
/// see `scripts/setup.sh`) recorded in model metadata.
pub const XGBOOST_VERSION: &str = "xgb 3.4.0 / XGBoost 3.4.1";

/// Errors of loading or fitting a case.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A profile file is missing or bad.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A fit failed.
    #[error("fitting {what}: {source}")]
    Fit {
        /// Which dataset.
        what: String,
        /// Why.
        source: FitError,
    },
    /// The request does not make sense (TP that does not divide the heads, no profile, ...).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a model file.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// Which operator a dataset is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpKey {
    /// The operator.
    pub op: Op,
    /// TP degree (compute) or number of workers (all-reduce, send/recv).
    pub tp: u32,
    /// Devices per node (send/recv only: 1 across nodes, 2 within a node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_per_node: Option<u32>,
}

impl OpKey {
    /// True for network operators.
    pub fn is_network(&self) -> bool {
        matches!(self.op, Op::AllReduce | Op::SendRecv)
    }
}

impl std::fmt::Display for OpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.devices_per_node {
            Some(d) => write!(f, "{} workers {} devices/node {d}", self.op, self.tp),
            None if self.is_network() => write!(f, "{} workers {}", self.op, self.tp),
            None => write!(f, "{} TP {}", self.op, self.tp),
        }
    }
}

/// One operator's training rows. Features: tokens (1-D compute ops, `attn_kv_cache_save`), message
/// bytes (network), `[kv_cache_size, prefill_chunk_size]` (prefill), `[batch_size, kv_cache_size]`
/// (decode).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The operator.
    pub key: OpKey,
    /// The rows.
    pub samples: Samples,
}

/// The profiles of one case, read and checked.
#[derive(Debug, Clone)]
pub struct CaseInputs {
    /// The model.
    pub model: ModelSpec,
    /// Device catalog name.
    pub device: String,
    /// The node, when network profiles are wanted.
    pub node: Option<NodeSpec>,
    /// TP degrees to fit.
    pub tps: Vec<u32>,
    /// `mlp.csv`.
    pub mlp: Option<MlpProfile>,
    /// `attention.csv`, when present.
    pub attention: Option<AttentionProfile>,
    /// `all_reduce.csv` of the node, when present.
    pub all_reduce: Option<NetworkProfile>,
    /// `send_recv.csv` of the node, when present.
    pub send_recv: Option<NetworkProfile>,
}

/// An input file and its hash, recorded in the model metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// `mlp`, `attention`, `all_reduce` or `send_recv`.
    pub role: String,
    /// The path as given.
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

impl CaseInputs {
    /// Reads the profiles of `model` on `device` (and `node`) from the first of `dirs` that has
    /// them. `tps`: the TP degrees to fit (each validated against the model), or `None` for every
    /// valid TP in `mlp.csv`.
    pub fn load(
        dirs: &[PathBuf],
        model: &ModelSpec,
        device: &str,
        node: Option<&NodeSpec>,
        tps: Option<&[u32]>,
    ) -> Result<Self, CaseError> {
        for &tp in tps.unwrap_or(&[]) {
            Parallelism::new(tp, 1)
                .validate(model, node)
                .map_err(|e| CaseError::Invalid(e.to_string()))?;
        }
        let layout = ProfileLayout::find_compute(dirs, device, &model.name);
        let mlp = match &layout {
            Some(l) => Some(MlpProfile::read(
                &l.mlp(device, &model.name).expect("found above"),
            )?),
            None => None,
        };
        let attention = match layout
            .as_ref()
            .and_then(|l| l.attention(device, &model.name))
        {
            Some(p) => Some(AttentionProfile::read(&p)?),
            None => None,
        };
        let (all_reduce, send_recv) = match node {
            Some(n) => (
                ProfileLayout::find_network(dirs, &n.network_profile_dir, Collective::AllReduce)
                    .map(|p| NetworkProfile::read(&p, Collective::AllReduce))
                    .transpose()?,
                ProfileLayout::find_network(dirs, &n.network_profile_dir, Collective::SendRecv)
                    .map(|p| NetworkProfile::read(&p, Collective::SendRecv))
                    .transpose()?,
            ),
            None => (None, None),
        };
        if mlp.is_none() && all_reduce.is_none() && send_recv.is_none() {
            return Err(CaseError::Invalid(format!(
                "no profile of {} on {device} (looked for compute/{device}/{}/mlp.csv) and no network profile in {}",
                model.name,
                model.name,
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let tps = match tps {
            Some(t) => t.to_vec(),
            None => match &mlp {
                Some(m) => m
                    .tps(ModelDims::of(model))
                    .into_iter()
                    .filter(|tp| Parallelism::new(*tp, 1).validate(model, node).is_ok())
                    .collect(),
                None => vec![1, 2, 4, 8]
                    .into_iter()
                    .filter(|tp| Parallelism::new(*tp, 1).validate(model, node).is_ok())
                    .collect(),
            },
        };
        Ok(CaseInputs {
            model: model.clone(),
            device: device.to_string(),
            node: node.cloned(),
            tps,
            mlp,
            attention,
            all_reduce,
            send_recv,
        })
    }

    /// The input files and their hashes.
    pub fn files(&self) -> Vec<InputFile> {
        let mut v = Vec::new();
        let mut push = |role: &str, path: &Path, sha: &str| {
            v.push(InputFile {
                role: role.into(),
                path: path.display().to_string(),
                sha256: sha.into(),
            })
        };
        if let Some(m) = &self.mlp {
            push("mlp", &m.path, &m.sha256);
        }
        if let Some(a) = &self.attention {
            push("attention", &a.path, &a.sha256);
        }
        if let Some(n) = &self.all_reduce {
            push("all_reduce", &n.path, &n.sha256);
        }
        if let Some(n) = &self.send_recv {
            push("send_recv", &n.path, &n.sha256);
        }
        v
    }

    /// One dataset per operator × TP (and per network group), in a fixed order.
    pub fn datasets(&self) -> Result<Vec<Dataset>, CaseError> {
        let mut out = Vec::new();
        let dims = ModelDims::of(&self.model);
        if let Some(mlp) = &self.mlp {
            for &tp in &self.tps {
                for op in Op::TOKEN_OPS {
                    if op == Op::PostAttentionLayernorm && !self.model.post_attn_norm {
                        continue;
                    }
                    let rows = mlp.samples(dims, tp, op)?;
                    let pts: Vec<(f64, f64)> = rows.iter().map(|(n, t)| (*n as f64, *t)).collect();
                    out.push(Dataset {
                        key: OpKey {
                            op,
                            tp,
                            devices_per_node: None,
                        },
                        samples: Samples::one_d(&pts),
                    });
                }
            }
        }
        if let Some(att) = &self.attention {
            let m = &self.model;
            for &tp in &self.tps {
                let Ok(rows) = att.select(
                    m.hidden_size,
                    m.num_attention_heads,
                    m.num_key_value_heads,
                    tp,
                ) else {
                    continue;
                };
                let mut pre = Samples {
                    dims: 2,
                    ..Default::default()
                };
                let mut dec = pre.clone();
                let mut save = Vec::new();
                for r in rows {
                    if r.is_decode() {
                        if let Some(t) = r.decode_ms.filter(|t| *t > 0.0) {
                            dec.x
                                .extend_from_slice(&[r.batch_size as f64, r.kv_cache_size as f64]);
                            dec.y.push(t);
                        }
                    } else if let Some(t) = r.prefill_ms.filter(|t| *t > 0.0) {
                        pre.x.extend_from_slice(&[
                            r.kv_cache_size as f64,
                            r.prefill_chunk_size as f64,
                        ]);
                        pre.y.push(t);
                    }
                    if att.has_kv_cache_save && r.kv_cache_save_ms > 0.0 {
                        save.push((
                            r.prefill_chunk_size.max(r.batch_size) as f64,
                            r.kv_cache_save_ms,
                        ));
                    }
                }
                for (op, s) in [
                    (Op::AttnPrefill, pre),
                    (Op::AttnDecode, dec),
                    (Op::AttnKvCacheSave, Samples::one_d(&save)),
                ] {
                    if s.len() >= 10 {
                        out.push(Dataset {
                            key: OpKey {
                                op,
                                tp,
                                devices_per_node: None,
                            },
                            samples: s,
                        });
                    }
                }
            }
        }
        if let Some(ar) = &self.all_reduce {
            for &tp in self.tps.iter().filter(|t| **t > 1) {
                if let Ok(rows) = ar.samples(tp) {
                    out.push(network_dataset(Op::AllReduce, tp, None, &rows));
                }
            }
        }
        if let Some(sr) = &self.send_recv {
            for dpn in [1, 2] {
                if let Ok(rows) = sr.samples(dpn) {
                    out.push(network_dataset(Op::SendRecv, 2, Some(dpn), &rows));
                }
            }
        }
        Ok(out)
    }
}

fn network_dataset(op: Op, tp: u32, dpn: Option<u32>, rows: &[(u64, f64)]) -> Dataset {
    let pts: Vec<(f64, f64)> = rows.iter().map(|(b, t)| (*b as f64, *t)).collect();
    Dataset {
        key: OpKey {
            op,
            tp,
            devices_per_node: dpn,
        },
        samples: Samples::one_d(&pts),
    }
}

/// One fitted operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedOp {
    /// Which operator.
    pub key: OpKey,
    /// Training rows.
    pub rows: usize,
    /// The chosen candidate.
    pub chosen: String,
    /// Every candidate's inner-CV score (lower is better).
    pub scores: Vec<(String, f64)>,
    /// The chosen model refitted on all rows.
    pub model: Model,
}

/// Where a fitted case came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitMetadata {
    /// `predictor` crate version.
    pub crate_version: String,
    /// The XGBoost binding and library the boosted models were trained with.
    pub xgboost_version: String,
    /// Model name.
    pub model: String,
    /// Device name.
    pub device: String,
    /// Node name, when network profiles were used.
    pub node: Option<String>,
    /// TP degrees fitted.
    pub tps: Vec<u32>,
    /// Input files and hashes.
    pub inputs: Vec<InputFile>,
    /// Search settings.
    pub search: SearchConfig,
    /// Candidate ids for 1-D operators.
    pub candidates_1d: Vec<String>,
    /// Candidate ids for 2-D attention.
    pub candidates_2d: Vec<String>,
}

/// Every fitted operator of a case, with metadata; saved as one JSON file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedCase {
    /// Provenance.
    pub metadata: FitMetadata,
    /// The models, in dataset order.
    pub ops: Vec<FittedOp>,
}

impl FittedCase {
    /// The fitted operator `key`, if any.
    pub fn get(&self, key: OpKey) -> Option<&FittedOp> {
        self.ops.iter().find(|o| o.key == key)
    }

    /// The cache key: a hash of the metadata (inputs' hashes, versions, settings).
    pub fn cache_key(meta: &FitMetadata) -> String {
        let mut m = meta.clone();
        for f in &mut m.inputs {
            f.path.clear(); // the same bytes elsewhere are the same data
        }
        let json = serde_json::to_string(&m).expect("metadata serialises");
        sha256_hex(json.as_bytes())[..24].to_string()
    }

    /// Writes the case as pretty JSON to `path`.
    pub fn save(&self, path: &Path) -> Result<(), CaseError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| CaseError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| CaseError::File {
                path: path.to_path_buf(),
                why: e.to_string(),
            })
    }

    /// Reads a case saved by [`FittedCase::save`].
    pub fn load(path: &Path) -> Result<Self, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaseError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let case: FittedCase = serde_json::from_str(&text).map_err(|e| CaseError::File {
            path: path.to_path_buf(),
            why: format!("not a fitted-model file of this version: {e}"),
        })?;
        for o in &case.ops {
            o.model.validate().map_err(|why| CaseError::File {
                path: path.to_path_buf(),
                why: format!("model of {}: {why}; delete the file to refit", o.key),
            })?;
        }
        Ok(case)
    }
}

/// The metadata `inputs` would be fitted with under `cfg`.
pub fn metadata(inputs: &CaseInputs, cfg: &SearchConfig) -> FitMetadata {
    FitMetadata {
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        xgboost_version: XGBOOST_VERSION.to_string(),
        model: inputs.model.name.clone(),
        device: inputs.device.clone(),
        node: inputs.node.as_ref().map(|n| n.name.clone()),
        tps: inputs.tps.clone(),
        inputs: inputs.files(),
        search: cfg.clone(),
        candidates_1d: one_d_candidates(cfg).iter().map(|c| c.id()).collect(),
        candidates_2d: two_d_candidates(cfg).iter().map(|c| c.id()).collect(),
    }
}

/// Fits every dataset of `inputs` (in parallel over datasets; deterministic).
pub fn fit_case(inputs: &CaseInputs, cfg: &SearchConfig) -> Result<FittedCase, CaseError> {
    let datasets = inputs.datasets()?;
    let ops: Result<Vec<FittedOp>, CaseError> = datasets
        .par_iter()
        .with_max_len(1)
        .map(|d| fit_dataset(d, cfg))
        .collect();
    Ok(FittedCase {
        metadata: metadata(inputs, cfg),
        ops: ops?,
    })
}

/// Fits one dataset.
pub fn fit_dataset(d: &Dataset, cfg: &SearchConfig) -> Result<FittedOp, CaseError> {
    let cands = if d.samples.dims == 1 {
        one_d_candidates(cfg)
    } else {
        two_d_candidates(cfg)
    };
    let c = select(&cands, &d.samples, cfg).map_err(|e| CaseError::Fit {
        what: d.key.to_string(),
        source: e,
    })?;
    Ok(FittedOp {
        key: d.key,
        rows: d.samples.len(),
        chosen: c.chosen,
        scores: c.scores,
        model: c.model,
    })
}

/// [`fit_case`] through a cache: fits made earlier in this process are reused, then a file
/// `fit-<key>.json` in `cache_dir` whose key hashes the inputs' contents and the settings;
/// otherwise the case is fitted (and written there).
pub fn fit_case_cached(
    inputs: &CaseInputs,
    cfg: &SearchConfig,
    cache_dir: Option<&Path>,
) -> Result<FittedCase, CaseError> {
    let meta = metadata(inputs, cfg);
    let key = FittedCase::cache_key(&meta);
    if let Some(c) = memo().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let fitted = match cache_dir {
        None => fit_case(inputs, cfg)?,
        Some(dir) => {
            let path = dir.join(format!("fit-{key}.json"));
            match FittedCase::load(&path) {
                Ok(c) if FittedCase::cache_key(&c.metadata) == key => c,
                _ => {
                    let fitted = fit_case(inputs, cfg)?;
                    std::fs::create_dir_all(dir).map_err(|e| CaseError::File {
                        path: dir.to_path_buf(),
                        why: e.to_string(),
                    })?;
                    fitted.save(&path)?;
                    fitted
                }
            }
        }
    };
    if let Ok(mut m) = memo().lock() {
        m.insert(key, fitted.clone());
    }
    Ok(fitted)
}

/// Fits already made in this process, by cache key (a search builds many execution models of the
/// same profiles).
type Memo = std::sync::Mutex<std::collections::BTreeMap<String, FittedCase>>;

fn memo() -> &'static Memo {
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::fit::synthetic::synthetic_profiles;
    use crate::ops::Op;

    fn inputs(dir: &Path, tps: Option<&[u32]>) -> Result<CaseInputs, CaseError> {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        let node = cat.node("a100_dgx").unwrap();
        CaseInputs::load(&[dir.to_path_buf()], &m, "a100", Some(&node), tps)
    }

    #[test]
    fn fitting_twice_gives_identical_bytes() {
        let dir = synthetic_profiles(true);
        let inp = inputs(dir.path(), None).unwrap();
        assert_eq!(inp.tps, vec![1, 2]);
        let cfg = SearchConfig::default();
        let a = serde_json::to_string(&fit_case(&inp, &cfg).unwrap()).unwrap();
        let b = serde_json::to_string(&fit_case(&inp, &cfg).unwrap()).unwrap();
        assert!(a == b, "two fits of the same data differ");
        let fitted: FittedCase = serde_json::from_str(&a).unwrap();
        // 9 token ops × 2 TPs, prefill/decode/kv-save × 2, all_reduce 2, send_recv × 2
        assert_eq!(fitted.ops.len(), 18 + 6 + 1 + 2);
        let pre = fitted
            .get(OpKey {
                op: Op::AttnPrefill,
                tp: 2,
                devices_per_node: None,
            })
            .unwrap();
        assert!(pre.chosen.starts_with("xgb"), "{}", pre.chosen);
        let p = pre.model.predict(&[512.0, 512.0], 2).unwrap()[0];
        let truth = 0.02 + 1e-7 * (512.0 * 1024.0) / 2.0;
        assert!((p / truth - 1.0).abs() < 0.1, "{p} vs {truth}");
    }

    #[test]
    fn tp_that_does_not_divide_the_heads_is_refused() {
        let dir = synthetic_profiles(false);
        let e = inputs(dir.path(), Some(&[3])).unwrap_err().to_string();
        assert!(
            e.contains("tensor-parallel degree 3") && e.contains("32"),
            "{e}"
        );
    }

    #[test]
    fn the_cache_never_serves_a_stale_fit() {
        let dir = synthetic_profiles(false);
        let cache = tempfile::tempdir().unwrap();
        let cfg = SearchConfig {
            boost_1d: false,
            ..SearchConfig::default()
        };
        let inp = inputs(dir.path(), Some(&[1])).unwrap();
        let a = fit_case_cached(&inp, &cfg, Some(cache.path())).unwrap();
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
        let again = fit_case_cached(&inp, &cfg, Some(cache.path())).unwrap();
        assert!(
            serde_json::to_string(&a).unwrap() == serde_json::to_string(&again).unwrap(),
            "the cached fit differs from the fresh one"
        );
        // Change one time in mlp.csv: a new cache entry, and a different model.
        let p = dir
            .path()
            .join("compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv");
        let text = std::fs::read_to_string(&p).unwrap();
        let line2 = text.lines().nth(1).unwrap().to_string();
        let first = line2.split(',').next().unwrap().to_string();
        let changed = line2.replacen(&first, "9.0", 1);
        std::fs::write(&p, text.replacen(&line2, &changed, 1)).unwrap();
        let inp2 = inputs(dir.path(), Some(&[1])).unwrap();
        let b = fit_case_cached(&inp2, &cfg, Some(cache.path())).unwrap();
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);
        assert_ne!(a.metadata.inputs[0].sha256, b.metadata.inputs[0].sha256);
    }

    #[test]
    fn a_damaged_model_file_is_an_error_not_a_panic() {
        let dir = synthetic_profiles(false);
        let cfg = SearchConfig {
            boost_1d: false,
            ..SearchConfig::default()
        };
        let mut fitted = fit_case(&inputs(dir.path(), Some(&[1])).unwrap(), &cfg).unwrap();
        let Model::Curve(c) = &mut fitted.ops[0].model else {
            panic!("curves win on this data")
        };
        c.log_x.clear();
        let p = dir.path().join("models.json");
        fitted.save(&p).unwrap();
        let e = FittedCase::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("models.json") && e.contains("attn_pre_proj TP 1"),
            "{e}"
        );
    }

    #[test]
    fn missing_profiles_are_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = inputs(dir.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("no profile of meta-llama/Llama-2-7b-hf on a100"),
            "{e}"
        );
    }
}
