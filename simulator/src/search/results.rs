//! One row per configuration, and the files built from the rows: `results.csv`, `results.json`,
//! `best.json`, `best.toml`, `configs/NNNN.toml` and `frontier.csv` (docs/search.md). Every file
//! is a function of the rows alone, so a merge of shards writes the same bytes as one search.

use std::fmt::Write as _;
use std::path::Path;

use predictor::precision::{KvCacheDType, Quantization};
use serde::{Deserialize, Serialize};

use super::capacity::{percentile_of, stats_of, Capacity, Evaluation, Status};
use super::error::SearchError;
use super::space::{Candidate, SearchKnobs, SloLimit, SloMetric};
use crate::config::SimConfig;
use crate::engine::transfer::TransferMode;
use crate::metrics::pools::{PoolSummary, TransferSummary};
use crate::metrics::summary::{Latency, Throughput};

/// Facts shared by every row: what was searched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format tag.
    pub format: String,
    /// Seed of every simulation.
    pub seed: u64,
    /// Search knobs.
    pub search: SearchKnobs,
    /// SLOs.
    pub slos: Vec<SloLimit>,
    /// Configurations in the whole space.
    pub num_configurations: usize,
    /// FNV-1a hash of every configuration (key, price and simulation configuration), so that
    /// shards of different spaces are not merged.
    pub space_fingerprint: String,
}

/// The fingerprint of an expanded space (64-bit FNV-1a over each candidate's key, price and
/// configuration as JSON), in hex.
pub fn fingerprint(candidates: &[Candidate]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for c in candidates {
        eat(c.key.as_bytes());
        eat(&c.price_per_gpu_hour_usd.to_le_bytes());
        if let Some(p) = c.decode_price_per_gpu_hour_usd {
            eat(&p.to_le_bytes());
        }
        eat(serde_json::to_string(&c.config)
            .expect("configurations serialize")
            .as_bytes());
    }
    format!("{h:016x}")
}

/// Metrics of the run at the capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtCapacity {
    /// Latency distributions, s.
    pub latency: Latency,
    /// Throughput.
    pub throughput: Throughput,
    /// Requests finished.
    pub completed_requests: u64,
    /// Simulated time, s.
    pub simulated_time_s: f64,
    /// Time limit of the run, s.
    pub time_limit_s: f64,
    /// Expected time from the first to the last arrival, s (short spans overstate capacity).
    pub arrival_span_s: f64,
    /// Mean over replicas of the busy fraction.
    pub busy_fraction: f64,
    /// Mean over replicas of the MFU.
    pub mfu: f64,
    /// Mean over replicas of the mean KV usage.
    pub kv_usage_mean: f64,
    /// Per pool, when disaggregated (`summary.json`'s `pools`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSummary>,
    /// The KV transfers, when disaggregated (`summary.json`'s `kv_transfer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_transfer: Option<TransferSummary>,
}

/// The pools of a disaggregated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowPools {
    /// Prefill replicas.
    pub prefill_replicas: u32,
    /// Decode replicas.
    pub decode_replicas: u32,
    /// GPU of the decode pool.
    pub decode_device: String,
    /// Its node type.
    pub decode_node: Option<String>,
    /// Price of one GPU-hour of the decode pool's GPU, USD.
    pub decode_price_per_gpu_hour_usd: f64,
    /// How the KV cache moves.
    pub transfer_mode: TransferMode,
}

fn one() -> u32 {
    1
}

/// A precision choice as written in space files and on the command line (`auto`, `fp8`, ...).
fn value_name<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// One configuration's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Position in the space.
    pub index: usize,
    /// Readable key.
    pub key: String,
    /// Model.
    pub model: String,
    /// Device.
    pub device: String,
    /// Node.
    pub node: Option<String>,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Expert-parallel degree (1: none).
    #[serde(default = "one")]
    pub ep: u32,
    /// Weight quantization.
    #[serde(default)]
    pub quantization: Quantization,
    /// KV-cache element type.
    #[serde(default)]
    pub kv_cache_dtype: KvCacheDType,
    /// Replicas (both pools' when disaggregated).
    pub replicas: u32,
    /// GPUs (replicas × TP × PP).
    pub gpus: u32,
    /// The prefill and decode pools; absent: colocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<RowPools>,
    /// Replica scheduler.
    pub scheduler: String,
    /// Its batch size cap.
    pub batch_size_cap: u32,
    /// Its chunk size.
    pub chunk_size: u32,
    /// Its token cap.
    pub max_tokens_in_batch: u32,
    /// Price of one GPU-hour, USD (the prefill pool's GPU when disaggregated).
    pub price_per_gpu_hour_usd: f64,
    /// Price of the deployment per hour, USD.
    pub usd_per_hour: f64,
    /// Outcome.
    pub status: Status,
    /// Why (invalid, failed, no rate, unbounded, not converged).
    pub reason: Option<String>,
    /// Highest arrival rate meeting every SLO, requests/s.
    pub capacity_qps: Option<f64>,
    /// Lowest failing rate found above it, requests/s.
    pub fail_qps: Option<f64>,
    /// Saturated throughput of the probe, requests/s.
    pub probe_throughput_qps: Option<f64>,
    /// Requests served per USD at the capacity.
    pub requests_per_usd: Option<f64>,
    /// Prompt + output tokens per USD at the capacity.
    pub tokens_per_usd: Option<f64>,
    /// Output tokens per USD at the capacity.
    pub output_tokens_per_usd: Option<f64>,
    /// Each SLO's metric at the capacity, s, in the order of the SLOs.
    pub slo_values_s: Vec<f64>,
    /// Metrics at the capacity.
    pub at_capacity: Option<AtCapacity>,
    /// Every simulation of the search.
    pub evaluations: Vec<Evaluation>,
}

/// A row with its `simulator run --config` file at the capacity (what a shard stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullRow {
    /// The row.
    pub row: Row,
    /// The configuration at the capacity.
    pub run_config: Option<SimConfig>,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// The row of `cand` from its search result.
pub fn row(cand: &Candidate, cap: Capacity, slos: &[SloLimit]) -> FullRow {
    let c = &cand.config;
    let gpus_per_replica = c.replica.tp * c.replica.pp;
    let gpus = c.cluster.num_replicas * gpus_per_replica;
    let pools = row_pools(cand);
    let usd_per_hour = match &pools {
        Some(p) => {
            f64::from(p.prefill_replicas * gpus_per_replica) * cand.price_per_gpu_hour_usd
                + f64::from(p.decode_replicas * gpus_per_replica) * p.decode_price_per_gpu_hour_usd
        }
        None => gpus as f64 * cand.price_per_gpu_hour_usd,
    };
    let (at_capacity, run_config, slo_values_s, per_usd) = match &cap.at_capacity {
        Some((cfg, s)) => {
            let rate = cap.capacity_qps.unwrap_or(0.0);
            let req_per_usd = rate * 3600.0 / usd_per_hour;
            let per_req = |x: f64| {
                if s.throughput.requests_per_s > 0.0 {
                    x / s.throughput.requests_per_s
                } else {
                    0.0
                }
            };
            let at = AtCapacity {
                latency: s.latency,
                throughput: s.throughput,
                completed_requests: s.requests.completed,
                simulated_time_s: s.simulated_time_s,
                time_limit_s: cfg.time_limit_s.unwrap_or(0.0),
                arrival_span_s: cap.arrival_span_s.unwrap_or(0.0),
                busy_fraction: mean(s.replicas.iter().map(|r| r.busy_fraction)),
                mfu: mean(s.replicas.iter().map(|r| r.mfu)),
                kv_usage_mean: mean(s.replicas.iter().map(|r| r.kv_usage_mean)),
                pools: s.pools.clone(),
                kv_transfer: s.kv_transfer.clone(),
            };
            let vals = slos
                .iter()
                .map(|l| percentile_of(stats_of(s, l.metric), l.percentile))
                .collect();
            let per_usd = (
                Some(req_per_usd),
                Some(req_per_usd * per_req(s.throughput.total_tokens_per_s)),
                Some(req_per_usd * per_req(s.throughput.output_tokens_per_s)),
            );
            (Some(at), Some(cfg.clone()), vals, per_usd)
        }
        None => (None, None, Vec::new(), (None, None, None)),
    };
    FullRow {
        row: Row {
            index: cand.index,
            key: cand.key.clone(),
            model: c.replica.model.clone(),
            device: c.replica.device.clone(),
            node: c.replica.node.clone(),
            tp: c.replica.tp,
            pp: c.replica.pp,
            ep: c.replica.ep,
            quantization: c.replica.quantization,
            kv_cache_dtype: c.replica.kv_cache_dtype,
            replicas: c.cluster.num_replicas,
            gpus,
            pools,
            scheduler: c.scheduler.name.clone(),
            batch_size_cap: c.scheduler.batch_size_cap,
            chunk_size: c.scheduler.chunk_size,
            max_tokens_in_batch: c.scheduler.max_tokens_in_batch,
            price_per_gpu_hour_usd: cand.price_per_gpu_hour_usd,
            usd_per_hour,
            status: cap.status,
            reason: cap.reason,
            capacity_qps: cap.capacity_qps,
            fail_qps: cap.fail_qps,
            probe_throughput_qps: cap.probe_throughput_qps,
            requests_per_usd: per_usd.0,
            tokens_per_usd: per_usd.1,
            output_tokens_per_usd: per_usd.2,
            slo_values_s,
            at_capacity,
            evaluations: cap.evaluations,
        },
        run_config,
    }
}

/// The pools of a disaggregated candidate (its two `[[cluster.pool]]` entries, prefill first).
fn row_pools(cand: &Candidate) -> Option<RowPools> {
    let c = &cand.config;
    let [p, d] = c.cluster.pools.as_slice() else {
        return None;
    };
    let (decode_device, decode_node) = match &d.device {
        Some(dev) => (dev.clone(), d.node.clone()),
        None => (c.replica.device.clone(), c.replica.node.clone()),
    };
    Some(RowPools {
        prefill_replicas: p.replicas,
        decode_replicas: d.replicas,
        decode_device,
        decode_node,
        decode_price_per_gpu_hour_usd: cand
            .decode_price_per_gpu_hour_usd
            .unwrap_or(cand.price_per_gpu_hour_usd),
        transfer_mode: c.cluster.kv_transfer.mode,
    })
}

/// An objective for "best configuration".
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    /// Name in `best.json`.
    pub name: &'static str,
    /// Larger is better (else smaller).
    pub maximize: bool,
}

/// The objectives of `best.json`; the first one picks `best.toml`.
pub const OBJECTIVES: [Objective; 5] = [
    Objective {
        name: "requests_per_usd",
        maximize: true,
    },
    Objective {
        name: "capacity_qps",
        maximize: true,
    },
    Objective {
        name: "tokens_per_usd",
        maximize: true,
    },
    Objective {
        name: "ttft",
        maximize: false,
    },
    Objective {
        name: "tbt",
        maximize: false,
    },
];

/// The percentile the frontier and objectives use for `metric`: its SLO's, else `fallback`.
pub fn frontier_percentile(slos: &[SloLimit], metric: SloMetric, fallback: f64) -> f64 {
    slos.iter()
        .find(|s| s.metric == metric)
        .map_or(fallback, |s| s.percentile)
}

/// The value of objective `o` for `r` (None without a capacity).
pub fn objective_value(o: &Objective, r: &Row, slos: &[SloLimit]) -> Option<f64> {
    if !r.status.has_capacity() {
        return None;
    }
    let at = r.at_capacity.as_ref()?;
    match o.name {
        "requests_per_usd" => r.requests_per_usd,
        "capacity_qps" => r.capacity_qps,
        "tokens_per_usd" => r.tokens_per_usd,
        "ttft" => Some(percentile_of(
            &at.latency.ttft_s,
            frontier_percentile(slos, SloMetric::Ttft, 90.0),
        )),
        _ => Some(percentile_of(
            &at.latency.tbt_s,
            frontier_percentile(slos, SloMetric::Tbt, 99.0),
        )),
    }
}

/// The unit of objective `o`'s value, with the percentile for the latency objectives
/// (`requests/USD`, `s (TTFT p90 at capacity)`).
pub fn objective_unit(o: &Objective, slos: &[SloLimit]) -> String {
    match o.name {
        "requests_per_usd" => "requests/USD".into(),
        "capacity_qps" => "req/s".into(),
        "tokens_per_usd" => "tokens/USD".into(),
        "ttft" => format!(
            "s (TTFT p{} at capacity)",
            frontier_percentile(slos, SloMetric::Ttft, 90.0)
        ),
        _ => format!(
            "s (TBT p{} at capacity)",
            frontier_percentile(slos, SloMetric::Tbt, 99.0)
        ),
    }
}

/// The best row for `o` (ties: the lowest index).
pub fn best<'a>(o: &Objective, rows: &'a [Row], slos: &[SloLimit]) -> Option<&'a Row> {
    let mut best: Option<(&Row, f64)> = None;
    for r in rows {
        if let Some(v) = objective_value(o, r, slos) {
            let better = match best {
                None => true,
                Some((_, b)) => (o.maximize && v > b) || (!o.maximize && v < b),
            };
            if better {
                best = Some((r, v));
            }
        }
    }
    best.map(|(r, _)| r)
}

/// A Pareto frontier: `points` are (row index, requests/USD, latency s) by falling requests/USD.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    /// The latency metric.
    pub metric: SloMetric,
    /// Its percentile.
    pub percentile: f64,
    /// The points.
    pub points: Vec<(usize, f64, f64)>,
}

/// The Pareto frontier of requests per USD (maximized) against `metric` at `percentile`
/// (minimized), as (row index, requests/USD, latency s), by falling requests/USD.
pub fn frontier(rows: &[Row], metric: SloMetric, percentile: f64) -> Vec<(usize, f64, f64)> {
    let mut pts: Vec<(usize, f64, f64)> = rows
        .iter()
        .filter(|r| r.status.has_capacity())
        .filter_map(|r| {
            let at = r.at_capacity.as_ref()?;
            let s = match metric {
                SloMetric::Ttft => &at.latency.ttft_s,
                _ => &at.latency.tbt_s,
            };
            Some((r.index, r.requests_per_usd?, percentile_of(s, percentile)))
        })
        .collect();
    pts.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(a.2.total_cmp(&b.2))
            .then(a.0.cmp(&b.0))
    });
    let mut out: Vec<(usize, f64, f64)> = Vec::new();
    for p in pts {
        if out.last().is_none_or(|l| p.2 < l.2) {
            out.push(p);
        }
    }
    out
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_err(path: &Path) -> impl Fn(csv::Error) -> SearchError + '_ {
    move |e| SearchError::io(path, e)
}

/// Writes `results.csv`.
pub fn write_csv(path: &Path, rows: &[Row], slos: &[SloLimit]) -> Result<(), SearchError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    let mut header: Vec<String> = [
        "index",
        "key",
        "model",
        "device",
        "node",
        "tp",
        "pp",
        "ep",
        "quantization",
        "kv_cache_dtype",
        "replicas",
        "gpus",
        "scheduler",
        "batch_size_cap",
        "chunk_size",
        "max_tokens_in_batch",
        "price_per_gpu_hour_usd",
        "usd_per_hour",
        "status",
        "capacity_qps",
        "fail_qps",
        "requests_per_usd",
        "tokens_per_usd",
        "output_tokens_per_usd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let disagg = rows.iter().any(|r| r.pools.is_some());
    if disagg {
        let at = header.iter().position(|h| h == "gpus").map_or(0, |i| i + 1);
        header.splice(at..at, POOL_COLUMNS.iter().map(|s| s.to_string()));
    }
    header.extend(slos.iter().map(|s| format!("slo_{}_s", s.label())));
    header.extend(
        [
            "ttft_p50_s",
            "ttft_p90_s",
            "ttft_p99_s",
            "tbt_p50_s",
            "tbt_p99_s",
            "tpot_p50_s",
            "tpot_p99_s",
            "e2e_p50_s",
            "e2e_p99_s",
            "scheduling_delay_p50_s",
            "scheduling_delay_p99_s",
            "throughput_requests_per_s",
            "output_tokens_per_s",
            "mfu",
            "kv_usage_mean",
            "busy_fraction",
            "arrival_span_s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if disagg {
        header.extend(POOL_METRIC_COLUMNS.iter().map(|s| s.to_string()));
    }
    header.extend(["evaluations".to_string(), "reason".to_string()]);
    w.write_record(&header).map_err(csv_err(path))?;
    for r in rows {
        let mut rec = vec![
            r.index.to_string(),
            r.key.clone(),
            r.model.clone(),
            r.device.clone(),
            r.node.clone().unwrap_or_default(),
            r.tp.to_string(),
            r.pp.to_string(),
            r.ep.to_string(),
            value_name(r.quantization),
            value_name(r.kv_cache_dtype),
            r.replicas.to_string(),
            r.gpus.to_string(),
        ];
        if disagg {
            rec.extend(pool_cells(r.pools.as_ref()));
        }
        rec.extend([
            r.scheduler.clone(),
            r.batch_size_cap.to_string(),
            r.chunk_size.to_string(),
            r.max_tokens_in_batch.to_string(),
            r.price_per_gpu_hour_usd.to_string(),
            r.usd_per_hour.to_string(),
            r.status.name().to_string(),
            opt(r.capacity_qps),
            opt(r.fail_qps),
            opt(r.requests_per_usd),
            opt(r.tokens_per_usd),
            opt(r.output_tokens_per_usd),
        ]);
        for i in 0..slos.len() {
            rec.push(opt(r.slo_values_s.get(i).copied()));
        }
        let a = r.at_capacity.as_ref();
        let l = a.map(|a| a.latency);
        let vals: [Option<f64>; 17] = [
            l.map(|l| l.ttft_s.p50),
            l.map(|l| l.ttft_s.p90),
            l.map(|l| l.ttft_s.p99),
            l.map(|l| l.tbt_s.p50),
            l.map(|l| l.tbt_s.p99),
            l.map(|l| l.tpot_s.p50),
            l.map(|l| l.tpot_s.p99),
            l.map(|l| l.e2e_s.p50),
            l.map(|l| l.e2e_s.p99),
            l.map(|l| l.scheduling_delay_s.p50),
            l.map(|l| l.scheduling_delay_s.p99),
            a.map(|a| a.throughput.requests_per_s),
            a.map(|a| a.throughput.output_tokens_per_s),
            a.map(|a| a.mfu),
            a.map(|a| a.kv_usage_mean),
            a.map(|a| a.busy_fraction),
            a.map(|a| a.arrival_span_s),
        ];
        rec.extend(vals.iter().map(|v| opt(*v)));
        if disagg {
            rec.extend(pool_metric_cells(a).iter().map(|v| opt(*v)));
        }
        rec.push(r.evaluations.len().to_string());
        rec.push(r.reason.clone().unwrap_or_default());
        w.write_record(&rec).map_err(csv_err(path))?;
    }
    w.flush().map_err(|e| SearchError::io(path, e))
}

/// Columns of `results.csv` after `gpus` when a row is disaggregated.
const POOL_COLUMNS: [&str; 6] = [
    "prefill_replicas",
    "decode_replicas",
    "decode_device",
    "decode_node",
    "decode_price_per_gpu_hour_usd",
    "transfer_mode",
];

/// Columns of `results.csv` after `arrival_span_s` when a row is disaggregated.
const POOL_METRIC_COLUMNS: [&str; 5] = [
    "prefill_busy_fraction",
    "decode_busy_fraction",
    "decode_kv_usage_mean",
    "kv_wait_p99_s",
    "kv_after_prefill_p99_s",
];

/// The [`POOL_COLUMNS`] cells of a row (empty for a colocated one).
fn pool_cells(p: Option<&RowPools>) -> Vec<String> {
    match p {
        Some(p) => vec![
            p.prefill_replicas.to_string(),
            p.decode_replicas.to_string(),
            p.decode_device.clone(),
            p.decode_node.clone().unwrap_or_default(),
            p.decode_price_per_gpu_hour_usd.to_string(),
            p.transfer_mode.name().to_string(),
        ],
        None => vec![String::new(); POOL_COLUMNS.len()],
    }
}

/// The [`POOL_METRIC_COLUMNS`] values at the capacity (none for a colocated row).
fn pool_metric_cells(a: Option<&AtCapacity>) -> [Option<f64>; 5] {
    let role = |name: &str| a.and_then(|a| a.pools.iter().find(|p| p.role == name));
    let t = a.and_then(|a| a.kv_transfer.as_ref());
    [
        role("prefill").map(|p| p.busy_fraction_mean),
        role("decode").map(|p| p.busy_fraction_mean),
        role("decode").map(|p| p.kv_usage_mean),
        t.map(|t| t.wait_s.p99),
        t.map(|t| t.after_prefill_s.p99),
    ]
}

/// Writes `frontier.csv`: both frontiers, one row per point.
pub fn write_frontier_csv(
    path: &Path,
    rows: &[Row],
    fronts: &[Frontier],
) -> Result<(), SearchError> {
    let mut s = String::from("metric,percentile,index,key,requests_per_usd,latency_s\n");
    for f in fronts {
        let (metric, pct) = (f.metric, f.percentile);
        for (i, rpu, lat) in &f.points {
            let _ = writeln!(
                s,
                "{},{pct},{i},{},{rpu},{lat}",
                metric.name(),
                rows[*i].key
            );
        }
    }
    std::fs::write(path, s).map_err(|e| SearchError::io(path, e))
}
