//! `summary.json`: the run in numbers (docs/outputs.md).

use serde::{Deserialize, Serialize};

use super::Stats;
use crate::engine::EngineOutcome;

/// Backend that answered the batch-time predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendSummary {
    /// `profiled`, `roofline` or `tables`.
    pub kind: String,
    /// The data behind it.
    pub source: String,
    /// Operators answered by another backend, as `op: backend`.
    pub fallbacks: Vec<String>,
    /// Lookups outside the backend's tables.
    pub out_of_grid_lookups: u64,
}

/// Request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests that finished.
    pub completed: u64,
}

/// Latency distributions, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Time to first token.
    pub ttft_s: Stats,
    /// Every gap between consecutive output tokens.
    pub tbt_s: Stats,
    /// Time per output token after the first (requests with ≥ 2 output tokens).
    pub tpot_s: Stats,
    /// End-to-end latency.
    pub e2e_s: Stats,
    /// End-to-end latency per output token.
    pub e2e_normalized_s: Stats,
    /// Arrival to first batch.
    pub scheduling_delay_s: Stats,
}

/// Throughput over the simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Finished requests per second.
    pub requests_per_s: f64,
    /// Output tokens of finished requests per second.
    pub output_tokens_per_s: f64,
    /// Prompt plus output tokens of finished requests per second.
    pub total_tokens_per_s: f64,
}

/// One replica.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSummary {
    /// Replica id.
    pub replica_id: u32,
    /// Requests the router sent to the replica (finished or not).
    #[serde(default)]
    pub requests: u64,
    /// Mean over stages of the fraction of time busy.
    pub busy_fraction: f64,
    /// Model FLOPs over the GPUs' peak for the simulated time.
    pub mfu: f64,
    /// Time-weighted mean fraction of KV blocks in use.
    pub kv_usage_mean: f64,
    /// Largest fraction of KV blocks in use.
    pub kv_usage_max: f64,
    /// KV blocks.
    pub kv_blocks_total: u64,
    /// Batches run.
    pub batches: u64,
    /// Preemptions of finished requests.
    pub preemptions: u64,
    /// Restarts of finished requests.
    pub restarts: u64,
}

/// Load imbalance of a cluster: the most requests routed to one replica over the mean per replica
/// (1 = even, N = everything on one of N replicas; 0 without requests).
pub fn request_imbalance(replicas: &[ReplicaSummary]) -> f64 {
    let total: u64 = replicas.iter().map(|r| r.requests).sum();
    let max = replicas.iter().map(|r| r.requests).max().unwrap_or(0);
    if total == 0 {
        0.0
    } else {
        max as f64 * replicas.len() as f64 / total as f64
    }
}

/// Goodput against the SLOs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloSummary {
    /// Largest TTFT allowed, s.
    pub ttft_s: Option<f64>,
    /// Largest TPOT allowed, s.
    pub tpot_s: Option<f64>,
    /// Largest E2E allowed, s.
    pub e2e_s: Option<f64>,
    /// Finished requests meeting every bound.
    pub met_requests: u64,
    /// Their fraction of the finished requests.
    pub attainment: f64,
    /// Requests meeting the SLOs per simulated second.
    pub goodput_requests_per_s: f64,
}

/// Cost of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// GPUs (replicas × TP × PP).
    pub gpus: u32,
    /// Their price per hour, USD.
    pub usd_per_hour: f64,
    /// USD per million output tokens at the simulated throughput.
    pub usd_per_million_output_tokens: f64,
}

/// Latencies of the requests that arrived during one load stage of a staged workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// Stage index (0-based).
    pub stage: u32,
    /// Stage start, simulated s.
    pub start_s: f64,
    /// Stage end, simulated s.
    pub end_s: f64,
    /// Offered rate, requests per second.
    pub qps: f64,
    /// Time to first token.
    pub ttft_s: Stats,
    /// Time per output token.
    pub tpot_s: Stats,
    /// End-to-end latency.
    pub e2e_s: Stats,
}

/// The content of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// servesim version.
    pub servesim_version: String,
    /// Backend that answered.
    pub backend: BackendSummary,
    /// Request counts.
    pub requests: RequestCounts,
    /// Simulated time at the end, s.
    pub simulated_time_s: f64,
    /// Latencies.
    pub latency: Latency,
    /// Throughput.
    pub throughput: Throughput,
    /// Per replica.
    pub replicas: Vec<ReplicaSummary>,
    /// Goodput, when SLOs are given.
    pub slo: Option<SloSummary>,
    /// Cost.
    pub cost: Cost,
    /// Prefix caching.
    #[serde(default)]
    pub prefix_cache: super::cache::PrefixCacheSummary,
    /// Preemptions.
    #[serde(default)]
    pub preemptions: super::cache::PreemptionSummary,
    /// Per load stage of a staged workload (`kind = "stages"`), by arrival time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSummary>,
    /// Front-end time per request included in TTFT and E2E, s (the engine model's).
    #[serde(default)]
    pub frontend_s: f64,
    /// The workload as it arrived (set by [`crate::run::simulate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<super::load::WorkloadFacts>,
    /// Whether the deployment kept up with the load (set by [`crate::run::simulate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<super::load::LoadVerdict>,
    /// What the run did differently from what was asked, in words (a trace shifted to start at 0,
    /// a workload shorter than `num_requests`, a stop at the time limit, a backend fallback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Per pool (disaggregated serving only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<super::pools::PoolSummary>,
    /// The KV transfers (disaggregated serving only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_transfer: Option<super::pools::TransferSummary>,
}

/// Facts about the cluster that the engine does not know.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// GPUs per replica.
    pub gpus_per_replica: u32,
    /// Peak FLOP/s of one GPU.
    pub peak_flops_per_gpu: f64,
    /// Price of one GPU-hour, USD.
    pub usd_per_gpu_hour: f64,
    /// The backend.
    pub backend: BackendSummary,
    /// The SLOs.
    pub slo: crate::config::SloConfig,
    /// Load stages as (start s, end s, qps); empty for an unstaged workload.
    pub stages: Vec<(f64, f64, f64)>,
    /// Front-end time per request, ns.
    pub frontend_ns: u64,
}

fn per_s(x: f64, t_s: f64) -> f64 {
    if t_s > 0.0 {
        x / t_s
    } else {
        0.0
    }
}

impl Summary {
    /// Builds the summary of a finished run.
    pub fn build(o: &EngineOutcome, facts: &ClusterFacts) -> Summary {
        let t_s = o.end_ns as f64 * 1e-9;
        let m = &o.metrics;
        let ns = 1e-9;
        let replicas = o
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let total = r.kv.num_blocks().max(1) as f64;
                let busy: u64 = r.stages.iter().map(|s| s.busy_ns).sum();
                ReplicaSummary {
                    replica_id: i as u32,
                    requests: r.requests,
                    busy_fraction: if o.end_ns > 0 {
                        busy as f64 / r.stages.len() as f64 / o.end_ns as f64
                    } else {
                        0.0
                    },
                    mfu: per_s(
                        r.flops,
                        t_s * facts.peak_flops_per_gpu * facts.gpus_per_replica as f64,
                    ),
                    kv_usage_mean: if o.end_ns > 0 {
                        r.kv_area as f64 / o.end_ns as f64 / total
                    } else {
                        0.0
                    },
                    kv_usage_max: r.kv.peak_allocated() as f64 / total,
                    kv_blocks_total: r.kv.num_blocks(),
                    batches: r.batches,
                    preemptions: r.restarts,
                    restarts: r.restarts,
                }
            })
            .collect();
        let gpus = facts.gpus_per_replica * o.replicas.len() as u32;
        let usd_per_hour = gpus as f64 * facts.usd_per_gpu_hour;
        let out_per_s = per_s(m.output_tokens as f64, t_s);
        Summary {
            servesim_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: facts.backend.clone(),
            requests: RequestCounts {
                arrived: o.arrived,
                completed: o.completed,
            },
            simulated_time_s: t_s,
            latency: Latency {
                ttft_s: m.ttft.stats(ns),
                tbt_s: m.tbt.stats(ns),
                tpot_s: m.tpot.stats(ns),
                e2e_s: m.e2e.stats(ns),
                e2e_normalized_s: m.e2e_normalized.stats(ns),
                scheduling_delay_s: m.scheduling_delay.stats(ns),
            },
            throughput: Throughput {
                requests_per_s: per_s(o.completed as f64, t_s),
                output_tokens_per_s: out_per_s,
                total_tokens_per_s: per_s(m.total_tokens as f64, t_s),
            },
            replicas,
            slo: facts.slo.any().then(|| SloSummary {
                ttft_s: facts.slo.ttft_s,
                tpot_s: facts.slo.tpot_s,
                e2e_s: facts.slo.e2e_s,
                met_requests: m.slo_met,
                attainment: if o.completed > 0 {
                    m.slo_met as f64 / o.completed as f64
                } else {
                    0.0
                },
                goodput_requests_per_s: per_s(m.slo_met as f64, t_s),
            }),
            cost: Cost {
                gpus,
                usd_per_hour,
                usd_per_million_output_tokens: if out_per_s > 0.0 {
                    usd_per_hour / 3600.0 / out_per_s * 1e6
                } else {
                    0.0
                },
            },
            prefix_cache: super::cache::PrefixCacheSummary::build(o),
            preemptions: super::cache::PreemptionSummary::build(o),
            stages: facts
                .stages
                .iter()
                .zip(&m.stages)
                .enumerate()
                .map(|(i, (&(start_s, end_s, qps), st))| StageSummary {
                    stage: i as u32,
                    start_s,
                    end_s,
                    qps,
                    ttft_s: st.ttft.stats(ns),
                    tpot_s: st.tpot.stats(ns),
                    e2e_s: st.e2e.stats(ns),
                })
                .collect(),
            frontend_s: facts.frontend_ns as f64 * ns,
            workload: None,
            load: None,
            notes: Vec::new(),
            pools: Vec::new(),
            kv_transfer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(requests: u64) -> ReplicaSummary {
        ReplicaSummary {
            replica_id: 0,
            requests,
            busy_fraction: 0.0,
            mfu: 0.0,
            kv_usage_mean: 0.0,
            kv_usage_max: 0.0,
            kv_blocks_total: 1,
            batches: 0,
            preemptions: 0,
            restarts: 0,
        }
    }

    #[test]
    fn request_imbalance_is_max_over_mean() {
        let r = |v: &[u64]| v.iter().map(|&n| replica(n)).collect::<Vec<_>>();
        assert_eq!(request_imbalance(&r(&[5, 5, 5, 5])), 1.0);
        // 8 of 16 requests on one of 4 replicas: 8 / 4 = 2.
        assert_eq!(request_imbalance(&r(&[8, 0, 4, 4])), 2.0);
        assert_eq!(request_imbalance(&r(&[0, 7, 0])), 3.0);
        assert_eq!(request_imbalance(&r(&[0, 0])), 0.0);
        assert_eq!(request_imbalance(&[]), 0.0);
    }
}
