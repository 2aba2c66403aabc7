//! Held-out accuracy of the whole fitting procedure: an outer 5-fold shuffled cross-validation with
//! a fixed seed, where each outer training split runs the full model search ([`select`]) and the
//! winner predicts the held-out rows. Reported per operator × TP and pooled, as `accuracy.json`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::case::{CaseError, Dataset, OpKey};
use super::folds::{ape_pct, complement, kfold, quantile};
use super::select::{one_d_candidates, select, two_d_candidates, SearchConfig};
use crate::ops::Op;

/// Messages at least this large (bytes) get their own network p95 (`p95_ape_pct_at_least_5mb`).
pub const LARGE_MESSAGE_BYTES: f64 = 5.0e6;

/// Held-out error of one operator × TP model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyEntry {
    /// Operator.
    pub op: Op,
    /// TP degree (compute) or workers (network).
    pub tp: u32,
    /// Devices per node (send/recv only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_per_node: Option<u32>,
    /// Held-out rows (every row of the profile, once).
    pub rows: usize,
    /// Median APE, %.
    pub median_ape_pct: f64,
    /// 90th-percentile APE, %.
    pub p90_ape_pct: f64,
    /// 95th-percentile APE, %.
    pub p95_ape_pct: f64,
    /// Largest APE, %.
    pub max_ape_pct: f64,
}

/// Pooled compute accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledCompute {
    /// Held-out rows over all compute models.
    pub rows: usize,
    /// Median over models of each model's median APE, %.
    pub median_of_medians_pct: f64,
    /// 95th percentile of all held-out APEs together, %.
    pub p95_ape_pct: f64,
}

/// Pooled network accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledNetwork {
    /// Held-out rows over all network models.
    pub rows: usize,
    /// Median over models of each model's median APE, %.
    pub median_of_medians_pct: f64,
    /// 95th percentile of all held-out APEs together, %.
    pub p95_ape_pct: f64,
    /// The same over messages of at least 5 MB (5·10⁶ bytes), %.
    pub p95_ape_pct_at_least_5mb: f64,
}

/// Pooled statistics; a part is absent when the case has no such models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    /// Compute operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<PooledCompute>,
    /// Network operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<PooledNetwork>,
}

/// The content of `accuracy.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// One entry per operator model, in fitting order.
    pub entries: Vec<AccuracyEntry>,
    /// Pooled figures.
    pub pooled: Pooled,
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Held-out APEs (in row order) of the full search on `d`, by `outer_folds`-fold CV with `seed`.
pub fn held_out_apes(
    d: &Dataset,
    cfg: &SearchConfig,
    outer_folds: usize,
    seed: u64,
) -> Result<Vec<f64>, CaseError> {
    let s = &d.samples;
    let cands = if s.dims == 1 {
        one_d_candidates(cfg)
    } else {
        two_d_candidates(cfg)
    };
    let mut apes = vec![f64::NAN; s.len()];
    let fail = |e| CaseError::Fit {
        what: d.key.to_string(),
        source: e,
    };
    for held in kfold(s.len(), outer_folds, seed) {
        let train = s.subset(&complement(s.len(), &held));
        let choice = select(&cands, &train, cfg).map_err(fail)?;
        let test = s.subset(&held);
        let pred = choice.model.predict(&test.x, s.dims).map_err(fail)?;
        for ((i, p), t) in held.iter().zip(pred).zip(&test.y) {
            apes[*i] = ape_pct(p, *t);
        }
    }
    Ok(apes)
}

/// Runs the outer cross-validation on every dataset and summarises it.
pub fn accuracy(
    datasets: &[Dataset],
    cfg: &SearchConfig,
    outer_folds: usize,
    seed: u64,
) -> Result<AccuracyReport, CaseError> {
    let all: Result<Vec<Vec<f64>>, CaseError> = datasets
        .par_iter()
        .with_max_len(1)
        .map(|d| held_out_apes(d, cfg, outer_folds, seed))
        .collect();
    let all = all?;
    let mut entries = Vec::new();
    let (mut comp, mut net, mut net_large) = (Vec::new(), Vec::new(), Vec::new());
    let (mut comp_med, mut net_med) = (Vec::new(), Vec::new());
    for (d, apes) in datasets.iter().zip(&all) {
        let med = quantile(apes, 0.5);
        entries.push(AccuracyEntry {
            op: d.key.op,
            tp: d.key.tp,
            devices_per_node: d.key.devices_per_node,
            rows: apes.len(),
            median_ape_pct: r3(med),
            p90_ape_pct: r3(quantile(apes, 0.9)),
            p95_ape_pct: r3(quantile(apes, 0.95)),
            max_ape_pct: r3(apes.iter().cloned().fold(0.0, f64::max)),
        });
        if d.key.is_network() {
            net.extend_from_slice(apes);
            net_med.push(med);
            for (i, a) in apes.iter().enumerate() {
                if d.samples.row(i)[0] >= LARGE_MESSAGE_BYTES {
                    net_large.push(*a);
                }
            }
        } else {
            comp.extend_from_slice(apes);
            comp_med.push(med);
        }
    }
    let pooled = Pooled {
        compute: (!comp.is_empty()).then(|| PooledCompute {
            rows: comp.len(),
            median_of_medians_pct: r3(quantile(&comp_med, 0.5)),
            p95_ape_pct: r3(quantile(&comp, 0.95)),
        }),
        network: (!net.is_empty()).then(|| PooledNetwork {
            rows: net.len(),
            median_of_medians_pct: r3(quantile(&net_med, 0.5)),
            p95_ape_pct: r3(quantile(&net, 0.95)),
            p95_ape_pct_at_least_5mb: r3(quantile(&net_large, 0.95)),
        }),
    };
    Ok(AccuracyReport { entries, pooled })
}

impl AccuracyReport {
    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<26} {:>3} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8}\n",
            "op", "tp", "dpn", "rows", "med %", "p90 %", "p95 %", "max %"
        );
        for e in &self.entries {
            s += &format!(
                "{:<26} {:>3} {:>4} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
                e.op.name(),
                e.tp,
                e.devices_per_node
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.rows,
                e.median_ape_pct,
                e.p90_ape_pct,
                e.p95_ape_pct,
                e.max_ape_pct
            );
        }
        if let Some(c) = &self.pooled.compute {
            s += &format!(
                "pooled compute: {} rows, median of medians {:.2} %, p95 {:.2} %\n",
                c.rows, c.median_of_medians_pct, c.p95_ape_pct
            );
        }
        if let Some(n) = &self.pooled.network {
            s += &format!(
                "pooled network: {} rows, median of medians {:.2} %, p95 {:.2} %, p95 at >= 5 MB {:.2} %\n",
                n.rows, n.median_of_medians_pct, n.p95_ape_pct, n.p95_ape_pct_at_least_5mb
            );
        }
        s
    }
}

/// The key of an entry (for lookups in reports).
pub fn entry_key(e: &AccuracyEntry) -> OpKey {
    OpKey {
        op: e.op,
        tp: e.tp,
        devices_per_node: e.devices_per_node,
    }
}
