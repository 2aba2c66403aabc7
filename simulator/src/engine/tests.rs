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
