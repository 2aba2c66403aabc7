//! Plain-English descriptions of a configuration and its workload, shared by the terminal summary
//! and the report's first screen.

use crate::config::SimConfig;
use crate::metrics::load::WorkloadFacts;
use crate::workload::ArrivalConfig;

/// `1 GPU`, `8 GPUs`.
pub fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `Meta-Llama-3-8B on 2 replicas of 8 h100 GPUs (TP4 × PP2), 16 GPUs in all`.
pub fn deployment(cfg: &SimConfig) -> String {
    let r = &cfg.replica;
    let n = u64::from(cfg.cluster.num_replicas);
    let per = u64::from(r.tp * r.pp);
    let mut s = format!(
        "{} on {} of {} (TP{} × PP{})",
        r.model,
        plural(n, "replica"),
        plural(per, &format!("{} GPU", r.device)),
        r.tp,
        r.pp
    );
    if n > 1 {
        s.push_str(&format!(", {} in all", plural(n * per, "GPU")));
    }
    s
}

/// The router's configuration name (`round_robin`), with its weights for `kv_aware`
/// (`kv_aware (overlap 16, load 1)`).
pub fn router(cfg: &SimConfig) -> String {
    let name = serde_json::to_value(cfg.cluster.router)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if cfg.cluster.router == crate::router::RouterKind::KvAware {
        let w = cfg.cluster.kv_aware;
        format!(
            "{name} (overlap {}, load {})",
            w.overlap_weight, w.load_weight
        )
    } else {
        name
    }
}

/// The deployment with its scheduler and router, the summary's first line. With pools, one
/// clause per pool (`prefill pool: 2 replicas of 1 h100 GPU (TP1 × PP1), vllm_v1, round_robin`)
/// and the KV transfer mode.
pub fn headline(cfg: &SimConfig) -> String {
    if !cfg.cluster.pools.is_empty() {
        let pools: Vec<String> = (0..cfg.cluster.pools.len())
            .filter_map(|i| {
                let c = cfg.pool_config(i).ok()?;
                let d = deployment(&c);
                let layout = d
                    .strip_prefix(&format!("{} on ", c.replica.model))
                    .unwrap_or(&d);
                Some(format!(
                    "{} pool: {layout}, {} scheduler, {} router",
                    cfg.cluster.pools[i].role.name(),
                    c.scheduler.name,
                    router(&c)
                ))
            })
            .collect();
        return format!(
            "{}: {}; KV transfer {}",
            cfg.replica.model,
            pools.join("; "),
            cfg.cluster.kv_transfer.mode.name()
        );
    }
    format!(
        "{}: {} scheduler, {} router",
        deployment(cfg),
        cfg.scheduler.name,
        router(cfg)
    )
}

/// How requests arrive, from the configuration (`Poisson at 6 req/s`).
pub fn arrivals(cfg: &SimConfig) -> String {
    let w = &cfg.workload;
    if let Some(t) = &w.trace {
        return format!("replayed from {}", t.file.display());
    }
    let per = if w.sessions.is_some() {
        "sessions/s"
    } else {
        "req/s"
    };
    match &w.arrival {
        ArrivalConfig::Poisson { qps } => format!("Poisson at {} {per}", given(*qps)),
        ArrivalConfig::Gamma { qps, cv } => {
            format!("gamma at {} {per}, CV {}", given(*qps), given(*cv))
        }
        ArrivalConfig::Static => "all at time 0".to_string(),
        ArrivalConfig::Trace { trace_file, .. } => {
            format!("arrival times from {}", trace_file.display())
        }
        ArrivalConfig::Stages { stages } => format!(
            "Poisson in stages of {}",
            stages
                .iter()
                .map(|s| format!("{} {per} for {} s", given(s.qps), given(s.duration_s)))
                .collect::<Vec<_>>()
                .join(", then ")
        ),
    }
}

/// A value the user gave, as given (`6`, `0.25`), or in exponent form when plain digits would
/// run long (`1e-300`, `2.5e20`).
fn given(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) || !a.is_finite() {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// `1000 requests over 167.9 s (Poisson at 6 req/s, offered 5.96 req/s); prompts 1024 and outputs 256 tokens on average`.
pub fn workload(cfg: &SimConfig, w: &WorkloadFacts) -> String {
    let offered = w
        .offered_rate_per_s
        .map(|r| format!(", offered {r:.2} req/s"))
        .unwrap_or_default();
    format!(
        "{} over {:.1} s ({}{offered}); prompts {:.0} and outputs {:.0} tokens on average (longest {} and {})",
        plural(w.requests, "request"),
        w.last_arrival_s - w.first_arrival_s,
        arrivals(cfg),
        w.prompt_tokens_mean,
        w.output_tokens_mean,
        w.prompt_tokens_max,
        w.output_tokens_max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_values_stay_short() {
        assert_eq!(given(6.0), "6");
        assert_eq!(given(0.25), "0.25");
        assert_eq!(given(0.0001), "0.0001");
        assert_eq!(given(1e-300), "1e-300");
        assert_eq!(given(2.5e20), "2.5e20");
        assert_eq!(given(0.0), "0");
    }

    #[test]
    fn deployment_counts_gpus_per_replica_and_in_all() {
        let mut c = SimConfig::default();
        assert_eq!(
            deployment(&c),
            "meta-llama/Meta-Llama-3-8B on 1 replica of 1 h100 GPU (TP1 × PP1)"
        );
        c.replica.tp = 4;
        c.replica.pp = 2;
        c.cluster.num_replicas = 2;
        assert_eq!(
            deployment(&c),
            "meta-llama/Meta-Llama-3-8B on 2 replicas of 8 h100 GPUs (TP4 × PP2), 16 GPUs in all"
        );
        assert_eq!(arrivals(&c), "Poisson at 6 req/s");
    }

    #[test]
    fn router_names_kv_aware_weights() {
        let mut c = SimConfig::default();
        assert_eq!(router(&c), "round_robin");
        c.cluster.router = crate::router::RouterKind::PowerOfTwo;
        assert_eq!(router(&c), "power_of_two");
        c.cluster.router = crate::router::RouterKind::KvAware;
        c.cluster.kv_aware.load_weight = 0.5;
        assert_eq!(router(&c), "kv_aware (overlap 16, load 0.5)");
    }

    #[test]
    fn a_disaggregated_headline_names_each_pool() {
        let c = SimConfig::from_toml("[[cluster.pool]]\nrole = \"prefill\"\nreplicas = 2\n[[cluster.pool]]\nrole = \"decode\"\nreplicas = 3\ntp = 2\n[cluster.kv_transfer]\nmode = \"layerwise\"\n").unwrap();
        assert_eq!(
            headline(&c),
            "meta-llama/Meta-Llama-3-8B: prefill pool: 2 replicas of 1 h100 GPU (TP1 × PP1), 2 GPUs in all, vllm_v1 scheduler, round_robin router; decode pool: 3 replicas of 2 h100 GPUs (TP2 × PP1), 6 GPUs in all, vllm_v1 scheduler, round_robin router; KV transfer layerwise"
        );
    }
}
