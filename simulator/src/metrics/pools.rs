//! Per-pool and KV-transfer sections of `summary.json` under disaggregated serving
//! ([outputs.md](../../../docs/outputs.md)).

use serde::{Deserialize, Serialize};

use super::histogram::Stats;
use super::summary::Summary;
use super::TransferMetrics;
use crate::pools::{Disaggregated, ResolvedPool};

/// One pool of a disaggregated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// `prefill` or `decode`.
    pub role: String,
    /// Id of its first replica (its replicas are consecutive).
    pub first_replica_id: u32,
    /// Replicas.
    pub replicas: u32,
    /// GPU.
    pub device: String,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// GPUs of the pool.
    pub gpus: u32,
    /// Price of the pool's GPUs per hour, USD.
    pub usd_per_hour: f64,
    /// Mean over its replicas of the busy fraction.
    pub busy_fraction_mean: f64,
    /// Mean over its replicas of the time-weighted KV usage.
    pub kv_usage_mean: f64,
    /// Largest KV usage of any of its replicas.
    pub kv_usage_max: f64,
}

/// The KV transfers of a disaggregated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// `after_prefill` or `layerwise`.
    pub mode: String,
    /// `nvlink` or `network`.
    pub link: String,
    /// Bandwidth of one transfer, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// Latency of one transfer, s.
    pub latency_s: f64,
    /// KV bytes per prompt token.
    pub kv_bytes_per_token: u64,
    /// Transfers of completed requests.
    pub transfers: u64,
    /// Bytes they moved.
    pub bytes: u64,
    /// Transfer start to end, s.
    pub duration_s: Stats,
    /// Prefill end to transfer start (waiting for decode memory or a running slot), s.
    pub wait_s: Stats,
    /// Prefill end to transfer end, s.
    pub after_prefill_s: Stats,
}

fn pool(s: &Summary, p: &ResolvedPool, first: u32) -> PoolSummary {
    let r = &p.resolved;
    let n = p.config.cluster.num_replicas;
    let gpus_per = r.parallelism.world_size();
    let mine = &s.replicas[first as usize..(first + n) as usize];
    let mean = |f: &dyn Fn(&super::summary::ReplicaSummary) -> f64| {
        mine.iter().map(f).sum::<f64>() / f64::from(n.max(1))
    };
    PoolSummary {
        role: p.role.name().into(),
        first_replica_id: first,
        replicas: n,
        device: r.device.name.clone(),
        tp: r.parallelism.tp,
        pp: r.parallelism.pp,
        gpus: gpus_per * n,
        usd_per_hour: f64::from(gpus_per * n) * r.device.price_per_gpu_hour_usd,
        busy_fraction_mean: mean(&|x| x.busy_fraction),
        kv_usage_mean: mean(&|x| x.kv_usage_mean),
        kv_usage_max: mine.iter().map(|x| x.kv_usage_max).fold(0.0, f64::max),
    }
}

/// Adds the pools and transfers of `d` to `s` (built with the prefill pool's facts): the cost
/// covers both pools, and the decode replicas' MFU their own GPUs.
pub fn add_to_summary(s: &mut Summary, d: &Disaggregated, t: &TransferMetrics) {
    let np = d.prefill.config.cluster.num_replicas;
    let (pr, dr) = (&d.prefill.resolved, &d.decode.resolved);
    // Summary::build divided every replica's FLOPs by the prefill pool's GPUs and peak
    let scale = (f64::from(pr.parallelism.world_size()) * pr.device.peak_bf16_flops)
        / (f64::from(dr.parallelism.world_size()) * dr.device.peak_bf16_flops);
    for rep in &mut s.replicas[np as usize..] {
        rep.mfu *= scale;
    }
    s.pools = vec![pool(s, &d.prefill, 0), pool(s, &d.decode, np)];
    let gpus: u32 = s.pools.iter().map(|p| p.gpus).sum();
    let usd_per_hour: f64 = s.pools.iter().map(|p| p.usd_per_hour).sum();
    let out_per_s = s.throughput.output_tokens_per_s;
    s.cost.gpus = gpus;
    s.cost.usd_per_hour = usd_per_hour;
    s.cost.usd_per_million_output_tokens = if out_per_s > 0.0 {
        usd_per_hour / 3600.0 / out_per_s * 1e6
    } else {
        0.0
    };
    let ns = 1e-9;
    s.kv_transfer = Some(TransferSummary {
        mode: d.transfer.mode.name().into(),
        link: match d.link {
            crate::pools::TransferLink::Nvlink => "nvlink",
            _ => "network",
        }
        .into(),
        bandwidth_bytes_per_s: d.transfer.bandwidth_bytes_per_s,
        latency_s: d.transfer.latency_ns as f64 * ns,
        kv_bytes_per_token: d.transfer.kv_bytes_per_token,
        transfers: t.count,
        bytes: t.bytes,
        duration_s: t.duration.stats(ns),
        wait_s: t.wait.stats(ns),
        after_prefill_s: t.after_prefill.stats(ns),
    });
}
