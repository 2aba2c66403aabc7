//! Invariants of disaggregated serving over random workloads, pool shapes, policies and transfer
//! modes.

use proptest::prelude::*;

use super::testkit::*;
use super::transfer::{TransferMode, TransferModel};
use crate::router::RouterKind;
use crate::scheduler::SCHEDULERS;
use crate::workload::RequestSpec;

fn workload() -> impl Strategy<Value = Vec<RequestSpec>> {
    prop::collection::vec((0u64..30, 1u32..150, 1u32..30), 1..30).prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(gap_ms, p, d)| {
                t += gap_ms * 1_000_000;
                RequestSpec::simple(t, p, d)
            })
            .collect()
    })
}

fn router() -> impl Strategy<Value = RouterKind> {
    prop_oneof![
        Just(RouterKind::RoundRobin),
        Just(RouterKind::Random),
        Just(RouterKind::Lor)
    ]
}

fn cluster() -> impl Strategy<Value = TestCluster> {
    let decode_policies: Vec<&'static str> = SCHEDULERS
        .iter()
        .filter(|e| e.takes_prefilled)
        .map(|e| e.name)
        .collect();
    (
        (0..SCHEDULERS.len(), 1u32..3, 1u32..3, router(), 12u64..60),
        (
            prop::sample::select(decode_policies),
            1u32..3,
            1u32..3,
            router(),
            12u64..60,
        ),
        (
            any::<bool>(),
            0u64..3_000_000,
            1u64..4_000_000,
            1u32..8,
            1u32..9,
        ),
    )
        .prop_map(|(p, d, (layerwise, latency_ns, bytes, layers, seqs))| {
            let (ps, preplicas, ppp, prouter, pblocks) = p;
            let entry = &SCHEDULERS[ps];
            let mut c = TestCluster::new(entry.name);
            c.replicas = preplicas;
            c.pp = if entry.max_pipeline_stages == Some(1) {
                1
            } else {
                ppp
            };
            c.router = prouter;
            c.max_request_tokens = 180;
            c.scheduler.block_size = 16;
            c.num_blocks = if entry.token_blocks {
                pblocks * 16
            } else {
                pblocks
            };
            c.stage_ms = 3.0;
            let (dname, dreplicas, dpp, drouter, dblocks) = d;
            let mut t = TestDisagg::new(if layerwise {
                TransferMode::Layerwise
            } else {
                TransferMode::AfterPrefill
            });
            t.scheduler.name = dname.into();
            t.scheduler.block_size = 16;
            t.scheduler.vllm_v1.max_num_seqs = seqs;
            t.scheduler.batch_size_cap = seqs * dpp;
            t.replicas = dreplicas;
            t.pp = dpp;
            t.router = drouter;
            t.num_blocks = dblocks;
            t.stage_ms = 2.0;
            t.transfer = TransferModel {
                latency_ns,
                kv_bytes_per_token: bytes,
                layers,
                ..t.transfer
            };
            c.disagg = Some(t);
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every request finishes exactly once; KV blocks never exceed either side's capacity and all
    /// come back; a request's transfer starts no earlier than its prefill's last batch was formed
    /// (after the prefill's end in `after_prefill` mode) and ends exactly at
    /// `max(prefill end + tail, start + duration)`, hence strictly after the prefill's end and
    /// never before its own duration; the decode replica produces the second token after it.
    #[test]
    fn disaggregated_invariants_hold(c in cluster(), specs in workload()) {
        let n = specs.len();
        // A run that never ends fails as a case instead of growing without bound (every case
        // ends within seconds of simulated time).
        let mut c = c;
        c.time_limit_ns = Some(RUNAWAY_LIMIT_NS);
        let o = c.run(specs.clone());
        prop_assert!(!o.time_limited, "the run did not end within 1,000 simulated seconds");
        let d = c.disagg.as_ref().unwrap();
        prop_assert_eq!(o.completed as usize, n);
        prop_assert_eq!(o.requests.len(), n);
        for (r, s) in o.requests.iter().zip(&specs) {
            prop_assert!(r.completed && !r.leaving && r.source_kv_blocks == 0);
            prop_assert_eq!(r.emitted_tokens, s.decode_tokens);
            prop_assert!(r.replica < c.replicas);
            let first = r.first_token_at_ns.unwrap();
            if s.decode_tokens == 1 {
                // done with its prefill: nothing moves
                prop_assert_eq!(r.decode_replica, None);
                prop_assert_eq!(r.kv_transfer_end_ns, None);
                continue;
            }
            let dr = r.decode_replica.unwrap();
            prop_assert!(dr >= c.replicas && dr < c.replicas + d.replicas);
            let start = r.kv_transfer_start_ns.unwrap();
            let end = r.kv_transfer_end_ns.unwrap();
            let bytes = d.transfer.bytes(s.prefill_tokens);
            prop_assert_eq!(r.kv_transfer_bytes, bytes);
            prop_assert!(r.arrived_at_ns <= start);
            if d.transfer.mode == TransferMode::AfterPrefill {
                prop_assert!(start >= first);
            }
            prop_assert_eq!(end, d.transfer.end_ns(start, first, bytes));
            prop_assert!(end > first || (end == first && d.transfer.tail_ns(bytes) == 0));
            prop_assert!(end >= start + d.transfer.duration_ns(bytes));
            prop_assert!(r.second_token_at_ns.unwrap() > end);
        }
        // prefill replicas never decode; the decode replicas prefill only to recompute
        let restarts: u64 = o.replicas.iter().map(|x| x.restarts).sum();
        for st in &o.stage_log {
            if st.replica < c.replicas {
                prop_assert_eq!(st.decode_tokens, 0);
            } else if restarts == 0 {
                prop_assert_eq!(st.prefill_tokens, 0);
            }
        }
        for rep in &o.replicas {
            prop_assert!(rep.kv.peak_allocated() <= rep.kv.num_blocks());
            prop_assert_eq!(rep.kv.allocated(), 0);
            prop_assert_eq!(rep.outstanding, 0);
            prop_assert!(rep.max_in_flight <= rep.pp());
        }
    }
}
