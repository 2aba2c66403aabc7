//! `bench.json` (and `simulator run --json`): a run in the keys and units of
//! `vllm bench serve --save-result`, so scripts written for vLLM's serving benchmark read our
//! results. The keys, their order and their meanings follow vLLM's `vllm/benchmarks/serve.py`
//! as of [`VLLM_REFERENCE`]; docs/metrics.md lists them with what differs.
//!
//! Latencies are in milliseconds like vLLM's. Means and standard deviations are exact; medians and
//! percentiles interpolate between ranks as `numpy.percentile` does, from the run's log-bucketed
//! histograms, so they are within 0.1 % of the exact value.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::config::{SimConfig, SloConfig};
use crate::metrics::{LogHistogram, Metrics};
use crate::workload::ArrivalConfig;
use crate::Summary;

/// The vLLM source the keys were matched against.
pub const VLLM_REFERENCE: &str = "vllm-project/vllm, vllm/benchmarks/serve.py at commit 009e6d4a";

/// The latency metrics, as vLLM names them: (key part, what it is).
pub const METRICS: [(&str, &str); 4] = [
    ("ttft", "time to first token"),
    ("tpot", "time per output token after the first, per request"),
    (
        "itl",
        "inter-token latency: every gap between consecutive output tokens",
    ),
    ("e2el", "end-to-end latency"),
];

/// An ordered JSON object (vLLM writes its keys in a fixed order; so do we).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchResult {
    entries: Vec<(String, Value)>,
}

impl Serialize for BenchResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl BenchResult {
    fn put(&mut self, key: impl Into<String>, v: impl Into<Value>) {
        self.entries.push((key.into(), v.into()));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The number at `key`.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Pretty JSON text with a final newline (the content of `bench.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("bench results serialize") + "\n"
    }
}

/// vLLM's name of percentile `p` in a key: `99` for 99, `99.9` for 99.9.
pub fn percentile_key(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Checks a list of percentiles: at least one, each in [0, 100], no repeats.
pub fn check_percentiles(ps: &[f64]) -> Result<(), String> {
    if ps.is_empty() {
        return Err("give at least one percentile, e.g. 99 or 50,90,99".into());
    }
    for (i, &p) in ps.iter().enumerate() {
        if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
            return Err(format!("{p} is not a percentile in [0, 100]"));
        }
        if ps[..i].contains(&p) {
            return Err(format!("percentile {p} is listed twice"));
        }
    }
    Ok(())
}

/// A list of percentiles, as `--metric-percentiles` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentiles(pub Vec<f64>);

impl Percentiles {
    /// Parses vLLM's syntax: comma-separated, e.g. `25,50,99`.
    pub fn parse(text: &str) -> Result<Percentiles, String> {
        let ps = text
            .split(',')
            .map(|t| {
                t.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{}` is not a number (expected e.g. 50,90,99)", t.trim()))
            })
            .collect::<Result<Vec<f64>, String>>()?;
        check_percentiles(&ps)?;
        Ok(Percentiles(ps))
    }
}

/// A request-level metric `--goodput` can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodputMetric {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
    /// End-to-end latency.
    E2el,
}

/// Parses one `--goodput` pair, vLLM's `KEY:VALUE` with the value in milliseconds (`ttft:500`).
pub fn parse_goodput_pair(text: &str) -> Result<(GoodputMetric, f64), String> {
    let bad = || {
        format!(
            "`{text}` is not a KEY:MILLISECONDS pair; KEY is ttft, tpot or e2el (e.g. ttft:500)"
        )
    };
    let (k, v) = text.split_once(':').ok_or_else(bad)?;
    let metric = match k.trim() {
        "ttft" => GoodputMetric::Ttft,
        "tpot" => GoodputMetric::Tpot,
        "e2el" => GoodputMetric::E2el,
        _ => return Err(bad()),
    };
    let ms: f64 = v.trim().parse().map_err(|_| bad())?;
    if !(ms.is_finite() && ms >= 0.0) {
        return Err(format!(
            "`{text}`: the bound must be a non-negative number of milliseconds"
        ));
    }
    Ok((metric, ms))
}

/// Sets the SLOs of `--goodput` pairs (milliseconds) on `slo` (seconds); a later pair for the same
/// metric wins, as in vLLM.
pub fn apply_goodput(pairs: &[(GoodputMetric, f64)], slo: &mut SloConfig) {
    for &(m, ms) in pairs {
        let s = Some(ms / 1e3);
        match m {
            GoodputMetric::Ttft => slo.ttft_s = s,
            GoodputMetric::Tpot => slo.tpot_s = s,
            GoodputMetric::E2el => slo.e2e_s = s,
        }
    }
}

fn histogram<'a>(m: &'a Metrics, metric: &str) -> &'a LogHistogram {
    match metric {
        "ttft" => &m.ttft,
        "tpot" => &m.tpot,
        "itl" => &m.tbt,
        _ => &m.e2e,
    }
}

/// vLLM's `request_rate` and `burstiness` for the configured arrivals: the rate (`"inf"` when every
/// request arrives at 0, null for trace replays and sessions) and the gamma shape `1/cv²`.
fn traffic(cfg: &SimConfig) -> (Value, f64) {
    let w = &cfg.workload;
    if w.trace.is_some() || w.sessions.is_some() {
        return (Value::Null, 1.0);
    }
    match &w.arrival {
        ArrivalConfig::Poisson { qps } => (Value::from(*qps), 1.0),
        ArrivalConfig::Gamma { qps, cv } => (Value::from(*qps), 1.0 / (cv * cv)),
        ArrivalConfig::Static => (Value::from("inf"), 1.0),
        ArrivalConfig::Trace { .. } | ArrivalConfig::Stages { .. } => (Value::Null, 1.0),
    }
}

/// The vLLM-style result of a finished run.
pub fn build(cfg: &SimConfig, model_id: &str, summary: &Summary, m: &Metrics) -> BenchResult {
    let mut b = BenchResult::default();
    let (rate, burstiness) = traffic(cfg);
    let r = &summary.requests;
    let t = &summary.throughput;
    b.put("backend", "servesim");
    b.put("endpoint_type", "servesim");
    b.put("label", Value::Null);
    b.put("model_id", model_id);
    b.put("tokenizer_id", model_id);
    b.put("num_prompts", r.arrived);
    b.put("request_rate", rate);
    b.put("burstiness", burstiness);
    b.put("max_concurrency", Value::Null);
    b.put("duration", summary.simulated_time_s);
    b.put("completed", r.completed);
    b.put("failed", r.arrived.saturating_sub(r.completed));
    b.put("total_input_tokens", m.total_tokens - m.output_tokens);
    b.put("total_output_tokens", m.output_tokens);
    b.put("request_throughput", t.requests_per_s);
    b.put(
        "request_goodput",
        summary
            .slo
            .as_ref()
            .map_or(Value::Null, |s| Value::from(s.goodput_requests_per_s)),
    );
    b.put("output_throughput", t.output_tokens_per_s);
    b.put("total_token_throughput", t.total_tokens_per_s);
    let ms = 1e-6;
    for (name, _) in METRICS {
        let h = histogram(m, name);
        b.put(format!("mean_{name}_ms"), h.mean() * ms);
        b.put(
            format!("median_{name}_ms"),
            h.percentile_interpolated(50.0) * ms,
        );
        b.put(format!("std_{name}_ms"), h.std() * ms);
        for &p in &cfg.output.metric_percentiles {
            b.put(
                format!("p{}_{name}_ms", percentile_key(p)),
                h.percentile_interpolated(p) * ms,
            );
        }
    }
    b.put("servesim_version", env!("CARGO_PKG_VERSION"));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_keys_as_vllm_writes_them() {
        assert_eq!(percentile_key(99.0), "99");
        assert_eq!(percentile_key(99.9), "99.9");
        assert_eq!(percentile_key(0.5), "0.5");
        assert_eq!(
            Percentiles::parse("25, 50,99.9").unwrap().0,
            vec![25.0, 50.0, 99.9]
        );
        for bad in ["", "abc", "101", "-1", "50,50"] {
            assert!(Percentiles::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn goodput_pairs_in_milliseconds() {
        let pairs: Vec<_> = ["ttft:500", "tpot:50", "e2el:2500", "ttft:400"]
            .iter()
            .map(|p| parse_goodput_pair(p).unwrap())
            .collect();
        let mut slo = SloConfig::default();
        apply_goodput(&pairs, &mut slo);
        assert_eq!(slo.ttft_s, Some(0.4), "the later pair wins");
        assert_eq!(slo.tpot_s, Some(0.05));
        assert_eq!(slo.e2e_s, Some(2.5));
        for bad in ["ttft", "itl:5", "ttft:x", "ttft:-1", "e2e:5"] {
            let e = parse_goodput_pair(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
