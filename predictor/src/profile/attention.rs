//! `attention.csv`: attention prefill and decode of one model on one device (docs/design.md §3.3).
//!
//! Both vintages are read: the Llama-2-era file (31 columns, FlashAttention, NaN for statistics that
//! do not apply, no `attn_kv_cache_save` column, which then reads as 0 as in Vidur) and the newer
//! one (36 columns, FlashInfer, 0.0 for statistics that do not apply). Extra columns (such as
//! `profile_method`) are ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CsvFile, ProfileError};

/// One row of `attention.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    /// 1-based line in the file.
    pub line: u64,
    /// Hidden size (`n_embd`).
    pub hidden: u32,
    /// Query heads of the whole model (`n_q_head`).
    pub q_heads: u32,
    /// KV heads of the whole model (`n_kv_head`).
    pub kv_heads: u32,
    /// Paged-KV block size.
    pub block_size: u32,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Sequences in the batch (1 for prefill rows).
    pub batch_size: u64,
    /// New tokens of the prefill chunk (0 for decode rows).
    pub prefill_chunk_size: u64,
    /// Tokens already in the KV cache.
    pub kv_cache_size: u64,
    /// `time_stats.attn_prefill.median`, ms (prefill rows).
    pub prefill_ms: Option<f64>,
    /// `time_stats.attn_decode.median`, ms (decode rows).
    pub decode_ms: Option<f64>,
    /// `time_stats.attn_kv_cache_save.median`, ms (0 when the file has no such column).
    pub kv_cache_save_ms: f64,
}

impl AttentionRow {
    /// True for a decode row (`prefill_chunk_size == 0`).
    pub fn is_decode(&self) -> bool {
        self.prefill_chunk_size == 0
    }
}

/// A parsed `attention.csv`.
#[derive(Debug, Clone)]
pub struct AttentionProfile {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Whether the file has an `attn_kv_cache_save` column (the newer vintage).
    pub has_kv_cache_save: bool,
    /// All rows, in file order.
    pub rows: Vec<AttentionRow>,
}

const KEYS: [&str; 8] = [
    "n_embd",
    "n_q_head",
    "n_kv_head",
    "block_size",
    "num_tensor_parallel_workers",
    "batch_size",
    "prefill_chunk_size",
    "kv_cache_size",
];

impl AttentionProfile {
    /// Reads `path` (`attention.csv` or `.csv.gz`).
    pub fn read(path: &Path) -> Result<Self, ProfileError> {
        Self::from_csv(&CsvFile::open(path)?)
    }

    /// Parses an already-read CSV.
    pub fn from_csv(csv: &CsvFile) -> Result<Self, ProfileError> {
        let key = csv.columns(KEYS)?;
        let prefill = csv.column("time_stats.attn_prefill.median")?;
        let decode = csv.column("time_stats.attn_decode.median")?;
        let save = csv.find("time_stats.attn_kv_cache_save.median");
        let mut rows = Vec::with_capacity(csv.len());
        for r in csv.rows() {
            rows.push(AttentionRow {
                line: r.line,
                hidden: r.u32(key[0])?,
                q_heads: r.u32(key[1])?,
                kv_heads: r.u32(key[2])?,
                block_size: r.u32(key[3])?,
                tp: r.u32(key[4])?,
                batch_size: r.u64(key[5])?,
                prefill_chunk_size: r.u64(key[6])?,
                kv_cache_size: r.u64(key[7])?,
                prefill_ms: r.opt_f64(prefill)?,
                decode_ms: r.opt_f64(decode)?,
                kv_cache_save_ms: match save {
                    Some(c) => r.opt_f64(c)?.unwrap_or(0.0),
                    None => 0.0,
                },
            });
        }
        Ok(AttentionProfile {
            path: csv.path.clone(),
            sha256: csv.sha256.clone(),
            has_kv_cache_save: save.is_some(),
            rows,
        })
    }

    /// Rows for a model of `hidden` width, `q_heads`/`kv_heads` heads, at `tp` (block size is not
    /// filtered: every shipped file uses 16). An error naming what the file has when none match.
    pub fn select(
        &self,
        hidden: u32,
        q_heads: u32,
        kv_heads: u32,
        tp: u32,
    ) -> Result<Vec<&AttentionRow>, ProfileError> {
        let out: Vec<&AttentionRow> = self
            .rows
            .iter()
            .filter(|r| {
                r.hidden == hidden && r.q_heads == q_heads && r.kv_heads == kv_heads && r.tp == tp
            })
            .collect();
        if out.is_empty() {
            let have: BTreeSet<String> = self
                .rows
                .iter()
                .map(|r| {
                    format!(
                        "[n_embd={} n_q_head={} n_kv_head={} TP {}]",
                        r.hidden, r.q_heads, r.kv_heads, r.tp
                    )
                })
                .collect();
            return Err(ProfileError::NoRows {
                path: self.path.clone(),
                why: format!(
                    "no rows for n_embd={hidden} n_q_head={q_heads} n_kv_head={kv_heads} at TP {tp}; the file has {}",
                    have.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(out)
    }

    /// The TP degrees in the file for the given model dimensions, ascending.
    pub fn tps(&self, hidden: u32, q_heads: u32, kv_heads: u32) -> Vec<u32> {
        let s: BTreeSet<u32> = self
            .rows
            .iter()
            .filter(|r| r.hidden == hidden && r.q_heads == q_heads && r.kv_heads == kv_heads)
            .map(|r| r.tp)
            .collect();
        s.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_newer_vintage_with_kv_cache_save_and_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("attention.csv");
        std::fs::write(
            &p,
            "time_stats.attn_kv_cache_save.median,time_stats.attn_prefill.median,time_stats.attn_decode.median,n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,prefill_chunk_size,kv_cache_size,is_prefill,attention_backend\n\
             0.019,0.011,0.0,4096,32,8,16,1,16384,1,64,0,True,AttentionBackend.FLASHINFER\n\
             0.003,0.0,0.608,4096,32,8,16,1,16384,128,0,1792,False,AttentionBackend.FLASHINFER\n",
        )
        .unwrap();
        let prof = AttentionProfile::read(&p).unwrap();
        assert!(prof.has_kv_cache_save);
        let rows = prof.select(4096, 32, 8, 1).unwrap();
        assert_eq!(rows[0].prefill_ms, Some(0.011));
        assert_eq!(rows[0].kv_cache_save_ms, 0.019);
        assert!(rows[1].is_decode() && rows[1].decode_ms == Some(0.608));
        let e = prof.select(4096, 32, 8, 2).unwrap_err().to_string();
        assert!(e.contains("TP 2") && e.contains("n_kv_head=8 TP 1"), "{e}");
    }

    #[test]
    fn reads_the_gzipped_history_file() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../data/vidur/history/a100_attention_n8192_q64_kv8_tp2_from_commit_44bc599.csv.gz",
        );
        let prof = AttentionProfile::read(&p).unwrap();
        assert!(!prof.has_kv_cache_save);
        assert_eq!(prof.rows.len(), 14658);
        assert_eq!(prof.tps(8192, 64, 8), vec![2]);
        let rows = prof.select(8192, 64, 8, 2).unwrap();
        let first = rows[0];
        assert!(first.is_decode());
        assert_eq!((first.batch_size, first.kv_cache_size), (1, 32));
        assert_eq!(first.decode_ms, Some(0.015));
        assert_eq!(first.prefill_ms, None);
        assert_eq!(first.kv_cache_save_ms, 0.0);
        assert!(rows
            .iter()
            .any(|r| !r.is_decode() && r.prefill_ms.is_some()));
        assert!(prof.select(4096, 32, 32, 1).is_err());
    }
}
