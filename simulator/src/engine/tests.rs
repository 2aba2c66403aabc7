//! Hand-computed scenarios: every batch takes 10 ms per stage; the expected batch sequences and
//! times are worked out in the comments.

use super::testkit::*;
use crate::router::RouterKind;
use crate::workload::RequestSpec;

/// r0 at 0 (4 prompt, 3 output tokens), r1 at 5 ms (4 prompt, 2 output).
fn two_requests() -> Vec<RequestSpec> {
    vec![
        RequestSpec::simple(0, 4, 3),
        RequestSpec::simple(ms(5), 4, 2),
    ]
}

#[test]
fn vllm_prioritizes_prefills() {
    // 0–10 prefill r0; r1 arrives at 5 and waits; 10–20 prefill r1 (r0 waits: prefill first);
    // 20–30 both decode (r1 done); 30–40 r0 decodes (done).
    let o = TestCluster::new("vllm").run(two_requests());
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 4, 0),
            (1, 0, 10, 20, 4, 0),
            (2, 0, 20, 30, 0, 2),
            (3, 0, 30, 40, 0, 1)
        ]
    );
    assert_eq!(times(&o), vec![(10, 40), (20, 30)]);
    assert_eq!(o.requests[1].tbt_max_ns, ms(10));
    assert_eq!(o.requests[0].tbt_max_ns, ms(20));
}

#[test]
fn orca_mixes_decodes_and_whole_prefills() {
    // 0–10 prefill r0; 10–20 r0 decodes while r1 prefills; 20–30 both decode, both done.
    let o = TestCluster::new("orca").run(two_requests());
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 4, 0),
            (1, 0, 10, 20, 4, 1),
            (2, 0, 20, 30, 0, 2)
        ]
    );
    assert_eq!(times(&o), vec![(10, 30), (20, 30)]);
}

#[test]
fn faster_transformer_runs_static_batches() {
    // r0's batch runs to its end (0–30) before r1 gets in (30–50).
    let o = TestCluster::new("faster_transformer").run(two_requests());
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 4, 0),
            (1, 0, 10, 20, 0, 1),
            (2, 0, 20, 30, 0, 1),
            (3, 0, 30, 40, 4, 0),
            (4, 0, 40, 50, 0, 1)
        ]
    );
    assert_eq!(times(&o), vec![(10, 30), (40, 50)]);
    assert_eq!(o.replicas[0].kv.allocated(), 0);
}

#[test]
fn sarathi_chunks_under_the_budget() {
    // chunk 3: 0–10 r0 chunk 3; 10–20 r0's last prompt token + r1 chunk 2;
    // 20–30 r0 decode + r1's last 2 prompt tokens; 30–40 both decode, both done.
    let mut c = TestCluster::new("sarathi");
    c.scheduler.chunk_size = 3;
    let o = c.run(two_requests());
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 3, 0),
            (1, 0, 10, 20, 3, 0),
            (2, 0, 20, 30, 2, 1),
            (3, 0, 30, 40, 0, 2)
        ]
    );
    assert_eq!(times(&o), vec![(20, 40), (30, 40)]);
}

#[test]
fn lightllm_alternates_prefill_and_decode() {
    // max_waiting_iters 1: 0–10 prefill r0; 10–20 decode r0; 20–30 prefill r1 (waited one
    // iteration); 30–40 both decode, both done.
    let mut c = TestCluster::new("lightllm");
    c.scheduler.max_waiting_iters = 1;
    let o = c.run(two_requests());
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 4, 0),
            (1, 0, 10, 20, 0, 1),
            (2, 0, 20, 30, 4, 0),
            (3, 0, 30, 40, 0, 2)
        ]
    );
    assert_eq!(times(&o), vec![(10, 40), (30, 40)]);
}

#[test]
fn two_stage_pipeline_overlaps_micro_batches() {
    // vLLM, PP 2, r0 at 0 and r1 at 5 (4 prompt, 2 output each). b0 = prefill r0: stage 0 0–10,
    // stage 1 10–20. b1 = prefill r1, formed at 5, waits for stage 0: 10–20, 20–30. At 20 b0 ends
    // (r0's first token) and b2 = decode r0 runs 20–30, 30–40 (r0 done at 40). At 30 b1 ends and
    // b3 = decode r1 runs 30–40, 40–50.
    let mut c = TestCluster::new("vllm");
    c.pp = 2;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(ms(5), 4, 2),
    ]);
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 4, 0),
            (0, 1, 10, 20, 4, 0),
            (1, 0, 10, 20, 4, 0),
            (1, 1, 20, 30, 4, 0),
            (2, 0, 20, 30, 0, 1),
            (2, 1, 30, 40, 0, 1),
            (3, 0, 30, 40, 0, 1),
            (3, 1, 40, 50, 0, 1)
        ]
    );
    assert_eq!(times(&o), vec![(20, 40), (30, 50)]);
    // execution time counts both stages; r1 waited 5 ms before its first stage
    assert_eq!(o.requests[1].execution_ns, ms(40));
}

#[test]
fn lor_counts_running_requests() {
    // r0 is running on replica 0 when r1 arrives: Vidur's LOR saw no queued request anywhere and
    // picked replica 0; counting running requests sends r1 to replica 1.
    let mut c = TestCluster::new("vllm");
    c.replicas = 2;
    c.router = RouterKind::Lor;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 10),
        RequestSpec::simple(ms(1), 4, 10),
        RequestSpec::simple(ms(2), 4, 10),
    ]);
    let placed: Vec<u32> = o.requests.iter().map(|r| r.replica).collect();
    assert_eq!(placed, vec![0, 1, 0]);
}

#[test]
fn simultaneous_arrivals_join_one_batch() {
    // Arrivals at the same time are all handled before the replica schedules.
    let o = TestCluster::new("vllm").run(vec![
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(0, 4, 1),
    ]);
    assert_eq!(stages(&o), vec![(0, 0, 0, 10, 12, 0)]);
}

#[test]
fn vllm_restart_recomputes_and_keeps_the_first_times() {
    // 4 blocks of 4 tokens, no watermark; r0 and r1 at 0, 6 prompt + 4 output tokens each.
    // 0–10 both prefill (2 blocks each); 10–20 and 20–30 both decode within their blocks.
    // At 30 r0 needs a third block: r1 (the latest arrival) is restarted with its 9 tokens as
    // prompt; 30–40 r0 decodes alone and finishes; 40–50 r1 re-prefills 9 tokens, which yields
    // its fourth and last token.
    let mut c = TestCluster::new("vllm");
    c.num_blocks = 4;
    c.max_request_tokens = 16;
    c.scheduler.block_size = 4;
    c.scheduler.watermark_blocks_fraction = 0.0;
    let o = c.run(vec![
        RequestSpec::simple(0, 6, 4),
        RequestSpec::simple(0, 6, 4),
    ]);
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 12, 0),
            (1, 0, 10, 20, 0, 2),
            (2, 0, 20, 30, 0, 2),
            (3, 0, 30, 40, 0, 1),
            (4, 0, 40, 50, 9, 0)
        ]
    );
    assert_eq!(times(&o), vec![(10, 40), (10, 50)]);
    let r1 = &o.requests[1];
    assert_eq!((r1.num_restarts, r1.num_preemptions), (1, 1));
    // the replica's counter (summary.json `replicas[].restarts`) has it too
    assert_eq!(o.replicas[0].restarts, 1);
    assert_eq!(r1.emitted_tokens, 4);
    assert_eq!(r1.tbt_max_ns, ms(20));
    assert_eq!(r1.batch_tokens, 6 + 1 + 1 + 9);
    assert_eq!(r1.scheduled_at_ns, Some(0));
}

#[test]
fn timeseries_counts_each_interval() {
    // One request (4 prompt, 5 output): batches 0–10 … 40–50 ms. Samples every 25 ms: at 25 two
    // batches finished and stage 0 was always busy; the last row (50 ms) has the other three
    // batches and the completion.
    let tmp = tempfile::tempdir().unwrap();
    let mut c = TestCluster::new("vllm");
    c.out_dir = Some(tmp.path().to_path_buf());
    c.timeseries_ms = 25;
    let o = c.run(vec![RequestSpec::simple(0, 4, 5)]);
    assert_eq!(o.end_ns, ms(50));
    let ts = std::fs::read_to_string(tmp.path().join("timeseries.csv")).unwrap();
    let rows: Vec<&str> = ts.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec![
            "0.025000000,0,0,1,1,1000,0,2,1",
            "0.050000000,0,0,0,0,1000,1,3,1"
        ]
    );
    let requests = std::fs::read_to_string(tmp.path().join("requests.csv")).unwrap();
    let row: Vec<&str> = requests.lines().nth(1).unwrap().split(',').collect();
    // first token at 10 ms, completion at 50 ms, TBT mean 10 ms, TPOT 10 ms
    assert_eq!(
        &row[2..6],
        &["0.000000000", "0.000000000", "0.010000000", "0.050000000"]
    );
    assert_eq!(row[10], "0.01");
    assert_eq!(row[11], "0.010000000");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("trace.json")).unwrap())
            .unwrap();
    let spans: Vec<&serde_json::Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect();
    assert_eq!(spans.len(), 5);
    assert_eq!(spans[1]["ts"].as_f64(), Some(10_000.0));
    assert_eq!(spans[1]["dur"].as_f64(), Some(10_000.0));
}

#[test]
fn the_time_limit_stops_the_run_at_the_limit() {
    let mut c = TestCluster::new("vllm");
    c.time_limit_ns = Some(ms(25));
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(ms(5), 4, 10),
        RequestSpec::simple(ms(100), 4, 1),
    ]);
    assert!(o.time_limited);
    assert_eq!(o.end_ns, ms(25));
    assert_eq!((o.arrived, o.completed), (2, 1));
    // without the limit every request finishes
    c.time_limit_ns = None;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(ms(100), 4, 1),
    ]);
    assert!(!o.time_limited);
    assert_eq!((o.arrived, o.completed, o.end_ns), (2, 2, ms(110)));
}

#[test]
fn bad_requests_and_out_of_range_times_are_errors() {
    let c = TestCluster::new("vllm");
    for (spec, what) in [
        (RequestSpec::simple(0, 0, 3), "both must be at least 1"),
        (RequestSpec::simple(0, 3, 0), "both must be at least 1"),
        (
            RequestSpec::simple(0, 4000, 97),
            "more than the workload's declared maximum of 4096",
        ),
        (
            RequestSpec::simple(super::MAX_SIMULATED_NS + 1, 4, 1),
            "past the simulator's limit",
        ),
    ] {
        let e = c.try_run(vec![spec]).err().expect("an error").to_string();
        assert!(e.contains(what), "{e}");
    }
    // exactly the maximum length and the latest time are fine
    let o = c
        .try_run(vec![
            RequestSpec::simple(0, 4000, 96),
            RequestSpec::simple(super::MAX_SIMULATED_NS - ms(100), 4, 1),
        ])
        .unwrap();
    assert_eq!(o.completed, 2);
}

#[test]
fn a_timeseries_past_its_row_limit_is_refused_before_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = TestCluster::new("vllm");
    c.out_dir = Some(tmp.path().to_path_buf());
    c.timeseries_ms = 1;
    c.replicas = 2;
    // 10⁷ rows over 2 replicas reach 5·10³ s; an arrival at 2·10⁴ s would need four times as many
    let e = c
        .try_run(vec![
            RequestSpec::simple(0, 4, 1),
            RequestSpec::simple(ms(20_000_000), 4, 1),
        ])
        .err()
        .expect("too many rows")
        .to_string();
    assert!(e.contains("timeseries.csv would pass 10000000 rows"), "{e}");
    assert!(e.contains("reaches 2.000000e4 s"), "{e}");
    assert!(
        e.contains("2 replica(s)") && e.contains("every 0.001 s"),
        "{e}"
    );
    // 2·10⁴ s × 2 replicas / 10⁷ rows
    assert!(e.contains("--timeseries-interval 4.000e-3 or more"), "{e}");
    let written = std::fs::metadata(tmp.path().join("timeseries.csv"))
        .unwrap()
        .len();
    assert!(written < 1 << 20, "{written} bytes written");
}

#[test]
fn lor_counts_go_down_when_requests_finish() {
    // r0 finishes on replica 0 at 10 ms; r1 at 20 ms sees both replicas idle and takes the
    // lowest id again.
    let mut c = TestCluster::new("vllm");
    c.replicas = 2;
    c.router = RouterKind::Lor;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(ms(20), 4, 1),
    ]);
    let placed: Vec<u32> = o.requests.iter().map(|r| r.replica).collect();
    assert_eq!(placed, vec![0, 0]);
}

#[test]
fn per_replica_counters_add_up() {
    let mut c = TestCluster::new("vllm");
    c.replicas = 2;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 3),
        RequestSpec::simple(0, 4, 1),
        RequestSpec::simple(0, 4, 2),
    ]);
    // round robin: r0, r2 on replica 0 (one prefill batch, then decodes: 3 batches), r1 alone
    let batches: Vec<u64> = o.replicas.iter().map(|r| r.batches).collect();
    assert_eq!(batches, vec![3, 1]);
    let logged = |rep: u32| o.stage_log.iter().filter(|s| s.replica == rep).count() as u64;
    assert_eq!(batches, vec![logged(0), logged(1)]);
    assert_eq!(o.replicas.iter().map(|r| r.restarts).sum::<u64>(), 0);
    // stage 0 was busy 10 ms per batch
    let busy: Vec<u64> = o.replicas.iter().map(|r| r.stages[0].busy_ns).collect();
    assert_eq!(busy, vec![ms(30), ms(10)]);
}

#[test]
fn the_row_limit_is_exact_and_counts_every_sample() {
    // samples every ms over two replicas: count the rows a run writes before its last sample,
    // then allow exactly that many (fine) and one fewer (refused)
    let run = |limit: Option<u64>| {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = TestCluster::new("vllm");
        c.replicas = 2;
        c.timeseries_ms = 1;
        c.max_timeseries_rows = limit;
        c.out_dir = Some(tmp.path().to_path_buf());
        let specs = vec![
            RequestSpec::simple(0, 4, 2),
            RequestSpec::simple(ms(3), 4, 2),
            RequestSpec::simple(ms(40), 4, 1),
        ];
        let r = c.try_run(specs).map(|_| ());
        let rows = std::fs::read_to_string(tmp.path().join("timeseries.csv"))
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        (r, rows)
    };
    let (r, rows) = run(None);
    r.unwrap();
    let before_last = rows - 2;
    assert!(before_last > 40, "{rows}");
    run(Some(before_last)).0.unwrap();
    let e = run(Some(before_last - 1)).0.unwrap_err().to_string();
    assert!(
        e.contains(&format!("would pass {} rows", before_last - 1)),
        "{e}"
    );
    // a short run: the suggestion is at least twice the interval
    assert!(e.contains("--timeseries-interval 2.000e-3 or more"), "{e}");
}

#[test]
fn an_arrival_at_the_last_simulated_time_is_accepted() {
    let mut c = TestCluster::new("vllm");
    c.time_limit_ns = Some(super::MAX_SIMULATED_NS);
    let o = c.run(vec![RequestSpec::simple(super::MAX_SIMULATED_NS, 4, 1)]);
    assert!(o.time_limited);
    assert_eq!((o.arrived, o.end_ns), (1, super::MAX_SIMULATED_NS));
}

#[test]
fn async_scheduling_delays_a_request_arriving_mid_step_by_one_step() {
    // A arrives at 0 (10-token prompt, 6 outputs): steps of 10 ms from 0. B arrives at 15 ms,
    // during A's second step [10, 20).
    let specs = || {
        vec![
            RequestSpec::simple(0, 10, 6),
            RequestSpec::simple(ms(15), 10, 2),
        ]
    };
    let mut c = TestCluster::new("vllm_v1");
    let sync = c.run(specs());
    // Without asynchronous scheduling B joins the step that starts at 20 ms.
    assert_eq!(sync.requests[1].first_token_at_ns, Some(ms(30)));
    c.async_scheduling = true;
    let asynchronous = c.run(specs());
    // With it, the step at 20 ms was planned at 10 ms: B reaches the scheduler at 20 ms and
    // joins the step at 30 ms.
    assert_eq!(asynchronous.requests[1].first_token_at_ns, Some(ms(40)));
    // A request arriving at an idle replica is not delayed.
    assert_eq!(asynchronous.requests[0].first_token_at_ns, Some(ms(10)));
    // The front end adds to TTFT and E2E, not to the engine's timestamps.
    c.frontend_ns = ms(7);
    let fe = c.run(specs());
    assert_eq!(fe.requests[1].first_token_at_ns, Some(ms(40)));
    assert_eq!(fe.metrics.ttft.max(), ms(40) - ms(15) + ms(7));
}

#[test]
fn out_of_range_errors_give_the_time_and_the_limit_in_seconds() {
    let c = TestCluster::new("vllm");
    let e = |t: u64| {
        c.try_run(vec![
            RequestSpec::simple(0, 4, 1),
            RequestSpec::simple(t, 4, 1),
        ])
        .err()
        .expect("an error")
        .to_string()
    };
    // the limit is 10⁹ s; a time past it is given as it is, a saturated one as "after"
    assert_eq!(
        e(super::MAX_SIMULATED_NS + 500_000_000_000_000),
        "simulated time out of range: request 1 arrives at 1.000500e9 s, past the simulator's \
         limit of 1e9 s; check the workload's rate (--qps) and time scale (--time-scale)"
    );
    assert!(
        e(u64::MAX)
            .contains("request 1 arrives after 1.844674e10 s, past the simulator's limit of 1e9 s"),
        "{}",
        e(u64::MAX)
    );
}

#[test]
fn a_request_that_never_fits_stalls_the_run_with_its_description() {
    // 4 blocks of 16 tokens: request 0 (40 tokens) finishes, request 1 (80 tokens) can never be
    // admitted; the error names it, not the finished one, and the time the run stopped
    let mut c = TestCluster::new("vllm");
    c.num_blocks = 4;
    let e = c
        .try_run(vec![
            RequestSpec::simple(0, 30, 10),
            RequestSpec::simple(ms(5), 70, 10),
        ])
        .err()
        .expect("a stalled run")
        .to_string();
    assert_eq!(
        e,
        "simulation stalled at 0.100 s with 1 unfinished request(s): request 1 (70 prompt + 10 \
         output tokens) on replica 0 never finished; the replica has 4 KV blocks of 16 tokens, 0 \
         in use"
    );
}

#[test]
fn timeseries_running_excludes_the_queued_requests() {
    // 6 blocks of 16 tokens hold one request of 60 + 20 tokens at a time: at the 100 ms sample
    // request 0 runs and requests 1 and 2 wait
    let tmp = tempfile::tempdir().unwrap();
    let mut c = TestCluster::new("vllm");
    c.out_dir = Some(tmp.path().to_path_buf());
    c.num_blocks = 6;
    c.timeseries_ms = 100;
    c.run(vec![
        RequestSpec::simple(0, 60, 20),
        RequestSpec::simple(ms(1), 60, 20),
        RequestSpec::simple(ms(2), 60, 20),
    ]);
    let ts = std::fs::read_to_string(tmp.path().join("timeseries.csv")).unwrap();
    let first: Vec<&str> = ts.lines().nth(1).unwrap().split(',').collect();
    // time, replica, queued, running
    assert_eq!(&first[..4], &["0.100000000", "0", "2", "1"], "{ts}");
}

#[test]
fn a_run_stopped_at_time_zero_writes_no_timeseries_row() {
    // a trace starts at 0 and a time limit below 1 ns rounds to 0: no simulated time passed, so
    // there is no interval to sample
    let tmp = tempfile::tempdir().unwrap();
    let mut c = TestCluster::new("vllm");
    c.out_dir = Some(tmp.path().to_path_buf());
    c.time_limit_ns = Some(0);
    let o = c.run(vec![RequestSpec::simple(0, 4, 2)]);
    assert!(o.time_limited);
    assert_eq!((o.arrived, o.completed, o.end_ns), (1, 0, 0));
    let ts = std::fs::read_to_string(tmp.path().join("timeseries.csv")).unwrap();
    assert_eq!(ts.lines().count(), 1, "{ts}");
}

#[test]
fn a_certain_miss_stops_the_run_with_its_verdict() {
    use crate::metrics::miss_watch::{BoundMetric, LatencyBound};
    // request i arrives at i s and takes 500 ms (10 ms prefill, 49 decodes of 10 ms); E2E p50 of
    // 10 requests ≤ 0.1 s allows 5 slow ones, so the 6th completion (5.5 s) decides
    let specs = || {
        (0..10)
            .map(|i| RequestSpec::simple(ms(1000 * i), 4, 50))
            .collect::<Vec<_>>()
    };
    let mut c = TestCluster::new("vllm");
    let full = c.run(specs());
    assert_eq!(
        (full.completed, full.end_ns, &full.certain_miss),
        (10, ms(9500), &None)
    );
    let bounds = [LatencyBound {
        metric: BoundMetric::E2e,
        percentile: 50.0,
        max_s: 0.1,
        label: "e2e_p50".into(),
    }];
    c.miss_watch = Some(crate::metrics::MissWatch::new(&bounds, 10, 10));
    let o = c.run(specs());
    assert_eq!((o.arrived, o.completed, o.end_ns), (6, 6, ms(5500)));
    assert!(!o.time_limited);
    let v = o.certain_miss.expect("a verdict");
    assert!(
        v.starts_with("e2e_p50 > 0.1 s: certain after 6 of 10 requests, 6 of them"),
        "{v}"
    );
}

#[test]
fn replica_flops_add_up_over_batches() {
    // 1 FLOP per token and 10 per unit of attention work: a 4-token prompt (sq 16 + kv 0) then
    // one decode at context 5 (1 + 5)
    let mut c = TestCluster::new("vllm");
    c.flops = crate::metrics::FlopModel {
        linear_per_token: 1.0,
        attention_coef: 10.0,
    };
    let o = c.run(vec![RequestSpec::simple(0, 4, 2)]);
    assert_eq!(o.replicas[0].flops, (4.0 + 160.0) + (1.0 + 60.0));
}

#[test]
fn progress_is_reported_every_8192_events_and_at_the_end() {
    // 6,000 one-token requests 1 ms apart: an arrival, a batch end and some schedule events each, over 12,000 events: one
    // report on the way (after 8,192 events, near request 4,000) and the final one
    let c = TestCluster::new("vllm");
    let specs = (0..6000)
        .map(|i| RequestSpec::simple(ms(i), 4, 1))
        .collect();
    let mut reports = Vec::new();
    let o = c
        .try_run_with_progress(specs, &mut |p| reports.push(p))
        .unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        (3000..5000).contains(&reports[0].arrived),
        "{:?}",
        reports[0]
    );
    let last = reports[1];
    assert_eq!(
        (last.arrived, last.completed, last.now_ns),
        (6000, 6000, o.end_ns)
    );
}

#[test]
fn vllm_v1_under_pipeline_parallelism_finishes_when_requests_compete_for_blocks() {
    // Found by `proptests::invariants_hold`: 16 requests of up to 168 tokens on 16 blocks of 16,
    // PP 2, 7-token chunks. Requests used to preempt themselves while the others were in flight,
    // and new admissions took their blocks, so the run never ended.
    let mut c = TestCluster::new("vllm_v1");
    c.pp = 2;
    c.num_blocks = 16;
    c.max_request_tokens = 240;
    c.stage_ms = 3.0;
    c.scheduler.block_size = 16;
    c.scheduler.batch_size_cap = 2;
    c.scheduler.enable_prefix_caching = Some(false);
    let v = &mut c.scheduler.vllm_v1;
    v.max_num_batched_tokens = Some(240);
    v.max_num_seqs = 7;
    v.long_prefill_token_threshold = 7;
    v.enable_chunked_prefill = false;
    c.time_limit_ns = Some(RUNAWAY_LIMIT_NS);
    let shape: [(u64, u32, u32); 16] = [
        (0, 129, 1),
        (21, 36, 9),
        (25, 138, 30),
        (26, 67, 2),
        (44, 129, 1),
        (44, 145, 1),
        (46, 129, 1),
        (51, 129, 1),
        (51, 93, 13),
        (51, 129, 1),
        (51, 80, 12),
        (55, 99, 8),
        (55, 58, 37),
        (55, 129, 1),
        (55, 1, 1),
        (55, 129, 1),
    ];
    let specs: Vec<RequestSpec> = shape
        .iter()
        .map(|&(t, p, d)| RequestSpec::simple(ms(t), p, d))
        .collect();
    let o = c.run(specs);
    assert!(!o.time_limited);
    assert_eq!(o.completed, 16);
    // The first request is never preempted: it is always the oldest running one.
    assert_eq!(o.requests[0].num_restarts, 0);
}

/// Runs `c` on `specs` with decode runs on and off, writing the streamed files of each; asserts
/// that every file is byte-identical and returns the two outcomes (on, off).
fn with_and_without_decode_runs(
    c: &TestCluster,
    specs: &[RequestSpec],
) -> (super::EngineOutcome, super::EngineOutcome) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut outcomes = Vec::new();
    for (on, dir) in [true, false].into_iter().zip(&dirs) {
        let mut c = c.clone();
        c.decode_runs = on;
        c.out_dir = Some(dir.path().to_path_buf());
        outcomes.push(c.run(specs.to_vec()));
    }
    for f in [
        "requests.csv",
        "batches.csv",
        "timeseries.csv",
        "trace.json",
    ] {
        let a = std::fs::read(dirs[0].path().join(f)).unwrap();
        let b = std::fs::read(dirs[1].path().join(f)).unwrap();
        assert!(a == b, "{f} differs with decode runs");
    }
    let off = outcomes.pop().unwrap();
    let on = outcomes.pop().unwrap();
    assert_eq!(off.run_steps, 0);
    assert_eq!(on.requests, off.requests);
    assert_eq!(format!("{:?}", on.metrics), format!("{:?}", off.metrics));
    for (a, b) in on.replicas.iter().zip(&off.replicas) {
        assert_eq!(
            (a.batches, a.flops.to_bits(), a.kv_area, a.max_in_flight),
            (b.batches, b.flops.to_bits(), b.kv_area, b.max_in_flight)
        );
        assert_eq!(a.kv, b.kv);
    }
    (on, off)
}

#[test]
fn decode_runs_write_the_same_files_as_step_by_step() {
    // Every policy that forms decode runs, over 3 replicas behind lor: 60 requests sharing a
    // 40-token prefix in pairs (prefix caching on where the policy has it), batch times growing
    // with tokens and context, samples every 7 ms.
    for (name, caching) in [
        ("vllm_v1", Some(true)),
        ("sarathi", Some(true)),
        ("vllm", None),
        ("orca", None),
    ] {
        let mut c = run_files_cluster(name);
        c.replicas = 3;
        c.num_blocks = 200;
        // FLOPs grow with each run step's context
        c.flops = crate::metrics::FlopModel {
            linear_per_token: 1.0,
            attention_coef: 10.0,
        };
        c.scheduler.enable_prefix_caching = caching;
        let (on, off) = with_and_without_decode_runs(&c, &paired_prefix_specs());
        assert_mostly_run_steps(name, &on, &off);
    }
}

/// The cluster of the decode-run file tests, behind `lor`: 2 ms per batch stage, growing with
/// the tokens and the decodes' context; time-series samples every 7 ms; requests up to 256
/// tokens.
fn run_files_cluster(name: &str) -> TestCluster {
    let mut c = TestCluster::new(name);
    c.router = RouterKind::Lor;
    c.stage_ms = 2.0;
    c.token_ms = 0.01;
    c.kv_ms = 0.0007;
    c.timeseries_ms = 7;
    c.max_request_tokens = 256;
    c
}

/// All 60 requests of [`paired_prefix_specs`] completed, and most steps were decode steps the
/// engine formed itself.
fn assert_mostly_run_steps(name: &str, on: &super::EngineOutcome, off: &super::EngineOutcome) {
    assert_eq!(on.completed, 60, "{name}");
    let steps: u64 = off.replicas.iter().map(|r| r.batches).sum();
    assert!(
        on.run_steps * 2 > steps,
        "{name}: {} of {steps}",
        on.run_steps
    );
}

/// 60 requests sharing a 40-token prefix in pairs, 60–109 prompt and 5–94 output tokens, one
/// every 3 ms or so.
fn paired_prefix_specs() -> Vec<RequestSpec> {
    (0..60u64)
        .map(|i| RequestSpec {
            segments: vec![crate::workload::Segment {
                id: i / 2,
                tokens: 40,
            }],
            ..RequestSpec::simple(
                ms(3 * i + i % 3),
                60 + (i as u32 * 7) % 50,
                5 + (i as u32 * 13) % 90,
            )
        })
        .collect()
}

#[test]
fn decode_runs_under_pipeline_parallelism_write_the_same_files_as_step_by_step() {
    // Two pipeline stages, the second 1.5 ms slower, so that two micro-batches alternate and
    // queue for it: each one's steps run while the other is in flight, and a step's token gap is
    // the time since the same batch's last step ended, not the step's own time. vllm, sarathi
    // and orca split their batch cap over the stages; vllm_v1 keeps one running list across
    // them, whose requests in the other micro-batch its next step skips.
    for name in ["vllm", "sarathi", "orca", "vllm_v1"] {
        let mut c = run_files_cluster(name);
        c.replicas = 2;
        c.pp = 2;
        c.num_blocks = 300;
        c.stage_skew_ms = 1.5;
        c.scheduler.batch_size_cap = 16;
        let (on, off) = with_and_without_decode_runs(&c, &paired_prefix_specs());
        // both micro-batches were in flight at once
        assert!(off.replicas.iter().all(|r| r.max_in_flight == 2), "{name}");
        assert_mostly_run_steps(name, &on, &off);
    }
}

#[test]
fn a_run_stopped_by_a_latency_bound_between_its_steps_keeps_the_step_that_ended() {
    // Two replicas, round robin, 10 ms per batch. r0 (4 prompt, 10 output) on replica 0 and r1
    // (4 prompt, 2 output) on replica 1 both arrive at 0: prefills 0–10, decodes 10–20. At 20,
    // replica 0's decode ends first and its run parks for the next step; then r1 completes with
    // 20 ms E2E, above the 10-ms p99 bound of two requests, and the run stops there. r0 has
    // the token of the step that ended at 20 (its second), as step by step.
    use crate::metrics::miss_watch::{BoundMetric, LatencyBound, MissWatch};
    let mut c = TestCluster::new("vllm_v1");
    c.replicas = 2;
    let bounds = [LatencyBound {
        metric: BoundMetric::E2e,
        percentile: 99.0,
        max_s: 0.01,
        label: "e2e_p99".into(),
    }];
    c.miss_watch = Some(MissWatch::new(&bounds, 2, 2));
    let specs = [RequestSpec::simple(0, 4, 10), RequestSpec::simple(0, 4, 2)];
    let (on, _) = with_and_without_decode_runs(&c, &specs);
    assert!(on.certain_miss.is_some());
    assert_eq!(on.end_ns, ms(20));
    let r0 = &on.requests[0];
    assert_eq!(
        (r0.emitted_tokens, r0.last_token_at_ns, r0.in_flight),
        (2, ms(20), false)
    );
}

#[test]
fn a_run_goes_on_while_the_free_blocks_just_cover_its_next_step() {
    // One request (15 prompt, 20 output tokens: 35 in 3 blocks of 16) in exactly 3 blocks. The
    // prefill takes 1 block and the first decode (formed by the policy) none; from its end every
    // step is a run step up to the one that completes the request (19 steps after the first
    // decode, 18 formed by the engine), taking the second block at context 17 and the third at
    // context 33, each time the last free ones.
    let mut c = TestCluster::new("vllm_v1");
    c.num_blocks = 3;
    c.max_request_tokens = 48;
    let (on, off) = with_and_without_decode_runs(&c, &[RequestSpec::simple(0, 15, 20)]);
    assert_eq!(on.run_steps, 18);
    assert_eq!(off.replicas[0].batches, 20);
    assert_eq!(on.replicas[0].kv.peak_allocated(), 3);
}

#[test]
fn vllm_v1_runs_go_on_while_a_full_replica_keeps_requests_waiting() {
    // max_num_seqs 2, three requests at 0 (4 prompt, 5 output tokens), 10 ms per batch. 0–10
    // prefills r0 and r1 (r2 waits: two running); 10–50 four decodes of both, the first formed by
    // the policy and three by the engine although r2 waits; 50–60 prefills r2; 60–100 its four
    // decodes, again one by the policy and three in a run.
    let mut c = TestCluster::new("vllm_v1");
    c.scheduler.vllm_v1.max_num_seqs = 2;
    let specs: Vec<RequestSpec> = (0..3).map(|_| RequestSpec::simple(0, 4, 5)).collect();
    let (on, off) = with_and_without_decode_runs(&c, &specs);
    assert_eq!(off.replicas[0].batches, 10);
    assert_eq!(on.end_ns, ms(100));
    assert_eq!(on.run_steps, 6);
    // the same with the token budget full instead: two decodes use the whole budget of 2, so r2
    // waits for them, and the runs go on
    let mut c = TestCluster::new("vllm_v1");
    c.scheduler.vllm_v1.max_num_batched_tokens = Some(2);
    let (on, _) = with_and_without_decode_runs(&c, &specs);
    assert!(on.run_steps > 0);
}
