//! Parallel runs ([`super::parallel`]) against the sequential engine: the same outcome and the
//! same bytes in every file, for every thread count.

use proptest::prelude::*;

use super::testkit::*;
use crate::router::RouterKind;
use crate::scheduler::SCHEDULERS;
use crate::workload::{RequestSpec, Segment};

/// Runs `c` on `specs` with `threads` threads, writing files into a fresh directory; the
/// outcome (or the error's text) and the contents of `requests.csv` and `timeseries.csv`.
fn run_with(
    c: &TestCluster,
    specs: &[RequestSpec],
    threads: usize,
) -> (Result<super::EngineOutcome, String>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = c.clone();
    c.threads = threads;
    c.stage_records = false;
    c.out_dir = Some(tmp.path().to_path_buf());
    let o = c.try_run(specs.to_vec()).map_err(|e| e.to_string());
    let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap_or_default();
    (o, read("requests.csv"), read("timeseries.csv"))
}

/// Checks that runs of `c` on `specs` with 2, 3 and 4 threads leave what one thread leaves.
fn assert_same_for_every_thread_count(
    c: &TestCluster,
    specs: &[RequestSpec],
) -> Result<(), TestCaseError> {
    let (one, requests, series) = run_with(c, specs, 1);
    for threads in 2..=4 {
        let (many, r, s) = run_with(c, specs, threads);
        match (&one, &many) {
            (Ok(a), Ok(b)) => super::proptests::assert_same_outcome(b, a)?,
            (a, b) => prop_assert_eq!(
                a.as_ref().map(|_| ()),
                b.as_ref().map(|_| ()),
                "{} threads",
                threads
            ),
        }
        prop_assert!(
            r == requests,
            "requests.csv differs with {} threads",
            threads
        );
        prop_assert!(
            s == series,
            "timeseries.csv differs with {} threads",
            threads
        );
    }
    Ok(())
}

fn workload() -> impl Strategy<Value = Vec<RequestSpec>> {
    // gaps of 0 put several arrivals at one instant (routed one after the other)
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..9_000_000],
            1u32..160,
            1u32..40,
            prop::option::of(0u64..3),
        ),
        1..60,
    )
    .prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(gap, p, d, seg)| {
                t += gap;
                let segments: Vec<Segment> = seg
                    .into_iter()
                    .map(|id| Segment { id, tokens: 24 })
                    .collect();
                RequestSpec {
                    segments,
                    ..RequestSpec::simple(t, p.max(25), d)
                }
            })
            .collect()
    })
}

fn cluster() -> impl Strategy<Value = TestCluster> {
    (
        0..SCHEDULERS.len(),
        2u32..7,
        1u32..3,
        prop_oneof![
            Just(RouterKind::RoundRobin),
            Just(RouterKind::Random),
            Just(RouterKind::Lor),
            Just(RouterKind::PowerOfTwo)
        ],
        // from barely one longest request to plenty: preemption and restarts
        14u64..60,
        (1u32..9, 0usize..3, any::<bool>(), 1u64..20),
        (prop::option::of(1u64..800), any::<bool>()),
    )
        .prop_map(
            |(
                s,
                replicas,
                pp,
                router,
                blocks,
                (cap, token, async_scheduling, ts_ms),
                (limit, runs),
            )| {
                let entry = &SCHEDULERS[s];
                let mut c = TestCluster::new(entry.name);
                c.replicas = replicas;
                c.pp = if entry.max_pipeline_stages == Some(1) {
                    1
                } else {
                    pp
                };
                c.router = router;
                c.max_request_tokens = 200;
                c.scheduler.block_size = 16;
                c.num_blocks = if entry.token_blocks {
                    blocks * 16
                } else {
                    blocks
                };
                c.scheduler.batch_size_cap = cap * c.pp;
                c.stage_ms = 2.0;
                c.token_ms = [0.0, 0.01, 0.037][token];
                c.kv_ms = 0.0007;
                c.stage_skew_ms = if c.pp > 1 { 1.3 } else { 0.0 };
                c.async_scheduling = async_scheduling;
                c.timeseries_ms = ts_ms;
                c.time_limit_ns = Some(limit.map_or(RUNAWAY_LIMIT_NS, ms));
                c.decode_runs = runs;
                c
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every request, latency, replica counter and file row is the same with 1 to 4 threads:
    /// every router the parallel engine takes, every policy, pipeline stages, preemption,
    /// prefix caching, asynchronous scheduling, time limits (also between a lane's events),
    /// arrivals at one instant, decode runs on and off.
    #[test]
    fn parallel_runs_change_nothing(c in cluster(), specs in workload()) {
        assert_same_for_every_thread_count(&c, &specs)?;
    }
}

/// 90 requests sharing prefixes in threes, 60–129 prompt and 5–94 output tokens, one every
/// 2 ms or so, some at the same instant.
fn shared_prefix_specs() -> Vec<RequestSpec> {
    (0..90u64)
        .map(|i| RequestSpec {
            segments: vec![Segment {
                id: i / 3,
                tokens: 40,
            }],
            ..RequestSpec::simple(
                ms(2 * i - i % 2),
                60 + (i as u32 * 7) % 70,
                5 + (i as u32 * 13) % 90,
            )
        })
        .collect()
}

#[test]
fn parallel_runs_write_the_same_files_for_every_thread_count() {
    // seven replicas, so lanes differ in size; samples every 5 ms, so windows end at samples
    // as well as at arrivals
    for router in [
        RouterKind::Lor,
        RouterKind::PowerOfTwo,
        RouterKind::RoundRobin,
        RouterKind::Random,
    ] {
        for name in ["vllm_v1", "sarathi", "vllm", "orca"] {
            for pp in [1, 2] {
                let mut c = TestCluster::new(name);
                c.replicas = 7;
                c.router = router;
                c.pp = pp;
                c.stage_ms = 2.0;
                c.token_ms = 0.01;
                c.kv_ms = 0.0007;
                c.stage_skew_ms = 0.9 * (pp - 1) as f64;
                c.timeseries_ms = 5;
                c.max_request_tokens = 256;
                c.async_scheduling = name == "vllm_v1";
                let specs = shared_prefix_specs();
                let (o, requests, series) = run_with(&c, &specs, 1);
                let o = o.unwrap();
                assert_eq!(o.completed, 90, "{router:?} {name} pp {pp}");
                // the replicas all served: the lanes had work
                assert!(o.replicas.iter().all(|r| r.requests > 0));
                assert_eq!(requests.lines().count(), 91);
                assert!(
                    series.lines().count() > 7 * 30,
                    "{}",
                    series.lines().count()
                );
                assert_same_for_every_thread_count(&c, &specs)
                    .unwrap_or_else(|e| panic!("{router:?} {name} pp {pp}: {e}"));
            }
        }
    }
}

#[test]
fn parallel_runs_fail_as_the_sequential_run_does() {
    // lor synchronises at each arrival; round_robin hands arrivals out ahead, where a bad one
    // must still end the run as the sequential loop does, not reach a lane
    for router in [RouterKind::Lor, RouterKind::RoundRobin] {
        fails_as_in_one_thread(router);
    }
}

fn fails_as_in_one_thread(router: RouterKind) {
    let c = {
        let mut c = TestCluster::new("vllm_v1");
        c.replicas = 3;
        c.router = router;
        c
    };
    let error = |c: &TestCluster, specs: &[RequestSpec], threads| {
        run_with(c, specs, threads).0.err().expect("an error")
    };
    let cases: Vec<(&str, Vec<RequestSpec>)> = vec![
        (
            "request 2 has 0 prompt",
            vec![
                RequestSpec::simple(0, 4, 2),
                RequestSpec::simple(ms(1), 4, 2),
                RequestSpec::simple(ms(2), 0, 2),
            ],
        ),
        (
            "request 1 has 5000 tokens",
            vec![
                RequestSpec::simple(0, 4, 2),
                RequestSpec::simple(ms(1), 4990, 10),
            ],
        ),
        (
            "request 2 arrives at 1000000 ns, before the previous one",
            vec![
                RequestSpec::simple(0, 4, 2),
                RequestSpec::simple(ms(3), 4, 2),
                RequestSpec::simple(ms(1), 4, 2),
            ],
        ),
        (
            "request 1 arrives at 1.000500e9 s",
            vec![
                RequestSpec::simple(0, 4, 1),
                RequestSpec::simple(super::MAX_SIMULATED_NS + 500_000_000_000_000, 4, 1),
            ],
        ),
    ];
    for (want, specs) in &cases {
        let one = error(&c, specs, 1);
        assert!(one.contains(want), "{one}");
        for threads in 2..=3 {
            assert_eq!(error(&c, specs, threads), one, "{threads} threads");
        }
    }
    // a request that never fits: the same stall, naming the run-wide request and replica ids
    let mut small = c.clone();
    small.num_blocks = 4;
    let specs = vec![
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(ms(1), 300, 2),
    ];
    let one = error(&small, &specs, 1);
    assert!(
        one.contains("request 2 ") && one.contains("on replica 2"),
        "{one}"
    );
    assert_eq!(error(&small, &specs, 3), one);
    // a time series past its row limit: refused at the same time, with the same counts
    let mut rows = c.clone();
    rows.timeseries_ms = 1;
    rows.max_timeseries_rows = Some(40);
    let specs = vec![
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(ms(30), 4, 2),
    ];
    let one = error(&rows, &specs, 1);
    assert!(one.contains("would pass 40 rows"), "{one}");
    assert_eq!(error(&rows, &specs, 2), one);
}

#[test]
fn runs_that_cannot_be_split_say_why() {
    use super::parallel::unsupported;
    let tmp = tempfile::tempdir().unwrap();
    let setup = |c: &TestCluster| c.setup(vec![]).0;
    let mut c = TestCluster::new("vllm_v1");
    c.replicas = 4;
    c.stage_records = false;
    assert_eq!(unsupported(&setup(&c)), None);
    c.router = RouterKind::KvAware;
    assert!(unsupported(&setup(&c)).unwrap().contains("kv_aware"));
    c.router = RouterKind::LeastKv;
    assert!(unsupported(&setup(&c)).unwrap().contains("least_kv"));
    c.router = RouterKind::Lor;
    c.replicas = 1;
    assert_eq!(unsupported(&setup(&c)), Some("one replica"));
    c.replicas = 4;
    c.stage_records = true;
    assert!(unsupported(&setup(&c)).unwrap().contains("batches.csv"));
    c.stage_records = false;
    c.out_dir = Some(tmp.path().to_path_buf());
    assert_eq!(unsupported(&setup(&c)), None);
    c.disagg = Some(TestDisagg::new(super::transfer::TransferMode::AfterPrefill));
    assert!(unsupported(&setup(&c)).unwrap().contains("disaggregated"));
    c.disagg = None;
    use crate::metrics::miss_watch::{BoundMetric, LatencyBound, MissWatch};
    let bound = LatencyBound {
        metric: BoundMetric::E2e,
        percentile: 50.0,
        max_s: 1.0,
        label: "e2e_p50".into(),
    };
    c.miss_watch = Some(MissWatch::new(&[bound], 10, 10));
    assert!(unsupported(&setup(&c)).unwrap().contains("certain miss"));
    // asked anyway: an internal error, not a wrong run
    let e = super::parallel::run(
        setup(&c),
        Box::new(std::iter::empty()),
        super::parallel::ParallelRun::new(2),
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("certain miss"), "{e}");
}

#[test]
fn free_routing_hands_out_arrivals_in_bounded_windows() {
    // round_robin reads no replica state, so the coordinator hands arrivals out ahead; with a
    // time-series sample only every 100 s, windows end after FREE_WINDOW_ARRIVALS (4,096)
    // arrivals instead, three arrivals sharing each instant so that one such cut falls between
    // arrivals of the same nanosecond
    let mut c = TestCluster::new("vllm_v1");
    c.replicas = 3;
    c.router = RouterKind::RoundRobin;
    c.stage_ms = 0.2;
    c.timeseries_ms = 100_000;
    let specs: Vec<RequestSpec> = (0..13_000u64)
        .map(|i| RequestSpec::simple(i / 3 * 300_000, 8 + (i % 7) as u32, 1 + (i % 3) as u32))
        .collect();
    let (o, requests, _) = run_with(&c, &specs, 1);
    assert_eq!(o.unwrap().completed, 13_000);
    assert_eq!(requests.lines().count(), 13_001);
    assert_same_for_every_thread_count(&c, &specs).unwrap();
}

#[test]
fn batches_ending_at_the_last_simulated_time_pass_and_past_it_fail_as_in_one_thread() {
    // one stage of 10^18 ns: the batch of the request arriving at 0 ends exactly at the
    // simulator's limit (accepted); a second request arriving 1 ns later ends past it (an error
    // naming the batch), in a lane's window as in the sequential loop
    let mut c = TestCluster::new("vllm_v1");
    c.replicas = 2;
    c.router = RouterKind::Lor;
    c.stage_ms = super::MAX_SIMULATED_NS as f64 * 1e-6;
    c.stage_records = false;
    let at_limit = vec![RequestSpec::simple(0, 4, 1)];
    let past = vec![RequestSpec::simple(0, 4, 1), RequestSpec::simple(1, 4, 1)];
    for threads in 1..=2 {
        c.threads = threads;
        let o = c.try_run(at_limit.clone()).unwrap();
        assert_eq!((o.completed, o.end_ns), (1, super::MAX_SIMULATED_NS));
        let e = c
            .try_run(past.clone())
            .err()
            .expect("past the limit")
            .to_string();
        assert!(
            e.contains("a batch would end at 1.000000e9 s"),
            "{threads}: {e}"
        );
    }
}

/// A policy that panics when its replica is simulated on the thread of lane 1, and forms no
/// batch elsewhere.
struct PanicsInLane1;

impl crate::scheduler::ReplicaScheduler for PanicsInLane1 {
    fn add_request(
        &mut self,
        _id: crate::request::ReqId,
        _ctx: &mut crate::scheduler::SchedCtx<'_>,
    ) {
    }

    fn next_batch(
        &mut self,
        _ctx: &mut crate::scheduler::SchedCtx<'_>,
        _batch: &mut Vec<crate::scheduler::BatchEntry>,
    ) -> Result<(), crate::kv::KvError> {
        assert_ne!(
            std::thread::current().name(),
            Some("lane 1"),
            "a policy bug"
        );
        Ok(())
    }

    fn on_batch_end(
        &mut self,
        _batch: &[crate::scheduler::BatchEntry],
        _ctx: &mut crate::scheduler::SchedCtx<'_>,
    ) {
    }

    fn num_queued(&self) -> usize {
        0
    }
}

static PANICS_IN_LANE_1: crate::scheduler::SchedulerEntry = crate::scheduler::SchedulerEntry {
    name: "panics_in_lane_1",
    summary: "test policy",
    token_blocks: false,
    max_pipeline_stages: None,
    takes_prefilled: false,
    knobs: &[],
    build: |_| Box::new(PanicsInLane1),
};

#[test]
fn a_panic_on_a_lane_thread_reaches_the_caller_instead_of_a_hang() {
    // the worker's panic marks it stopped, the coordinator stops waiting for it, and the panic
    // comes out of the run (a policy bug is not turned into a result)
    let mut c = TestCluster::new("vllm");
    c.entry = Some(&PANICS_IN_LANE_1);
    c.replicas = 2;
    c.threads = 2;
    c.stage_records = false;
    let specs = vec![RequestSpec::simple(0, 4, 1), RequestSpec::simple(1, 4, 1)];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.try_run(specs)));
    assert!(
        r.is_err(),
        "the run returned instead of passing the panic on"
    );
}

#[test]
fn an_arrival_just_past_the_time_limit_is_not_handed_out() {
    // the request arriving at the limit is served, the one 1 ns later never arrives; handed out
    // ahead (round_robin) it would count as arrived and get a row in requests.csv
    for router in [RouterKind::RoundRobin, RouterKind::Random, RouterKind::Lor] {
        let mut c = TestCluster::new("vllm_v1");
        c.replicas = 2;
        c.router = router;
        c.time_limit_ns = Some(ms(10));
        let specs = vec![
            RequestSpec::simple(0, 4, 2),
            RequestSpec::simple(ms(5), 4, 2),
            RequestSpec::simple(ms(10), 4, 2),
            RequestSpec::simple(ms(10) + 1, 4, 2),
            RequestSpec::simple(ms(20), 4, 2),
        ];
        let (o, requests, _) = run_with(&c, &specs, 1);
        let o = o.unwrap();
        assert!(o.time_limited);
        assert_eq!((o.arrived, requests.lines().count()), (3, 4), "{router:?}");
        assert_same_for_every_thread_count(&c, &specs).unwrap();
    }
}

#[test]
fn an_arrival_at_the_last_simulated_time_is_accepted_by_every_thread_count() {
    for router in [RouterKind::Lor, RouterKind::RoundRobin] {
        let mut c = TestCluster::new("vllm");
        c.replicas = 2;
        c.router = router;
        c.stage_records = false;
        c.time_limit_ns = Some(super::MAX_SIMULATED_NS);
        for threads in 1..=2 {
            c.threads = threads;
            let o = c
                .try_run(vec![
                    RequestSpec::simple(0, 4, 1),
                    RequestSpec::simple(super::MAX_SIMULATED_NS, 4, 1),
                ])
                .unwrap();
            assert!(o.time_limited);
            assert_eq!(
                (o.arrived, o.end_ns),
                (2, super::MAX_SIMULATED_NS),
                "{router:?}, {threads} threads"
            );
        }
    }
}
