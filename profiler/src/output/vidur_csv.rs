//! Vidur-compatible profile CSVs: `mlp.csv`, `attention.csv` (vintage B: with `attn_kv_cache_save`),
//! `all_reduce.csv` and `send_recv.csv` (with pandas' leading index column). Column names and order
//! are exactly Vidur's, times are in milliseconds, booleans are Python's `True`/`False`, and numbers
//! use the shortest representation that reads back to the same `f64` (as Python writes them).

use std::io::Write;

use predictor::ModelSpec;

use crate::plan::{AttentionPoint, CollectivePoint, MlpOp};
use crate::stats::TimeStats;

/// The five statistic suffixes, in Vidur's order.
pub const STATS: [&str; 5] = ["min", "max", "mean", "median", "std"];

/// Operators of `attention.csv`, in Vidur's (vintage B) column order.
pub const ATTENTION_OPS: [&str; 5] = [
    "attn_input_reshape",
    "attn_kv_cache_save",
    "attn_prefill",
    "attn_decode",
    "attn_output_reshape",
];

/// Key columns after the statistics of `mlp.csv`.
pub const MLP_KEYS: [&str; 8] = [
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "num_tokens",
    "num_tensor_parallel_workers",
];

/// Key columns after the statistics of `attention.csv`.
pub const ATTENTION_KEYS: [&str; 11] = [
    "n_embd",
    "n_q_head",
    "n_kv_head",
    "block_size",
    "num_tensor_parallel_workers",
    "max_model_len",
    "batch_size",
    "prefill_chunk_size",
    "kv_cache_size",
    "is_prefill",
    "attention_backend",
];

/// Key columns after the statistics of the collective CSVs.
pub const COLLECTIVE_KEYS: [&str; 6] = [
    "rank",
    "num_workers",
    "size",
    "collective",
    "devices_per_node",
    "max_devices_per_node",
];

fn stat_columns<'a>(ops: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    ops.into_iter()
        .flat_map(|op| STATS.iter().map(move |s| format!("time_stats.{op}.{s}")))
        .collect()
}

/// The header of `mlp.csv`.
pub fn mlp_header() -> Vec<String> {
    let mut h = stat_columns(MlpOp::ALL.iter().map(|o| o.vidur_name()));
    h.extend(MLP_KEYS.iter().map(|s| s.to_string()));
    h
}

/// The header of `attention.csv`.
pub fn attention_header() -> Vec<String> {
    let mut h = stat_columns(ATTENTION_OPS);
    h.extend(ATTENTION_KEYS.iter().map(|s| s.to_string()));
    h
}

/// The header of `all_reduce.csv` (`send_recv = false`) or `send_recv.csv`; it starts with the
/// empty name of pandas' index column.
pub fn collective_header(send_recv: bool) -> Vec<String> {
    let name = if send_recv { "send_recv" } else { "all_reduce" };
    let mut h = vec![String::new()];
    h.extend(stat_columns([name]));
    h.extend(COLLECTIVE_KEYS.iter().map(|s| s.to_string()));
    h
}

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

fn push_stats(row: &mut Vec<String>, s: &TimeStats) {
    row.extend(s.columns().iter().map(|v| v.to_string()));
}

/// One measured row of `mlp.csv`.
#[derive(Debug, Clone)]
pub struct MlpRow {
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Tokens.
    pub num_tokens: u64,
    /// Statistics per operator, in [`MlpOp::ALL`] order.
    pub stats: [TimeStats; 10],
}

/// One measured row of `attention.csv`.
#[derive(Debug, Clone)]
pub struct AttentionRow {
    /// The shape.
    pub point: AttentionPoint,
    /// KV-cache write statistics.
    pub kv_save: TimeStats,
    /// Attention kernel statistics (written under `attn_prefill` or `attn_decode`).
    pub attention: TimeStats,
    /// Value of the `attention_backend` column (e.g. `nvrtc_fa2`).
    pub backend: String,
}

/// One measured row of a collective CSV.
#[derive(Debug, Clone)]
pub struct CollectiveRow {
    /// The shape.
    pub point: CollectivePoint,
    /// Statistics (the max over ranks of each sample).
    pub stats: TimeStats,
    /// GPUs of the node that took part.
    pub devices_per_node: u32,
    /// GPUs in the node.
    pub max_devices_per_node: u32,
}

/// Writes `mlp.csv` for `model`.
pub fn write_mlp<W: Write>(out: W, model: &ModelSpec, rows: &[MlpRow]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(mlp_header())?;
    for r in rows {
        let mut row = Vec::with_capacity(58);
        for s in &r.stats {
            push_stats(&mut row, s);
        }
        row.extend([
            model.num_attention_heads.to_string(),
            model.num_key_value_heads.to_string(),
            model.hidden_size.to_string(),
            model.intermediate_size.to_string(),
            model.vocab_size.to_string(),
            py_bool(model.gated_mlp),
            r.num_tokens.to_string(),
            r.tp.to_string(),
        ]);
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes `attention.csv` for `model` (block size 16).
pub fn write_attention<W: Write>(
    out: W,
    model: &ModelSpec,
    max_model_len: u64,
    rows: &[AttentionRow],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(attention_header())?;
    let zero = TimeStats::zero();
    for r in rows {
        let p = &r.point;
        let (prefill, decode) = if p.is_prefill {
            (&r.attention, &zero)
        } else {
            (&zero, &r.attention)
        };
        let mut row = Vec::with_capacity(36);
        for s in [&zero, &r.kv_save, prefill, decode, &zero] {
            push_stats(&mut row, s);
        }
        row.extend([
            model.hidden_size.to_string(),
            model.num_attention_heads.to_string(),
            model.num_key_value_heads.to_string(),
            crate::kernels::PAGE_TOKENS.to_string(),
            p.tp.to_string(),
            max_model_len.to_string(),
            p.batch_size.to_string(),
            p.prefill_chunk_size.to_string(),
            p.kv_cache_size.to_string(),
            py_bool(p.is_prefill),
            r.backend.clone(),
        ]);
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes `all_reduce.csv` or `send_recv.csv` (only rows of that collective are taken from `rows`).
pub fn write_collective<W: Write>(
    out: W,
    send_recv: bool,
    rows: &[CollectiveRow],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(collective_header(send_recv))?;
    let name = if send_recv { "send_recv" } else { "all_reduce" };
    for (i, r) in rows
        .iter()
        .filter(|r| r.point.send_recv == send_recv)
        .enumerate()
    {
        let mut row = vec![i.to_string()];
        push_stats(&mut row, &r.stats);
        row.extend([
            "0".to_string(),
            r.point.num_workers.to_string(),
            r.point.size_bytes.to_string(),
            name.to_string(),
            r.devices_per_node.to_string(),
            r.max_devices_per_node.to_string(),
        ]);
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Header of `lm_head.csv`, our extra file for the logits GEMM (Vidur leaves it out).
pub fn lm_head_header() -> Vec<String> {
    let mut h = stat_columns(["lm_head"]);
    h.extend(
        [
            "n_embd",
            "vocab_size",
            "num_tokens",
            "num_tensor_parallel_workers",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    h
}

/// Writes `lm_head.csv`: one row per `(tp, sampled rows, stats)`.
pub fn write_lm_head<W: Write>(
    out: W,
    model: &ModelSpec,
    rows: &[(u32, u64, TimeStats)],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(lm_head_header())?;
    for (tp, b, s) in rows {
        let mut row = Vec::with_capacity(9);
        push_stats(&mut row, s);
        row.extend([
            model.hidden_size.to_string(),
            model.vocab_size.to_string(),
            b.to_string(),
            tp.to_string(),
        ]);
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
#[path = "vidur_csv_tests.rs"]
mod tests;
