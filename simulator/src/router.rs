//! Routers (Vidur's global schedulers; docs/design.md §6.1): which replica a new request goes to.
//!
//! Fixed against Vidur: least-outstanding-requests counts every request on a replica that has not
//! finished (queued, admitted or in a running batch), not only the queued ones.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// Routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// Replica `i mod N` for the i-th request.
    #[default]
    #[value(name = "round_robin")]
    RoundRobin,
    /// A uniformly random replica (seeded).
    Random,
    /// The replica with the fewest unfinished requests (lowest id on ties).
    Lor,
}

/// A router with its state.
#[derive(Debug)]
pub struct Router {
    kind: RouterKind,
    num_replicas: u32,
    counter: u64,
    rng: StdRng,
}

impl Router {
    /// A router over `num_replicas` replicas; `seed` drives the random policy.
    pub fn new(kind: RouterKind, num_replicas: u32, seed: u64) -> Self {
        Router {
            kind,
            num_replicas: num_replicas.max(1),
            counter: 0,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_0f40_07e4),
        }
    }

    /// The replica for the next request, given each replica's unfinished request count.
    pub fn route(&mut self, outstanding: &[u32]) -> u32 {
        match self.kind {
            RouterKind::RoundRobin => {
                let r = (self.counter % self.num_replicas as u64) as u32;
                self.counter += 1;
                r
            }
            RouterKind::Random => self.rng.random_range(0..self.num_replicas),
            RouterKind::Lor => {
                let mut best = 0usize;
                for (i, &n) in outstanding.iter().enumerate() {
                    if n < outstanding[best] {
                        best = i;
                    }
                }
                best as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
