//! Hand-computed decisions of every routing policy on made-up replica views.

use super::*;
use crate::workload::{RequestSpec, Segment};

#[test]
fn round_robin_cycles() {
    let mut r = Router::new(RouterKind::RoundRobin, 3, 0);
    let v: Vec<u32> = (0..5).map(|_| r.route(&[0, 0, 0])).collect();
    assert_eq!(v, vec![0, 1, 2, 0, 1]);
}

#[test]
fn lor_uses_unfinished_counts_lowest_id_on_ties() {
    let mut r = Router::new(RouterKind::Lor, 3, 0);
    assert_eq!(r.route(&[2, 1, 1]), 1);
    assert_eq!(r.route(&[0, 1, 0]), 0);
}

#[test]
fn random_is_seeded_and_in_range() {
    let a: Vec<u32> = {
        let mut r = Router::new(RouterKind::Random, 4, 7);
        (0..50).map(|_| r.route(&[])).collect()
    };
    let b: Vec<u32> = {
        let mut r = Router::new(RouterKind::Random, 4, 7);
        (0..50).map(|_| r.route(&[])).collect()
    };
    assert_eq!(a, b);
    assert!(a.iter().all(|&x| x < 4));
    assert!((0..4).all(|k| a.contains(&k)));
}

/// A made-up cluster: per replica, unfinished requests, (KV blocks used, capacity) and how many
/// leading prompt blocks it has cached.
struct View {
    outstanding: Vec<u32>,
    kv: Vec<(u64, u64)>,
    cached: Vec<u32>,
    block_size: Option<u32>,
}

impl View {
    fn load(outstanding: &[u32]) -> Self {
        View {
            outstanding: outstanding.to_vec(),
            kv: vec![(0, 100); outstanding.len()],
            cached: vec![0; outstanding.len()],
            block_size: Some(16),
        }
    }
    fn cached(mut self, cached: &[u32]) -> Self {
        self.cached = cached.to_vec();
        self
    }
    fn kv(kv: &[(u64, u64)]) -> Self {
        View {
            kv: kv.to_vec(),
            ..View::load(&vec![0; kv.len()])
        }
    }
}

impl ReplicaView for View {
    fn num_replicas(&self) -> u32 {
        self.outstanding.len() as u32
    }
    fn outstanding(&self, replica: u32) -> u32 {
        self.outstanding[replica as usize]
    }
    fn kv_blocks(&self, replica: u32) -> (u64, u64) {
        self.kv[replica as usize]
    }
    fn prefix_block_size(&self) -> Option<u32> {
        self.block_size
    }
    fn cached_prefix_blocks(&self, replica: u32, hashes: &[u64]) -> u32 {
        self.cached[replica as usize].min(hashes.len() as u32)
    }
}

/// An 81-token prompt whose first 64 tokens are shared segment 7: with 16-token blocks a lookup
/// considers ⌊80 / 16⌋ = 5 blocks, 4 of them shared.
fn prompt() -> Request {
    let spec = RequestSpec {
        segments: vec![Segment { id: 7, tokens: 64 }],
        ..RequestSpec::simple(0, 81, 8)
    };
    Request::new(0, 0, &spec)
}

fn kv_aware(overlap_weight: f64, load_weight: f64, n: u32) -> Router {
    Router::new(RouterKind::KvAware, n, 0).with_weights(KvAwareWeights {
        overlap_weight,
        load_weight,
    })
}

#[test]
fn kv_aware_cached_prefix_beats_a_less_loaded_replica() {
    // Replica 0 has the 4 shared blocks and 3 requests, replica 1 nothing and 1 request.
    let v = View::load(&[3, 1]).cached(&[4, 0]);
    // Weights 4 / 1: 4 × 1/5 + 3 = 3.8 against 4 × 5/5 + 1 = 5.
    assert_eq!(kv_aware(4.0, 1.0, 2).route_request(&prompt(), &v), 0);
    // Weights 1 / 1, the load dominates: 1/5 + 3 = 3.2 against 1 + 1 = 2.
    assert_eq!(kv_aware(1.0, 1.0, 2).route_request(&prompt(), &v), 1);
}

#[test]
fn kv_aware_ties_go_to_the_lowest_id() {
    // Same cost from different parts: 5 × 5/5 + 0 = 5 against 5 × 1/5 + 4 = 5.
    let v = View::load(&[0, 4]).cached(&[0, 4]);
    assert_eq!(kv_aware(5.0, 1.0, 2).route_request(&prompt(), &v), 0);
    let v = View::load(&[4, 0]).cached(&[4, 0]);
    assert_eq!(kv_aware(5.0, 1.0, 2).route_request(&prompt(), &v), 0);
    // Nothing cached anywhere, equal loads.
    let v = View::load(&[2, 1, 1]);
    assert_eq!(kv_aware(4.0, 1.0, 3).route_request(&prompt(), &v), 1);
}

#[test]
fn kv_aware_prefers_the_longer_cached_prefix_at_equal_load() {
    // 2 of 5 blocks cached against 3 of 5: 4 × 3/5 + 1 = 3.4 against 4 × 2/5 + 1 = 2.6.
    let v = View::load(&[1, 1, 1]).cached(&[2, 3, 0]);
    assert_eq!(kv_aware(4.0, 1.0, 3).route_request(&prompt(), &v), 1);
    // A view claiming more cached blocks than the prompt has counts as a full hit, no more.
    let v = View::load(&[1, 0]).cached(&[9, 0]);
    assert_eq!(kv_aware(4.0, 0.5, 2).route_request(&prompt(), &v), 0);
}

#[test]
fn kv_aware_without_overlap_weight_or_caching_routes_on_load() {
    // Overlap weight 0: the cached replica 0 loses to the idle replica 1.
    let v = View::load(&[1, 0]).cached(&[4, 0]);
    assert_eq!(kv_aware(0.0, 1.0, 2).route_request(&prompt(), &v), 1);
    // No prefix caching: no overlap term at all, whatever the weight.
    let mut v = View::load(&[3, 2, 2]).cached(&[4, 0, 0]);
    v.block_size = None;
    assert_eq!(kv_aware(100.0, 1.0, 3).route_request(&prompt(), &v), 1);
    // Without a request (`route`): load alone.
    assert_eq!(kv_aware(100.0, 1.0, 3).route(&[3, 2, 2]), 1);
    // A prompt of one token has no full block to look up.
    let short = Request::new(0, 0, &RequestSpec::simple(0, 1, 8));
    let v = View::load(&[1, 0]).cached(&[4, 0]);
    assert_eq!(kv_aware(100.0, 1.0, 2).route_request(&short, &v), 1);
}

#[test]
fn kv_aware_without_load_weight_piles_onto_the_cached_replica() {
    // Overlap only: the replica with the prefix wins however loaded it is ...
    let v = View::load(&[50, 0, 0]).cached(&[4, 0, 0]);
    assert_eq!(kv_aware(1.0, 0.0, 3).route_request(&prompt(), &v), 0);
    // ... and a prompt cached nowhere goes to replica 0 (every cost is 1).
    let v = View::load(&[50, 0, 0]);
    assert_eq!(kv_aware(1.0, 0.0, 3).route_request(&prompt(), &v), 0);
}

#[test]
fn least_kv_compares_usage_fractions_exactly() {
    // 5/10, 2/10, 1/4: replica 1.
    let mut r = Router::new(RouterKind::LeastKv, 3, 0);
    assert_eq!(
        r.route_request(&prompt(), &View::kv(&[(5, 10), (2, 10), (1, 4)])),
        1
    );
    // 1/4 = 2/8 = 3/12: a tie, lowest id; then 3/12 against 1/5 (smaller) against 1/3.
    assert_eq!(
        r.route_request(&prompt(), &View::kv(&[(1, 4), (2, 8), (3, 12)])),
        0
    );
    assert_eq!(
        r.route_request(&prompt(), &View::kv(&[(3, 12), (1, 5), (1, 3)])),
        1
    );
    // Usage, not blocks: 4 of 100 blocks is less than 1 of 10.
    assert_eq!(
        r.route_request(&prompt(), &View::kv(&[(1, 10), (4, 100)])),
        1
    );
    // Load does not count: replica 0 has more requests, but fewer blocks in use.
    let mut v = View::kv(&[(1, 10), (2, 10)]);
    v.outstanding = vec![9, 0];
    assert_eq!(r.route_request(&prompt(), &v), 0);
}

#[test]
fn power_of_two_draws_two_distinct_replicas_and_keeps_the_less_loaded() {
    // Two replicas: both are always drawn, so the less loaded one always wins.
    let mut r = Router::new(RouterKind::PowerOfTwo, 2, 3);
    assert!((0..20).all(|_| r.route(&[5, 3]) == 1));
    assert!((0..20).all(|_| r.route(&[3, 5]) == 0));
    // Equal loads: the lower id.
    assert!((0..20).all(|_| r.route(&[4, 4]) == 0));
    // Three replicas, 0 idle, 1 and 2 equally busy: the pairs {0,1} and {0,2} give 0, {1,2}
    // gives 1; 2 never wins because the two draws are distinct.
    let mut r = Router::new(RouterKind::PowerOfTwo, 3, 3);
    let picks: Vec<u32> = (0..200).map(|_| r.route(&[0, 5, 5])).collect();
    assert!(!picks.contains(&2));
    assert!(picks.contains(&0) && picks.contains(&1));
    // Roughly one pick in three is replica 1 (a seeded sequence: this is not a timing test).
    let ones = picks.iter().filter(|&&p| p == 1).count();
    assert!((40..=95).contains(&ones), "{ones} of 200");
    // One replica: always 0.
    let mut r = Router::new(RouterKind::PowerOfTwo, 1, 3);
    assert_eq!(r.route(&[7]), 0);
}

#[test]
fn power_of_two_is_seeded() {
    let run = |seed| {
        let mut r = Router::new(RouterKind::PowerOfTwo, 8, seed);
        let load = [3, 1, 4, 1, 5, 9, 2, 6];
        (0..100).map(|_| r.route(&load)).collect::<Vec<u32>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
    // Every pick is one of the two drawn, so the busiest replica (5, load 9) never wins.
    assert!(!run(11).contains(&5));
}

#[test]
fn weights_are_validated() {
    assert_eq!(KvAwareWeights::default().validate(), Ok(()));
    let ok = KvAwareWeights {
        overlap_weight: 0.0,
        load_weight: 2.0,
    };
    assert_eq!(ok.validate(), Ok(()));
    for (w, field) in [
        ((-1.0, 1.0), "overlap_weight"),
        ((f64::NAN, 1.0), "overlap_weight"),
        ((1.0, f64::INFINITY), "load_weight"),
        ((1.0, -0.5), "load_weight"),
        ((0.0, 0.0), "load_weight"),
    ] {
        let weights = KvAwareWeights {
            overlap_weight: w.0,
            load_weight: w.1,
        };
        let (f, why) = weights.validate().unwrap_err();
        assert_eq!(f, field, "{w:?}");
        assert!(why.contains("--kv-"), "{why}");
    }
}
