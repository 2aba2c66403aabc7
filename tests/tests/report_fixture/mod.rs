//! A synthetic run directory that follows `docs/outputs.md` exactly, for the report tests (and the
//! `report_fixture` example that writes one to look at).
//!
//! A toy continuous-batching model produces plausible data: Poisson arrivals routed round-robin,
//! each replica admitting queued requests up to a batch cap, one iteration costing a fixed overhead
//! plus a per-token time, split over the 15 operators in fixed shares. It is not the simulator: it
//! only has to produce files with the right columns and realistic shapes.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;

/// Operator columns in the documented order, with the share of an iteration each gets.
const OPS: [(&str, f64); 15] = [
    ("attn_pre_proj", 0.12),
    ("attn_post_proj", 0.05),
    ("attn_rope", 0.02),
    ("attn_kv_cache_save", 0.01),
    ("attn_prefill", 0.10),
    ("attn_decode", 0.14),
    ("input_layernorm", 0.02),
    ("post_attention_layernorm", 0.02),
    ("mlp_up_proj", 0.22),
    ("mlp_act", 0.03),
    ("mlp_down_proj", 0.12),
    ("add", 0.02),
    ("all_reduce", 0.0),
    ("send_recv", 0.0),
    ("cpu_overhead", 0.13),
];

/// Deterministic 64-bit generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One timeseries row: (time, queued, running, KV blocks used, completed, batches, busy).
type Sample = (f64, usize, usize, u64, u64, u64, f64);

struct Req {
    arrived: f64,
    scheduled: Option<f64>,
    first_token: Option<f64>,
    completed: Option<f64>,
    prefill: u32,
    decode: u32,
    done_decode: u32,
    last_token: f64,
    gaps: Vec<f64>,
    exec: f64,
}

/// Writes a run directory with `n_requests` requests over `n_replicas` replicas.
pub fn write_run(dir: &Path, n_requests: usize, n_replicas: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(seed);
    let rate_per_s = 3.2 * n_replicas as f64;
    let mut t = 0.0;
    let mut reqs: Vec<Req> = (0..n_requests)
        .map(|_| {
            t += -(1.0 - rng.next()).ln() / rate_per_s;
            Req {
                arrived: t,
                scheduled: None,
                first_token: None,
                completed: None,
                prefill: 64 + (rng.next() * 1900.0) as u32,
                decode: 1 + (rng.next() * rng.next() * 500.0) as u32,
                done_decode: 0,
                last_token: 0.0,
                gaps: Vec::new(),
                exec: 0.0,
            }
        })
        .collect();
    let kv_total = 4096u64;
    let mut batches = String::from("batch_id,replica_id,stage,start_s,end_s,size,prefill_requests,decode_requests,prefill_tokens,decode_tokens,total_tokens,kv_blocks_used");
    for (op, _) in OPS {
        let _ = write!(batches, ",{op}_ms");
    }
    batches.push('\n');
    let mut batch_rows: Vec<(f64, String)> = Vec::new();
    // Samples per replica: (time, queued, running, kv used, completed, batches, busy).
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    let mut busy_total = vec![0.0; n_replicas];
    let mut batch_count = vec![0u64; n_replicas];
    for rep in 0..n_replicas {
        let mine: Vec<usize> = (rep..n_requests).step_by(n_replicas).collect();
        let mut next = 0;
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut running: Vec<usize> = Vec::new();
        let mut now = 0.0;
        let mut sample_at = 1.0;
        let mut cur = (0u64, 0u64, 0.0f64);
        let mut rep_samples = Vec::new();
        loop {
            while next < mine.len() && reqs[mine[next]].arrived <= now {
                queue.push_back(mine[next]);
                next += 1;
            }
            if running.is_empty() && queue.is_empty() {
                if next >= mine.len() {
                    break;
                }
                now = reqs[mine[next]].arrived;
                continue;
            }
            let kv_used = |running: &Vec<usize>, reqs: &Vec<Req>| -> u64 {
                running
                    .iter()
                    .map(|&i| (reqs[i].prefill + reqs[i].done_decode) as u64 / 16 + 1)
                    .sum()
            };
            let mut new = Vec::new();
            while let Some(&q) = queue.front() {
                if running.len() + new.len() >= 12
                    || kv_used(&running, &reqs) + (reqs[q].prefill as u64 + 500) / 16 > kv_total
                {
                    break;
                }
                new.push(queue.pop_front().unwrap());
            }
            let prefill_tokens: u64 = new.iter().map(|&i| reqs[i].prefill as u64).sum();
            let decode_tokens = running.len() as u64;
            let tokens = prefill_tokens + decode_tokens;
            let dur = 0.012 + 0.00006 * tokens as f64 + 0.0002 * running.len() as f64;
            let start = now;
            now += dur;
            let kv = kv_used(&running, &reqs);
            let mut row = format!(
                "{},{rep},0,{start:.6},{now:.6},{},{},{},{prefill_tokens},{decode_tokens},{tokens},{kv}",
                0,
                new.len() + running.len(),
                new.len(),
                running.len()
            );
            for (_, share) in OPS {
                let _ = write!(row, ",{:.6}", dur * 1e3 * share);
            }
            batch_rows.push((now, row));
            busy_total[rep] += dur;
            batch_count[rep] += 1;
            cur.1 += 1;
            cur.2 += dur;
            for &i in &new {
                let r = &mut reqs[i];
                r.scheduled = Some(start);
                r.first_token = Some(now);
                r.last_token = now;
                r.done_decode = 1;
                r.exec += dur;
            }
            for &i in &running {
                let r = &mut reqs[i];
                r.gaps.push(now - r.last_token);
                r.last_token = now;
                r.done_decode += 1;
                r.exec += dur;
            }
            running.extend(new);
            running.retain(|&i| {
                let r = &mut reqs[i];
                if r.done_decode >= r.decode {
                    r.completed = Some(now);
                    cur.0 += 1;
                    false
                } else {
                    true
                }
            });
            while now >= sample_at {
                rep_samples.push((
                    sample_at,
                    queue.len(),
                    running.len(),
                    kv_used(&running, &reqs),
                    cur.0,
                    cur.1,
                    cur.2.min(1.0),
                ));
                cur = (0, 0, 0.0);
                sample_at += 1.0;
            }
        }
        rep_samples.push((sample_at, 0, 0, 0, cur.0, cur.1, cur.2.min(1.0)));
        samples.push(rep_samples);
    }
    batch_rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (id, (_, row)) in batch_rows.iter().enumerate() {
        let rest = row.split_once(',').unwrap().1;
        let _ = writeln!(batches, "{id},{rest}");
    }
    std::fs::write(dir.join("batches.csv"), batches).unwrap();

    let mut ts = String::from("time_s,replica_id,queued_requests,running_requests,kv_blocks_used,kv_blocks_total,completed_requests,batches,busy_fraction\n");
    let n_samples = samples.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..n_samples {
        for (rep, s) in samples.iter().enumerate() {
            let (time, q, run, kv, done, b, busy) =
                s.get(k)
                    .copied()
                    .unwrap_or((k as f64 + 1.0, 0, 0, 0, 0, 0, 0.0));
            let _ = writeln!(
                ts,
                "{time:.3},{rep},{q},{run},{kv},{kv_total},{done},{b},{busy:.4}"
            );
        }
    }
    std::fs::write(dir.join("timeseries.csv"), ts).unwrap();

    let mut rq = String::from("request_id,replica_id,arrived_at_s,scheduled_at_s,first_token_at_s,completed_at_s,prefill_tokens,decode_tokens,cached_prefill_tokens,ttft_s,tbt_mean_s,tbt_max_s,tpot_s,e2e_s,e2e_normalized_s,scheduling_delay_s,execution_time_s,preemption_time_s,num_preemptions,num_restarts\n");
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    let mut cols: [Vec<f64>; 6] = Default::default();
    for (i, r) in reqs.iter().enumerate() {
        let (s, f, c) = (
            r.scheduled.unwrap(),
            r.first_token.unwrap(),
            r.completed.unwrap(),
        );
        let many = r.decode > 1;
        let tbt_mean = many.then(|| r.gaps.iter().sum::<f64>() / r.gaps.len() as f64);
        let tbt_max = many.then(|| r.gaps.iter().copied().fold(0.0, f64::max));
        let tpot = many.then(|| (c - f) / (r.decode - 1) as f64);
        let e2e = c - r.arrived;
        let _ = writeln!(
            rq,
            "{i},{},{:.6},{s:.6},{f:.6},{c:.6},{},{},0,{:.6},{},{},{},{e2e:.6},{:.6},{:.6},{:.6},{:.6},0,0",
            i % n_replicas,
            r.arrived,
            r.prefill,
            r.decode,
            f - r.arrived,
            opt(tbt_mean),
            opt(tbt_max),
            opt(tpot),
            e2e / r.decode as f64,
            s - r.arrived,
            r.exec,
            (c - s - r.exec).max(0.0),
        );
        cols[0].push(f - r.arrived);
        cols[1].extend(&r.gaps);
        if let Some(x) = tpot {
            cols[2].push(x);
        }
        cols[3].push(e2e);
        cols[4].push(e2e / r.decode as f64);
        cols[5].push(s - r.arrived);
    }
    std::fs::write(dir.join("requests.csv"), rq).unwrap();
    // itl_histogram.csv: every gap, counted per microsecond value.
    let mut itl: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for g in &cols[1] {
        *itl.entry((g * 1e6).round() as u64).or_default() += 1;
    }
    let mut it = String::from("itl_s,gaps\n");
    for (us, n) in itl {
        let _ = writeln!(it, "{}.{:06},{n}", us / 1_000_000, us % 1_000_000);
    }
    std::fs::write(dir.join("itl_histogram.csv"), it).unwrap();

    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        serde_json::json!({"count": v.len(), "mean": v.iter().sum::<f64>() / v.len() as f64,
            "p50": p(0.5), "p90": p(0.9), "p95": p(0.95), "p99": p(0.99), "max": p(1.0)})
    };
    let end = reqs.iter().filter_map(|r| r.completed).fold(0.0, f64::max);
    let last_arrival = reqs.iter().map(|r| r.arrived).fold(0.0, f64::max);
    let out_tokens: u64 = reqs.iter().map(|r| r.decode as u64).sum();
    let all_tokens: u64 = reqs.iter().map(|r| (r.prefill + r.decode) as u64).sum();
    let ttft_met = cols[0].iter().filter(|&&x| x <= 2.0).count();
    let [c0, c1, c2, c3, c4, c5] = &mut cols;
    let summary = serde_json::json!({
        "servesim_version": "0.1.0",
        "backend": {"kind": "roofline", "source": "synthetic report fixture", "fallbacks": [], "out_of_grid_lookups": 0},
        "requests": {"arrived": n_requests, "completed": n_requests},
        "simulated_time_s": end,
        "wall_time_s": 0.05,
        "latency": {"ttft_s": stats(c0), "tbt_s": stats(c1), "tpot_s": stats(c2), "e2e_s": stats(c3),
                    "e2e_normalized_s": stats(c4), "scheduling_delay_s": stats(c5)},
        "throughput": {"requests_per_s": n_requests as f64 / end, "output_tokens_per_s": out_tokens as f64 / end,
                       "total_tokens_per_s": all_tokens as f64 / end},
        "replicas": (0..n_replicas).map(|r| serde_json::json!({
            "replica_id": r, "busy_fraction": busy_total[r] / end, "mfu": 0.3 * busy_total[r] / end,
            "kv_usage_mean": 0.4, "kv_usage_max": 0.9, "kv_blocks_total": kv_total,
            "batches": batch_count[r], "preemptions": 0, "restarts": 0})).collect::<Vec<_>>(),
        "slo": {"ttft_s": 2.0, "tpot_s": null, "e2e_s": null, "met_requests": ttft_met,
                "attainment": ttft_met as f64 / n_requests as f64,
                "goodput_requests_per_s": ttft_met as f64 / end},
        "cost": {"gpus": n_replicas, "usd_per_hour": 4.25 * n_replicas as f64,
                 "usd_per_million_output_tokens": 4.25 * n_replicas as f64 / 3600.0 / (out_tokens as f64 / end) * 1e6},
        "workload": {"requests": n_requests, "first_arrival_s": reqs[0].arrived, "last_arrival_s": last_arrival,
                     "offered_rate_per_s": n_requests as f64 / last_arrival,
                     "prompt_tokens_mean": reqs.iter().map(|r| r.prefill as f64).sum::<f64>() / n_requests as f64,
                     "prompt_tokens_max": reqs.iter().map(|r| r.prefill).max().unwrap_or(0),
                     "output_tokens_mean": out_tokens as f64 / n_requests as f64,
                     "output_tokens_max": reqs.iter().map(|r| r.decode).max().unwrap_or(0)},
        "load": {"status": "ok", "served_fraction": (n_requests as f64 / end) / (n_requests as f64 / last_arrival),
                 "drain_s": end - last_arrival, "reasons": [], "notes": []}
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "# synthetic report fixture (not a real simulation)\nseed = {seed}\n\n[cluster]\nnum_replicas = {n_replicas}\nrouter = \"round_robin\"\n\n[replica]\nmodel = \"meta-llama/Meta-Llama-3-8B\"\ndevice = \"h100\"\ntp = 1\npp = 1\nmemory_margin_fraction = 0.1\n\n[scheduler]\nname = \"sarathi\"\nbatch_size_cap = 12\nchunk_size = 512\n\n[workload]\nnum_requests = {n_requests}\n\n[workload.arrival]\nkind = \"poisson\"\nqps = {rate_per_s:?}\n"
        ),
    )
    .unwrap();
}
