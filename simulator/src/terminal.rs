//! The one-screen summary `simulator run` prints: the deployment, the workload and the overload
//! verdict first, then throughput, latency (milliseconds, as `vllm bench serve` prints them),
//! utilisation, prefix caching and preemptions when they apply, goodput and cost.

use simulator::config::SimConfig;
use simulator::describe::{headline, plural, workload};
use simulator::metrics::load::LoadStatus;
use simulator::SimOutcome;

/// Prints the summary of a finished run.
pub fn print_summary(cfg: &SimConfig, o: &SimOutcome) {
    let s = &o.summary;
    let l = &s.latency;
    // The model by its full catalog name, as config.toml has it.
    let mut named = cfg.clone();
    if let Some(m) = o.bench.get("model_id").and_then(|v| v.as_str()) {
        named.replica.model = m.to_string();
    }
    println!("{}", headline(&named));
    println!(
        "execution backend: {} ({}){}",
        s.backend.kind,
        s.backend.source,
        if s.backend.fallbacks.is_empty() {
            String::new()
        } else {
            format!("; fallbacks: {}", s.backend.fallbacks.join(", "))
        }
    );
    if s.backend.out_of_grid_lookups > 0 {
        println!(
            "note: {} predictions fell outside the profiled grid and were extrapolated",
            s.backend.out_of_grid_lookups
        );
    }
    if let Some(w) = &s.workload {
        println!("workload: {}", workload(cfg, w));
    }
    if let Some(v) = &s.load {
        match v.status {
            LoadStatus::Overloaded => {
                println!("load: OVERLOADED, the deployment did not keep up:");
                for r in &v.reasons {
                    println!("  - {r}");
                }
            }
            status => println!(
                "load: {}{}",
                status.label(),
                v.served_fraction
                    .map(|f| format!(
                        ", served {:.2} req/s ({:.0} % of the offered rate)",
                        s.throughput.requests_per_s,
                        f * 100.0
                    ))
                    .unwrap_or_default()
            ),
        }
        for n in &v.notes {
            println!("  note: {n}");
        }
    }
    println!(
        "requests: {} arrived, {} completed in {:.1} s simulated ({:.2} s wall, {:.0} simulated requests/s)",
        s.requests.arrived,
        s.requests.completed,
        s.simulated_time_s,
        o.wall_time_s,
        s.requests.completed as f64 / o.wall_time_s.max(1e-9)
    );
    for note in &s.notes {
        println!("note: {note}");
    }
    println!(
        "throughput: {:.2} req/s, {:.0} output tokens/s, {:.0} total tokens/s",
        s.throughput.requests_per_s,
        s.throughput.output_tokens_per_s,
        s.throughput.total_tokens_per_s
    );
    println!("latency (ms)               mean        p50        p90        p99        max");
    for (name, st) in [
        ("TTFT", &l.ttft_s),
        ("TPOT", &l.tpot_s),
        ("ITL (every gap)", &l.tbt_s),
        ("E2E", &l.e2e_s),
        ("scheduling delay", &l.scheduling_delay_s),
    ] {
        println!(
            "  {name:<18} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            st.mean * 1e3,
            st.p50 * 1e3,
            st.p90 * 1e3,
            st.p99 * 1e3,
            st.max * 1e3
        );
    }
    for r in &s.replicas {
        println!(
            "replica {}: {}, busy {:.0} %, MFU {:.1} %, KV cache {} (mean use {:.0} %, peak {:.0} %), {} batches, {}",
            r.replica_id,
            plural(r.requests, "request"),
            r.busy_fraction * 100.0,
            r.mfu * 100.0,
            plural(r.kv_blocks_total, "block"),
            r.kv_usage_mean * 100.0,
            r.kv_usage_max * 100.0,
            r.batches,
            plural(r.preemptions, "preemption")
        );
    }
    if s.replicas.len() > 1 {
        let n = s.replicas.len() as f64;
        let mean = |f: fn(&simulator::metrics::summary::ReplicaSummary) -> f64| {
            s.replicas.iter().map(f).sum::<f64>() / n
        };
        println!(
            "cluster ({} replicas): requests per replica max/mean {:.2}, busy {:.0} %, MFU {:.1} %, KV mean use {:.0} %, peak {:.0} % (highest replica), {} batches, {}",
            s.replicas.len(),
            simulator::metrics::summary::request_imbalance(&s.replicas),
            mean(|r| r.busy_fraction) * 100.0,
            mean(|r| r.mfu) * 100.0,
            mean(|r| r.kv_usage_mean) * 100.0,
            s.replicas.iter().map(|r| r.kv_usage_max).fold(0.0, f64::max) * 100.0,
            s.replicas.iter().map(|r| r.batches).sum::<u64>(),
            plural(s.replicas.iter().map(|r| r.preemptions).sum(), "preemption")
        );
    }
    let pc = &s.prefix_cache;
    if pc.enabled {
        println!(
            "prefix cache: {:.1} % of prompt tokens served from the cache ({:.1} % of blocks), {:.1} % of requests reused a block, {}",
            pc.token_hit_rate * 100.0,
            pc.block_hit_rate * 100.0,
            pc.request_hit_rate * 100.0,
            plural(pc.evictions, "eviction")
        );
    }
    let p = &s.preemptions;
    if p.total > 0 {
        println!(
            "preemptions: {} in all, {} ({:.1} % of requests) preempted at least once, at most {} times one request",
            p.total,
            plural(p.preempted_requests, "request"),
            p.preempted_requests as f64 * 100.0 / s.requests.arrived.max(1) as f64,
            p.per_request_max
        );
    }
    if let Some(slo) = &s.slo {
        let limits: Vec<String> = [
            ("TTFT", slo.ttft_s),
            ("TPOT", slo.tpot_s),
            ("E2E", slo.e2e_s),
        ]
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} ≤ {} ms", v * 1e3)))
        .collect();
        println!(
            "SLOs ({}): met by {:.1} % of requests; goodput {:.2} req/s",
            limits.join(", "),
            slo.attainment * 100.0,
            slo.goodput_requests_per_s
        );
    }
    println!(
        "cost: {} at ${:.2}/h, ${:.2} per million output tokens",
        plural(u64::from(s.cost.gpus), "GPU"),
        s.cost.usd_per_hour,
        s.cost.usd_per_million_output_tokens
    );
    if let Some(dir) = &o.out_dir {
        let report = dir.join("report.html");
        if report.is_file() {
            println!("outputs: {} (open {})", dir.display(), report.display());
        } else {
            println!("outputs: {}", dir.display());
        }
    }
}
