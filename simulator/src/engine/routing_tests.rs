//! Routers in the engine: what each one reads of the replicas (unfinished requests, KV blocks in
//! use, cached prefixes) and what `kv_aware` routing does to the prefix-cache hit rate.

use super::testkit::{ms, TestCluster};
use super::EngineOutcome;
use crate::router::{KvAwareWeights, RouterKind};
use crate::workload::{RequestSpec, Segment};

/// `n` requests `gap_ms` apart; request `i` is shared prefix `i mod 5` (64 tokens, 4 blocks of
/// 16), then 16 unique tokens, and 4 output tokens.
fn shared_prefix(n: u64, gap_ms: u64) -> Vec<RequestSpec> {
    (0..n)
        .map(|i| RequestSpec {
            segments: vec![Segment {
                id: i % 5,
                tokens: 64,
            }],
            ..RequestSpec::simple(ms(i * gap_ms), 80, 4)
        })
        .collect()
}

/// Four `vllm_v1` replicas (prefix caching on), 10 ms per batch.
fn cluster(router: RouterKind, weights: KvAwareWeights) -> TestCluster {
    let mut c = TestCluster::new("vllm_v1");
    c.replicas = 4;
    c.router = router;
    c.router_weights = weights;
    c
}

fn hits(o: &EngineOutcome) -> usize {
    o.requests
        .iter()
        .filter(|r| r.cached_prefill_tokens > 0)
        .count()
}

fn placed(o: &EngineOutcome) -> Vec<u32> {
    o.requests.iter().map(|r| r.replica).collect()
}

/// Requests served per replica, counted from the requests; checks the replicas' own counters.
fn per_replica(o: &EngineOutcome) -> Vec<u64> {
    let mut n = vec![0; o.replicas.len()];
    for r in &o.requests {
        n[r.replica as usize] += 1;
    }
    let counted: Vec<u64> = o.replicas.iter().map(|r| r.requests).collect();
    assert_eq!(counted, n);
    n
}

const STRONG_OVERLAP: KvAwareWeights = KvAwareWeights {
    overlap_weight: 100.0,
    load_weight: 1.0,
};

const BALANCED: KvAwareWeights = KvAwareWeights {
    overlap_weight: 1.0,
    load_weight: 1.0,
};

#[test]
fn kv_aware_hits_where_round_robin_misses_on_an_idle_cluster() {
    // Requests 50 ms apart finish in 40 ms (prefill, then 3 decode steps): every replica is idle at
    // each arrival. Round robin sends request i to replica i mod 4 with prefix i mod 5: the first
    // 20 requests meet each (prefix, replica) pair once, all miss; the next 20 all hit.
    let specs = shared_prefix(40, 50);
    let rr = cluster(RouterKind::RoundRobin, STRONG_OVERLAP).run(specs.clone());
    assert_eq!(hits(&rr), 20);
    assert_eq!(per_replica(&rr), vec![10; 4]);
    // kv_aware: the first use of each prefix misses (every replica costs the same: replica 0),
    // every later one goes where the prefix is cached: replica 0, 35 hits of 64 tokens each.
    let kv = cluster(RouterKind::KvAware, STRONG_OVERLAP).run(specs);
    assert_eq!(hits(&kv), 35);
    assert_eq!(placed(&kv), vec![0; 40]);
    assert!(kv.requests[5..]
        .iter()
        .all(|r| r.cached_prefill_tokens == 64));
    let stats = kv.replicas[0].kv.prefix_stats();
    assert_eq!((stats.lookups, stats.hit_blocks), (40, 35 * 4));
}

#[test]
fn kv_aware_under_load_trades_hits_for_balance_by_its_weights() {
    // Requests 2 ms apart, each needing at least 4 steps of 10 ms: tens unfinished at any time.
    let specs = shared_prefix(200, 2);
    let run = |router, weights| cluster(router, weights).run(specs.clone());
    let rr = run(RouterKind::RoundRobin, KvAwareWeights::default());
    let lor = run(RouterKind::Lor, KvAwareWeights::default());
    let kv = run(RouterKind::KvAware, KvAwareWeights::default());
    let sticky = run(RouterKind::KvAware, STRONG_OVERLAP);
    let balanced = run(RouterKind::KvAware, BALANCED);
    let (h_rr, h_lor, h_kv) = (hits(&rr), hits(&lor), hits(&kv));
    let (h_sticky, h_balanced) = (hits(&sticky), hits(&balanced));
    let max = |o: &EngineOutcome| *per_replica(o).iter().max().unwrap();
    eprintln!(
        "hits: rr {h_rr}, lor {h_lor}, kv_aware {h_kv}, overlap 100 {h_sticky}, overlap 1 {h_balanced}; per replica: rr {:?}, lor {:?}, kv_aware {:?}, overlap 100 {:?}, overlap 1 {:?}",
        per_replica(&rr),
        per_replica(&lor),
        per_replica(&kv),
        per_replica(&sticky),
        per_replica(&balanced),
    );
    assert!(h_kv > h_rr && h_kv > h_lor, "{h_kv} vs {h_rr}, {h_lor}");
    // A dominant overlap weight buys more hits and concentrates the load more than a weight
    // that lets one unfinished request outweigh a whole prompt's prefill.
    assert!(h_sticky > h_balanced);
    assert!(max(&sticky) > max(&balanced));
    // Same inputs, same routing.
    let again = run(RouterKind::KvAware, KvAwareWeights::default());
    assert_eq!(placed(&again), placed(&kv));
    assert_eq!(again.requests, kv.requests);
}

#[test]
fn kv_aware_without_prefix_caching_routes_like_lor() {
    let specs = shared_prefix(60, 3);
    let mut c = cluster(RouterKind::KvAware, STRONG_OVERLAP);
    c.scheduler.enable_prefix_caching = Some(false);
    let kv = c.run(specs.clone());
    c.router = RouterKind::Lor;
    let lor = c.run(specs);
    assert_eq!(hits(&kv), 0);
    assert_eq!(placed(&kv), placed(&lor));
    assert!(per_replica(&lor).iter().filter(|&&n| n > 0).count() > 1);
}

#[test]
fn least_kv_reads_the_blocks_in_use_not_the_queue() {
    // vllm allocates a request's blocks when it joins a batch; 4-token prompts hold 1 block, and
    // each request takes a 10 ms prefill and a 10 ms decode step. r0 (0 ms) runs on replica 0
    // from 0 to 20 ms, so r1 (1 ms) goes to the empty replica 1 (running 1–21 ms). r2 (2 ms) and
    // r3 (3 ms) find 1 block in use on each: ties, replica 0, where they wait in the queue holding
    // nothing until the batch ends at 10 ms. r4 (12 ms) finds 3 blocks on replica 0 (r0, r2, r3)
    // against 1: replica 1.
    let mut c = TestCluster::new("vllm");
    c.replicas = 2;
    c.router = RouterKind::LeastKv;
    let o = c.run(vec![
        RequestSpec::simple(0, 4, 2),
        RequestSpec::simple(ms(1), 4, 2),
        RequestSpec::simple(ms(2), 4, 2),
        RequestSpec::simple(ms(3), 4, 2),
        RequestSpec::simple(ms(12), 4, 2),
    ]);
    assert_eq!(placed(&o), vec![0, 1, 0, 0, 1]);
}

#[test]
fn power_of_two_on_two_replicas_is_lor() {
    // With two replicas both are always drawn: the fewer unfinished requests win, replica 0 on ties.
    let mut c = TestCluster::new("vllm");
    c.replicas = 2;
    c.router = RouterKind::PowerOfTwo;
    let specs = vec![
        RequestSpec::simple(0, 4, 10),
        RequestSpec::simple(ms(1), 4, 10),
        RequestSpec::simple(ms(2), 4, 10),
    ];
    assert_eq!(placed(&c.run(specs)), vec![0, 1, 0]);
}
