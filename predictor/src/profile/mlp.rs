//! `mlp.csv`: the per-token operators of one model on one device (docs/design.md §3.2).
//!
//! 58 columns (53 for models without `post_attention_layernorm`, such as phi-2): five statistics
//! per operator, then `n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size, use_gated_mlp,
//! num_tokens, num_tensor_parallel_workers`. We read the medians of the nine operators the
//! execution model uses and the key columns; other columns are ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CsvFile, ProfileError};
use crate::catalog::ModelSpec;
use crate::ops::Op;

/// The model dimensions a compute-profile row was measured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelDims {
    /// Query heads (`n_head`).
    pub q_heads: u32,
    /// KV heads (`n_kv_head`).
    pub kv_heads: u32,
    /// Hidden size (`n_embd`).
    pub hidden: u32,
    /// MLP width (`n_expanded_embd`).
    pub mlp_hidden: u32,
    /// Gated MLP (`use_gated_mlp`).
    pub gated: bool,
}

impl ModelDims {
    /// The dimensions of `model`.
    pub fn of(model: &ModelSpec) -> Self {
        ModelDims {
            q_heads: model.num_attention_heads,
            kv_heads: model.num_key_value_heads,
            hidden: model.hidden_size,
            mlp_hidden: model.intermediate_size,
            gated: model.gated_mlp,
        }
    }
}

impl std::fmt::Display for ModelDims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n_head={} n_kv_head={} n_embd={} n_expanded_embd={} use_gated_mlp={}",
            self.q_heads, self.kv_heads, self.hidden, self.mlp_hidden, self.gated
        )
    }
}

/// One row of `mlp.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpRow {
    /// 1-based line in the file.
    pub line: u64,
    /// Model dimensions.
    pub dims: ModelDims,
    /// `vocab_size` as written (not used for selection).
    pub vocab_size: u64,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Tokens in the batch.
    pub num_tokens: u64,
    /// Median time per operator of [`Op::TOKEN_OPS`], ms; `None` where the file has no value.
    pub median_ms: [Option<f64>; 9],
}

/// A parsed `mlp.csv`.
#[derive(Debug, Clone)]
pub struct MlpProfile {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    /// All rows, in file order.
    pub rows: Vec<MlpRow>,
}

const KEYS: [&str; 8] = [
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "num_tokens",
    "num_tensor_parallel_workers",
];

/// Operators whose column may be absent (Vidur fills them with 0; we leave them out).
const OPTIONAL_OPS: [Op; 1] = [Op::PostAttentionLayernorm];

impl MlpProfile {
    /// Reads `path` (`mlp.csv` or `mlp.csv.gz`).
    pub fn read(path: &Path) -> Result<Self, ProfileError> {
        Self::from_csv(&CsvFile::open(path)?)
    }

    /// Parses an already-read CSV.
    pub fn from_csv(csv: &CsvFile) -> Result<Self, ProfileError> {
        let key = csv.columns(KEYS)?;
        let mut op_cols = [None; 9];
        for (slot, op) in op_cols.iter_mut().zip(Op::TOKEN_OPS) {
            let name = format!("time_stats.{}.median", op.name());
            *slot = if OPTIONAL_OPS.contains(&op) {
                csv.find(&name)
            } else {
                Some(csv.column(&name)?)
            };
        }
        let mut rows = Vec::with_capacity(csv.len());
        for r in csv.rows() {
            let mut median_ms = [None; 9];
            for (m, col) in median_ms.iter_mut().zip(op_cols) {
                if let Some(c) = col {
                    *m = r.opt_f64(c)?;
                }
            }
            let tp = r.u32(key[7])?;
            if tp == 0 {
                return Err(ProfileError::bad(
                    &csv.path,
                    r.line,
                    Some(KEYS[7]),
                    "tensor-parallel degree 0",
                ));
            }
            rows.push(MlpRow {
                line: r.line,
                dims: ModelDims {
                    q_heads: r.u32(key[0])?,
                    kv_heads: r.u32(key[1])?,
                    hidden: r.u32(key[2])?,
                    mlp_hidden: r.u32(key[3])?,
                    gated: r.bool(key[5])?,
                },
                vocab_size: r.u64(key[4])?,
                num_tokens: r.u64(key[6])?,
                tp,
                median_ms,
            });
        }
        Ok(MlpProfile {
            path: csv.path.clone(),
            sha256: csv.sha256.clone(),
            rows,
        })
    }

    /// The TP degrees profiled for `dims`, ascending.
    pub fn tps(&self, dims: ModelDims) -> Vec<u32> {
        let s: BTreeSet<u32> = self
            .rows
            .iter()
            .filter(|r| r.dims == dims)
            .map(|r| r.tp)
            .collect();
        s.into_iter().collect()
    }

    /// `(num_tokens, median ms)` of `op` for `dims` at `tp`, in file order (rows without a value
    /// for `op` are skipped). An error when nothing matches, naming what the file has.
    pub fn samples(
        &self,
        dims: ModelDims,
        tp: u32,
        op: Op,
    ) -> Result<Vec<(u64, f64)>, ProfileError> {
        let i =
            Op::TOKEN_OPS
                .iter()
                .position(|o| *o == op)
                .ok_or_else(|| ProfileError::NoRows {
                    path: self.path.clone(),
                    why: format!("{op} is not an operator of mlp.csv"),
                })?;
        let out: Vec<(u64, f64)> = self
            .rows
            .iter()
            .filter(|r| r.dims == dims && r.tp == tp)
            .filter_map(|r| r.median_ms[i].map(|m| (r.num_tokens, m)))
            .collect();
        if out.is_empty() {
            let have: BTreeSet<String> = self
                .rows
                .iter()
                .map(|r| format!("[{} TP {}]", r.dims, r.tp))
                .collect();
            return Err(ProfileError::NoRows {
                path: self.path.clone(),
                why: format!(
                    "no rows with a {op} time for {dims} at TP {tp}; the file has {}",
                    have.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// A profile of Vidur's committed under `data/vidur/profiling/` (gzipped).
    fn reference(rel: &str) -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/vidur/profiling")
            .join(rel);
        assert!(p.is_file(), "{} is missing", p.display());
        p
    }

    #[test]
    fn reads_the_reference_llama2_7b_file() {
        let p = reference("compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv.gz");
        let prof = MlpProfile::read(&p).unwrap();
        assert_eq!(prof.rows.len(), 1044);
        let m = Catalog::builtin()
            .model("meta-llama/Llama-2-7b-hf")
            .unwrap();
        let dims = ModelDims::of(&m);
        assert_eq!(prof.tps(dims), vec![1, 2, 4, 8]);
        // vocab 32768 in the file, 32000 in the model: still selected
        assert_eq!(prof.rows[0].vocab_size, 32768);
        let s = prof.samples(dims, 1, Op::MlpUpProj).unwrap();
        assert_eq!(s.len(), 261);
        assert_eq!(s[0], (4096, 3.3655));
    }

    #[test]
    fn reads_phi2_without_post_attention_layernorm() {
        let p = reference("compute/a100/microsoft/phi-2/mlp.csv.gz");
        let prof = MlpProfile::read(&p).unwrap();
        assert_eq!(prof.rows.len(), 261);
        let m = Catalog::builtin().model("microsoft/phi-2").unwrap();
        let dims = ModelDims::of(&m);
        assert!(prof.rows.iter().all(|r| r.median_ms[7].is_none()));
        assert!(prof.samples(dims, 1, Op::PostAttentionLayernorm).is_err());
        assert_eq!(prof.samples(dims, 1, Op::Add).unwrap().len(), 261);
    }

    #[test]
    fn unmatched_dims_name_what_the_file_has() {
        let p = reference("compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv.gz");
        let prof = MlpProfile::read(&p).unwrap();
        let m = Catalog::builtin()
            .model("meta-llama/Llama-2-70b-hf")
            .unwrap();
        let e = prof
            .samples(ModelDims::of(&m), 1, Op::Add)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_embd=4096") && e.contains("mlp.csv"), "{e}");
    }
}
