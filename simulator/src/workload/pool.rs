//! A fixed pool of prompts with shared system prompts, cycled in a shuffled order
//! (`[workload.shared_prefix]`), as inference-perf's `shared_prefix` data generator serves them.

use rand::prelude::*;

use super::arrival::{seconds_to_ns, ArrivalProcess};
use super::config::SharedPrefixConfig;
use super::synthetic::Bounds;
use super::{RequestSpec, Segment};

/// Segment ids of the pool: system prompt `g` is `g`, question `i` is `num_groups + i`.
pub(crate) struct PromptPool {
    arrivals: ArrivalProcess,
    bounds: Bounds,
    /// (system prompt segment, question segment) per pool slot, in serving order.
    order: Vec<(Segment, Segment)>,
    next: usize,
    prompt_tokens: u32,
    output_tokens: u32,
}

impl PromptPool {
    /// The pool of `cfg` (already validated), shuffled with `rng`, arriving by `arrivals`.
    pub(crate) fn new(
        cfg: &SharedPrefixConfig,
        arrivals: ArrivalProcess,
        mut rng: StdRng,
        bounds: Bounds,
    ) -> Self {
        let groups = u64::from(cfg.num_groups);
        let mut order: Vec<(Segment, Segment)> = (0..groups)
            .flat_map(|g| {
                (0..u64::from(cfg.prompts_per_group)).map(move |p| {
                    (
                        Segment {
                            id: g,
                            tokens: cfg.system_prompt_tokens,
                        },
                        Segment {
                            id: groups + g * u64::from(cfg.prompts_per_group) + p,
                            tokens: cfg.question_tokens + cfg.extra_prompt_tokens,
                        },
                    )
                })
            })
            .collect();
        order.shuffle(&mut rng);
        PromptPool {
            arrivals,
            bounds,
            order,
            next: 0,
            prompt_tokens: cfg.prompt_tokens(),
            output_tokens: cfg.output_tokens,
        }
    }
}

impl Iterator for PromptPool {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        if self.bounds.exhausted() {
            return None;
        }
        let t_s = match self.arrivals.next_s() {
            Some(t) if !self.bounds.too_late(t) => t,
            _ => {
                self.bounds.remaining = Some(0);
                return None;
            }
        };
        let (system, question) = self.order[self.next % self.order.len()];
        self.next += 1;
        let mut r = RequestSpec::simple(seconds_to_ns(t_s), self.prompt_tokens, self.output_tokens);
        r.segments = vec![system, question];
        self.bounds.take();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{generate, ArrivalConfig, RateStage, WorkloadConfig};
    use std::collections::BTreeSet;

    fn cfg() -> WorkloadConfig {
        WorkloadConfig {
            num_requests: None,
            arrival: ArrivalConfig::Stages {
                stages: vec![
                    RateStage {
                        qps: 20.0,
                        duration_s: 30.0,
                    },
                    RateStage {
                        qps: 50.0,
                        duration_s: 30.0,
                    },
                ],
            },
            shared_prefix: Some(SharedPrefixConfig {
                num_groups: 3,
                prompts_per_group: 4,
                system_prompt_tokens: 100,
                question_tokens: 200,
                extra_prompt_tokens: 5,
                output_tokens: 50,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn prompts_cycle_through_a_shuffled_pool_and_stages_set_the_rate() {
        let reqs: Vec<RequestSpec> = generate(&cfg(), 7).unwrap().collect();
        // 20/s for 30 s then 50/s for 30 s: about 600 + 1500 requests.
        let first = reqs
            .iter()
            .filter(|r| r.arrival_ns < 30_000_000_000)
            .count();
        let second = reqs.len() - first;
        assert!((first as f64 - 600.0).abs() < 100.0, "{first}");
        assert!((second as f64 - 1500.0).abs() < 160.0, "{second}");
        assert!(reqs.last().unwrap().arrival_ns < 60_000_000_000);
        // Every prompt: 305 tokens in two segments, 50 outputs; 12 distinct prompts in a cycle.
        assert!(reqs
            .iter()
            .all(|r| r.prefill_tokens == 305 && r.decode_tokens == 50));
        let cycle: Vec<u64> = reqs[..12].iter().map(|r| r.segments[1].id).collect();
        assert_eq!(cycle.iter().collect::<BTreeSet<_>>().len(), 12);
        let again: Vec<u64> = reqs[12..24].iter().map(|r| r.segments[1].id).collect();
        assert_eq!(cycle, again);
        // A question's system prompt is its group's.
        for r in &reqs[..12] {
            assert_eq!(r.segments[0].id, (r.segments[1].id - 3) / 4);
        }
        // Shuffled: not in pool order.
        assert_ne!(cycle, (3..15).collect::<Vec<u64>>());
    }
}
