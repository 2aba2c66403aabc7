//! Streaming metrics: latency histograms over requests and output tokens, counters, and the
//! FLOP model behind MFU. Memory does not grow with the number of requests or tokens.

pub mod cache;
pub mod histogram;
pub mod load;
pub mod miss_watch;
pub mod pools;
pub mod summary;

use predictor::{BatchShape, ModelSpec};

use crate::config::SloConfig;
use crate::request::Request;
pub use histogram::{LogHistogram, Stats};
pub use miss_watch::MissWatch;

/// Model FLOPs of a batch (docs/design.md §8, over the whole replica): 2 per weight per token for the
/// transformer layers, plus causal attention `4·L·Hq·d·n·(n + cached)` per request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlopModel {
    /// FLOPs per token of the linear layers (all layers, whole model).
    pub linear_per_token: f64,
    /// `4·L·Hq·d`.
    pub attention_coef: f64,
}

impl FlopModel {
    /// The FLOP model of `model`.
    pub fn new(model: &ModelSpec) -> Self {
        let layers = model.num_hidden_layers as f64;
        FlopModel {
            linear_per_token: 2.0 * layers * model.params_per_layer_per_device(1) as f64,
            attention_coef: 4.0
                * layers
                * model.num_attention_heads as f64
                * model.head_dim() as f64,
        }
    }

    /// FLOPs of `batch`.
    pub fn flops(&self, b: &BatchShape) -> f64 {
        let attn = b.prefill_chunk_sq_sum
            + b.prefill_chunk_kv_sum
            + b.num_decodes as u64
            + b.decode_kv_sum;
        self.linear_per_token * b.total_tokens() as f64 + self.attention_coef * attn as f64
    }
}

/// The per-request latencies the metrics record when a request finishes, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLatencies {
    /// Time to first token.
    pub ttft_ns: u64,
    /// End-to-end latency.
    pub e2e_ns: u64,
    /// Arrival to first batch.
    pub scheduling_delay_ns: u64,
    /// Time per output token after the first (requests of one output token have none).
    pub tpot_ns: Option<u64>,
}

/// The latencies of finished request `r` (front-end time included), ns.
pub fn latencies(r: &Request) -> RequestLatencies {
    let done = r.completed_at_ns.unwrap_or(0);
    let first = r.first_token_at_ns.unwrap_or(done);
    let sched = r.scheduled_at_ns.unwrap_or(done);
    RequestLatencies {
        ttft_ns: first + r.frontend_ns - r.arrived_at_ns,
        e2e_ns: done + r.frontend_ns - r.arrived_at_ns,
        scheduling_delay_ns: sched - r.arrived_at_ns,
        tpot_ns: (r.decode_tokens > 1)
            .then(|| ((done - first) as f64 / (r.decode_tokens - 1) as f64).round() as u64),
    }
}

/// Latency distributions and totals over finished requests.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Time to first token, ns.
    pub ttft: LogHistogram,
    /// Every gap between consecutive output tokens, ns.
    pub tbt: LogHistogram,
    /// Time per output token after the first, ns (requests with more than one output token).
    pub tpot: LogHistogram,
    /// End-to-end latency, ns.
    pub e2e: LogHistogram,
    /// End-to-end latency per output token, ns.
    pub e2e_normalized: LogHistogram,
    /// Arrival to first batch, ns.
    pub scheduling_delay: LogHistogram,
    /// Output tokens of finished requests.
    pub output_tokens: u64,
    /// Prompt plus output tokens of finished requests.
    pub total_tokens: u64,
    /// Finished requests meeting every SLO given.
    pub slo_met: u64,
    /// Prefix-cache and preemption totals of finished requests.
    pub cache: cache::RequestCacheTotals,
    /// TTFT against arrival time, for the overload verdict ([`load::judge`]); filled as requests
    /// retire ([`Metrics::on_retire`]).
    pub ttft_trend: load::Trend,
    /// Per load stage of a staged workload, by arrival time (empty otherwise).
    pub stages: Vec<StageMetrics>,
    /// End of each load stage, ns.
    pub stage_ends_ns: Vec<u64>,
    /// KV transfers of disaggregated serving.
    pub transfers: TransferMetrics,
}

/// KV transfers of disaggregated serving, over completed requests that had one.
#[derive(Debug, Clone, Default)]
pub struct TransferMetrics {
    /// Transfers.
    pub count: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Time from the prefill's end to the transfer's end, ns.
    pub after_prefill: LogHistogram,
    /// Time from the transfer's start to its end, ns.
    pub duration: LogHistogram,
    /// Time from the prefill's end to the transfer's start (waiting for decode memory), ns; 0 for
    /// transfers started before the prefill ended.
    pub wait: LogHistogram,
}

impl TransferMetrics {
    /// Records the transfer of `r`, if it had one.
    pub fn record(&mut self, r: &Request) {
        let (Some(start), Some(end), Some(first)) = (
            r.kv_transfer_start_ns,
            r.kv_transfer_end_ns,
            r.first_token_at_ns,
        ) else {
            return;
        };
        self.count += 1;
        self.bytes += r.kv_transfer_bytes;
        self.after_prefill.record(end - first);
        self.duration.record(end - start);
        self.wait.record(start.saturating_sub(first));
    }
}

/// Latencies of the requests that arrived during one load stage.
#[derive(Debug, Clone, Default)]
pub struct StageMetrics {
    /// Time to first token, ns.
    pub ttft: LogHistogram,
    /// Time per output token, ns.
    pub tpot: LogHistogram,
    /// End-to-end latency, ns.
    pub e2e: LogHistogram,
}

impl Metrics {
    /// Metrics that also break latencies down by the load stages ending at `stage_ends_ns`.
    pub fn with_stages(stage_ends_ns: Vec<u64>) -> Self {
        Metrics {
            stages: vec![StageMetrics::default(); stage_ends_ns.len()],
            stage_ends_ns,
            ..Default::default()
        }
    }

    /// Records a request leaving the run (retired, in request-id order): a finished one adds its
    /// point to [`Metrics::ttft_trend`]. In id order rather than completion order, so the trend's
    /// floating-point sums do not depend on how replicas interleave (parallel runs, issue 17).
    pub fn on_retire(&mut self, r: &Request) {
        if r.completed {
            let ttft = latencies(r).ttft_ns;
            self.ttft_trend
                .add(r.arrived_at_ns as f64 * 1e-9, ttft as f64 * 1e-9);
        }
    }

    /// Adds the distributions and totals of `other`, a run over other replicas of the same
    /// workload (same load stages), except its TTFT trend, which follows request order and is
    /// kept by whoever retires the requests ([`Metrics::on_retire`]).
    pub fn merge(&mut self, other: &Metrics) {
        self.ttft.merge(&other.ttft);
        self.tbt.merge(&other.tbt);
        self.tpot.merge(&other.tpot);
        self.e2e.merge(&other.e2e);
        self.e2e_normalized.merge(&other.e2e_normalized);
        self.scheduling_delay.merge(&other.scheduling_delay);
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
        self.slo_met += other.slo_met;
        self.cache.merge(&other.cache);
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            a.ttft.merge(&b.ttft);
            a.tpot.merge(&b.tpot);
            a.e2e.merge(&b.e2e);
        }
        self.transfers.count += other.transfers.count;
        self.transfers.bytes += other.transfers.bytes;
        self.transfers
            .after_prefill
            .merge(&other.transfers.after_prefill);
        self.transfers.duration.merge(&other.transfers.duration);
        self.transfers.wait.merge(&other.transfers.wait);
    }

    /// Records a finished request.
    pub fn on_complete(&mut self, r: &Request, slo: &SloConfig) -> RequestLatencies {
        let l = latencies(r);
        let (ttft, e2e, tpot_ns) = (l.ttft_ns, l.e2e_ns, l.tpot_ns);
        self.ttft.record(ttft);
        self.e2e.record(e2e);
        self.e2e_normalized
            .record((e2e as f64 / r.decode_tokens as f64).round() as u64);
        self.scheduling_delay.record(l.scheduling_delay_ns);
        self.transfers.record(r);
        let stage = if self.stage_ends_ns.is_empty() {
            None
        } else {
            let i = self
                .stage_ends_ns
                .partition_point(|&e| e <= r.arrived_at_ns);
            self.stages.get_mut(i.min(self.stage_ends_ns.len() - 1))
        };
        let mut tpot_s = None;
        if let Some(st) = stage {
            st.ttft.record(ttft);
            st.e2e.record(e2e);
            if let Some(t) = tpot_ns {
                st.tpot.record(t);
            }
        }
        if let Some(tpot) = tpot_ns {
            self.tpot.record(tpot);
            tpot_s = Some(tpot as f64 * 1e-9);
        }
        self.cache.record(r);
        self.output_tokens += r.decode_tokens as u64;
        self.total_tokens += r.total_tokens() as u64;
        if slo.any() {
            let ok = slo.ttft_s.is_none_or(|b| ttft as f64 * 1e-9 <= b)
                && slo.e2e_s.is_none_or(|b| e2e as f64 * 1e-9 <= b)
                && slo.tpot_s.is_none_or(|b| tpot_s.is_none_or(|t| t <= b));
            if ok {
                self.slo_met += 1;
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::RequestSpec;

    #[test]
    fn request_metrics_and_slo() {
        let mut r = Request::new(0, 0, &RequestSpec::simple(1_000_000_000, 10, 3));
        r.on_schedule(1_500_000_000);
        r.on_batch_end(2_000_000_000, 10, 0);
        r.on_batch_end(2_100_000_000, 1, 0);
        r.on_batch_end(2_300_000_000, 1, 0);
        let slo = SloConfig {
            ttft_s: Some(1.0),
            tpot_s: Some(0.1),
            e2e_s: None,
        };
        let mut m = Metrics::default();
        m.on_complete(&r, &slo);
        assert_eq!(m.ttft.max(), 1_000_000_000);
        assert_eq!(m.tpot.max(), 150_000_000);
        assert_eq!(m.scheduling_delay.max(), 500_000_000);
        assert_eq!(m.slo_met, 0, "tpot 0.15 s misses the 0.1 s SLO");
        assert_eq!((m.output_tokens, m.total_tokens), (3, 13));
    }

    #[test]
    fn flops_of_one_prefill() {
        let cat = predictor::Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        let f = FlopModel::new(&m);
        let mut b = BatchShape::new();
        b.add_prefill(100, 0);
        let expect = 2.0 * 32.0 * m.params_per_layer_per_device(1) as f64 * 100.0
            + 4.0 * 32.0 * 32.0 * 128.0 * 100.0 * 100.0;
        assert!((f.flops(&b) - expect).abs() < 1.0);
    }
}
