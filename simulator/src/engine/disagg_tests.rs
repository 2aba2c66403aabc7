//! Hand-computed disaggregated scenarios: one prefill replica (replica 0) and one decode replica
//! (replica 1), both `vllm_v1`, 10 ms per batch; a transfer takes 1 ms + 1 ms per prompt token
//! (4 layers); blocks of 16 tokens. Times in the comments are ms.

use super::testkit::*;
use super::transfer::TransferMode;
use crate::workload::RequestSpec;

/// r0 (10 prompt, 3 output) and r1 (20 prompt, 2 output) at 0; r2 (4 prompt, 1 output) at 5.
fn three_requests() -> Vec<RequestSpec> {
    vec![
        RequestSpec::simple(0, 10, 3),
        RequestSpec::simple(0, 20, 2),
        RequestSpec::simple(ms(5), 4, 1),
    ]
}

fn cluster(mode: TransferMode) -> TestCluster {
    let mut c = TestCluster::new("vllm_v1");
    c.disagg = Some(TestDisagg::new(mode));
    c
}

/// µs → ns.
fn us(us: u64) -> u64 {
    us * 1000
}

/// Per request: (decode replica, transfer start, transfer end, first token, second token,
/// completion), ns.
type Timeline = (Option<u32>, Option<u64>, Option<u64>, u64, Option<u64>, u64);

fn timeline(o: &super::EngineOutcome) -> Vec<Timeline> {
    o.requests
        .iter()
        .map(|r| {
            (
                r.decode_replica,
                r.kv_transfer_start_ns,
                r.kv_transfer_end_ns,
                r.first_token_at_ns.unwrap(),
                r.second_token_at_ns,
                r.completed_at_ns.unwrap(),
            )
        })
        .collect()
}

#[test]
fn after_prefill_moves_the_kv_once_the_prefill_ends() {
    // prefill replica: 0–10 prefills r0 and r1 (first tokens at 10); r2 waits, 10–20 prefills r2
    // (1 output token: done at 20, no transfer). At 10 both transfers start: r0 ends at
    // 10 + 1 + 10 = 21, r1 at 10 + 1 + 20 = 31. Decode replica: 21–31 r0 (second token);
    // r1 arrives at 31 (its transfer's end was queued before the batch's end), 31–41 r0 and r1
    // decode: both done at 41.
    let o = cluster(TransferMode::AfterPrefill).run(three_requests());
    assert_eq!(
        timeline(&o),
        vec![
            (
                Some(1),
                Some(ms(10)),
                Some(ms(21)),
                ms(10),
                Some(ms(31)),
                ms(41)
            ),
            (
                Some(1),
                Some(ms(10)),
                Some(ms(31)),
                ms(10),
                Some(ms(41)),
                ms(41)
            ),
            (None, None, None, ms(20), None, ms(20)),
        ]
    );
    assert_eq!(
        stages(&o),
        vec![
            (0, 0, 0, 10, 30, 0),
            (1, 0, 10, 20, 4, 0),
            (2, 0, 21, 31, 0, 1),
            (3, 0, 31, 41, 0, 2),
        ]
    );
    assert_eq!(o.stage_log[2].replica, 1);
    let r = &o.requests[1];
    assert_eq!((r.kv_transfer_bytes, r.replica), (20_000_000, 0));
    // the gap between the first two tokens holds the transfer and the decode's wait
    assert_eq!(r.tbt_max_ns, ms(31));
    // every block is back; each side held what the transfers needed
    assert_eq!(
        (o.replicas[0].kv.allocated(), o.replicas[1].kv.allocated()),
        (0, 0)
    );
    // prefill side: r0 (1 block) and r1 (2) until their transfers end, r2 (1) from 10 to 20;
    // decode side: r0 (1) and r1 (2)
    assert_eq!(o.replicas[0].kv.peak_allocated(), 4);
    assert_eq!(o.replicas[1].kv.peak_allocated(), 3);
    assert_eq!(o.completed, 3);
}

#[test]
fn layerwise_streams_the_kv_while_the_prefill_runs() {
    // The batch 0–10 completes both prefills, so both transfers start at its formation (0).
    // r0: max(10 + 1 + 10/4, 0 + 11) = 13.5; r1: max(10 + 1 + 20/4, 0 + 21) = 21.
    // Decode replica: 13.5–23.5 r0; r1 arrives at 21; 23.5–33.5 r0 and r1: both done.
    let o = cluster(TransferMode::Layerwise).run(three_requests());
    assert_eq!(
        timeline(&o),
        vec![
            (
                Some(1),
                Some(0),
                Some(us(13_500)),
                ms(10),
                Some(us(23_500)),
                us(33_500)
            ),
            (
                Some(1),
                Some(0),
                Some(ms(21)),
                ms(10),
                Some(us(33_500)),
                us(33_500)
            ),
            (None, None, None, ms(20), None, ms(20)),
        ]
    );
    // decode blocks were taken at 0, while the prefill replica held its own
    assert_eq!(o.replicas[1].kv.peak_allocated(), 3);
    assert_eq!(o.replicas[0].kv.peak_allocated(), 4);
    assert_eq!(
        (o.replicas[0].kv.allocated(), o.replicas[1].kv.allocated()),
        (0, 0)
    );
}

#[test]
fn a_full_decode_replica_backs_up_into_the_prefill_replica() {
    // Decode replica of 2 blocks. r0 (20 prompt, 3 output: 2 blocks) and r1 (10 prompt, 2
    // output: 1 block) prefill 0–10. r0's transfer 10–31; r1 waits at the prefill replica holding
    // its block. Decode 31–41, 41–51 (r0 done, its blocks free); r1's transfer 51–62; 62–72 r1.
    let mut c = cluster(TransferMode::AfterPrefill);
    c.disagg.as_mut().unwrap().num_blocks = 2;
    c.max_request_tokens = 32;
    let o = c.run(vec![
        RequestSpec::simple(0, 20, 3),
        RequestSpec::simple(0, 10, 2),
    ]);
    assert_eq!(
        timeline(&o),
        vec![
            (
                Some(1),
                Some(ms(10)),
                Some(ms(31)),
                ms(10),
                Some(ms(41)),
                ms(51)
            ),
            (
                Some(1),
                Some(ms(51)),
                Some(ms(62)),
                ms(10),
                Some(ms(72)),
                ms(72)
            ),
        ]
    );
    assert_eq!(o.replicas[1].kv.peak_allocated(), 2);
    assert_eq!(o.replicas[0].kv.peak_allocated(), 3);
}

#[test]
fn a_decode_replica_takes_no_more_than_its_running_cap() {
    // max_num_seqs = 1 on the decode replica: r1's transfer waits for r0 to finish although the
    // blocks are there. r0 (10 prompt, 2 output): transfer 10–21, decode 21–31 (done);
    // r1 (10 prompt, 2 output): transfer 31–42, decode 42–52.
    let mut c = cluster(TransferMode::AfterPrefill);
    c.disagg.as_mut().unwrap().scheduler.vllm_v1.max_num_seqs = 1;
    let o = c.run(vec![
        RequestSpec::simple(0, 10, 2),
        RequestSpec::simple(0, 10, 2),
    ]);
    let t = timeline(&o);
    assert_eq!(
        (t[0].1, t[0].2, t[0].5),
        (Some(ms(10)), Some(ms(21)), ms(31))
    );
    assert_eq!(
        (t[1].1, t[1].2, t[1].5),
        (Some(ms(31)), Some(ms(42)), ms(52))
    );
}

#[test]
fn decode_replicas_are_chosen_by_the_decode_pools_router() {
    // two decode replicas (1 and 2), round robin: r0 → 1, r1 → 2, r2 → 1
    let mut c = cluster(TransferMode::AfterPrefill);
    c.disagg.as_mut().unwrap().replicas = 2;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(0, 4, 2),
    ]);
    let d: Vec<Option<u32>> = o.requests.iter().map(|r| r.decode_replica).collect();
    assert_eq!(d, vec![Some(1), Some(2), Some(1)]);
    assert!(o.requests.iter().all(|r| r.replica == 0));
    assert_eq!((o.replicas[1].batches, o.replicas[2].batches), (1, 1));
}

#[test]
fn every_decode_capable_policy_gives_the_same_decode_timeline() {
    // the decode replica only decodes here, so sarathi and vllm decode as vllm_v1 does
    let expected = timeline(&cluster(TransferMode::AfterPrefill).run(three_requests()));
    for name in ["sarathi", "vllm"] {
        let mut c = cluster(TransferMode::AfterPrefill);
        c.disagg.as_mut().unwrap().scheduler.name = name.into();
        assert_eq!(timeline(&c.run(three_requests())), expected, "{name}");
    }
}

#[test]
fn a_policy_that_cannot_decode_prefilled_requests_is_an_error_not_a_stall() {
    let mut c = cluster(TransferMode::AfterPrefill);
    c.disagg.as_mut().unwrap().scheduler.name = "orca".into();
    match c.try_run(three_requests()) {
        Err(crate::error::SimError::Internal(why)) => {
            assert!(
                why.contains("decode replica 1") && why.contains("prefilled elsewhere"),
                "{why}"
            )
        }
        other => panic!(
            "expected an internal error, got {:?}",
            other.map(|o| o.completed)
        ),
    }
}
