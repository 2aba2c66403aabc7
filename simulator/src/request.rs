//! Per-request simulation state (docs/design.md §5.2), with Vidur's restart bug fixed: a request
//! restarted before its prefill finished keeps its prompt as prompt.
//!
//! Time-between-tokens is kept as running sums (count, sum, max); no per-token history is stored.

use crate::workload::{RequestSpec, Segment};

/// Request id: 0-based, in arrival order.
pub type ReqId = u32;

/// What happened to a request at the end of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenOutcome {
    /// The batch produced an output token for the request.
    pub emitted_token: bool,
    /// Gap since the previous output token, ns, when there was one.
    pub gap_ns: Option<u64>,
    /// The request finished.
    pub completed: bool,
}

/// One request being simulated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Id (index in arrival order).
    pub id: ReqId,
    /// Replica the router sent it to.
    pub replica: u32,
    /// Arrival time, ns.
    pub arrived_at_ns: u64,
    /// Prompt length as generated, tokens.
    pub prefill_tokens: u32,
    /// Output length as generated, tokens.
    pub decode_tokens: u32,
    /// Prompt length of the current attempt: after a restart, every token processed so far is
    /// prompt.
    pub current_prefill_tokens: u32,
    /// Tokens whose KV entries exist (or are being computed) in the current attempt; a prefix cache
    /// may start this above 0.
    pub processed_tokens: u32,
    /// Prompt tokens served from a prefix cache (0 without caching).
    pub cached_prefill_tokens: u32,
    /// The current attempt's prefill has finished.
    pub prefill_complete: bool,
    /// All output tokens produced.
    pub completed: bool,
    /// The current attempt has been in a batch.
    pub scheduled: bool,
    /// First time in a batch (kept across restarts).
    pub scheduled_at_ns: Option<u64>,
    /// Time of the first output token (kept across restarts).
    pub first_token_at_ns: Option<u64>,
    /// Completion time.
    pub completed_at_ns: Option<u64>,
    /// Time of the latest output token.
    pub last_token_at_ns: u64,
    /// Output tokens produced so far (over all attempts).
    pub emitted_tokens: u32,
    /// Gaps between consecutive output tokens: count.
    pub tbt_count: u32,
    /// Gaps between consecutive output tokens: sum, ns.
    pub tbt_sum_ns: u64,
    /// Gaps between consecutive output tokens: maximum, ns.
    pub tbt_max_ns: u64,
    /// Time in executing batches, summed over pipeline stages, ns.
    pub execution_ns: u64,
    /// Times its KV blocks were taken away.
    pub num_preemptions: u32,
    /// Times it was restarted from scratch.
    pub num_restarts: u32,
    /// KV blocks it holds on its replica.
    pub kv_blocks: u32,
    /// It is in a batch that has not finished. The engine sets it for every entry of a batch a
    /// policy forms (after `next_batch` returns) and clears it before the policy's `on_batch_end`,
    /// so policies read it instead of tracking their own per-request flags.
    pub in_flight: bool,
    /// Tokens it processed in batches, over all attempts.
    pub batch_tokens: u64,
    /// The prompt's shared content, as generated (for prefix caching).
    pub segments: Vec<Segment>,
    /// Content identity of its output, when a later prompt contains it.
    pub output_segment: Option<u64>,
    /// Conversation it belongs to.
    pub session_id: Option<u64>,
    /// Prompt tokens computed (not served from a prefix cache), summed over attempts.
    pub computed_prefill_tokens: u32,
    /// Front-end time outside the engine, ns: the client sees the first token and completion
    /// this much later than the engine produces them (TTFT and E2E include it).
    pub frontend_ns: u64,
    /// Disaggregated serving: its prefill runs on a prefill replica and its KV cache still has to
    /// move to a decode replica (docs/design.md §11).
    pub handoff_pending: bool,
    /// Its prefill finished on a prefill replica: the policy there drops it (as it drops a
    /// completed request) while its KV cache moves to a decode replica.
    pub leaving: bool,
    /// Decode replica (disaggregated serving).
    pub decode_replica: Option<u32>,
    /// Blocks it still holds on its prefill replica while its KV cache moves (its `kv_blocks` are
    /// then the decode replica's).
    pub source_kv_blocks: u32,
    /// Start of its KV transfer (decode blocks allocated), ns.
    pub kv_transfer_start_ns: Option<u64>,
    /// End of its KV transfer (decode admission), ns.
    pub kv_transfer_end_ns: Option<u64>,
    /// Bytes of KV cache moved.
    pub kv_transfer_bytes: u64,
    /// Time of its second output token (the end of its first decode step), ns.
    pub second_token_at_ns: Option<u64>,
}

impl Request {
    /// A fresh request from its spec.
    pub fn new(id: ReqId, replica: u32, spec: &RequestSpec) -> Self {
        Request {
            id,
            replica,
            arrived_at_ns: spec.arrival_ns,
            prefill_tokens: spec.prefill_tokens,
            decode_tokens: spec.decode_tokens,
            current_prefill_tokens: spec.prefill_tokens,
            processed_tokens: 0,
            cached_prefill_tokens: 0,
            prefill_complete: false,
            completed: false,
            scheduled: false,
            scheduled_at_ns: None,
            first_token_at_ns: None,
            completed_at_ns: None,
            last_token_at_ns: 0,
            emitted_tokens: 0,
            tbt_count: 0,
            tbt_sum_ns: 0,
            tbt_max_ns: 0,
            execution_ns: 0,
            num_preemptions: 0,
            num_restarts: 0,
            kv_blocks: 0,
            in_flight: false,
            batch_tokens: 0,
            segments: spec.segments.clone(),
            output_segment: spec.output_segment,
            session_id: spec.session_id,
            computed_prefill_tokens: 0,
            frontend_ns: 0,
            handoff_pending: false,
            leaving: false,
            decode_replica: None,
            source_kv_blocks: 0,
            kv_transfer_start_ns: None,
            kv_transfer_end_ns: None,
            kv_transfer_bytes: 0,
            second_token_at_ns: None,
        }
    }

    /// Its replica's policy is done with it: it completed, or its prefill finished on a prefill
    /// replica and it leaves for a decode replica.
    pub fn done_here(&self) -> bool {
        self.completed || self.leaving
    }

    /// Prompt plus output tokens.
    pub fn total_tokens(&self) -> u32 {
        self.prefill_tokens + self.decode_tokens
    }

    /// Prompt tokens of the current attempt not yet processed (0 once the prefill is complete).
    pub fn remaining_prefill_tokens(&self) -> u32 {
        if self.prefill_complete {
            0
        } else {
            self.current_prefill_tokens - self.processed_tokens
        }
    }

    /// Output tokens still to produce in the current attempt's decode phase.
    pub fn remaining_tokens(&self) -> u32 {
        self.total_tokens() - self.processed_tokens
    }

    /// Marks the request as entering a batch at `now_ns`.
    pub fn on_schedule(&mut self, now_ns: u64) {
        if !self.scheduled {
            self.scheduled = true;
            if self.scheduled_at_ns.is_none() {
                self.scheduled_at_ns = Some(now_ns);
            }
        }
    }

    /// Accounts for a batch ending at `now_ns` in which the request processed `tokens` tokens and
    /// spent `execution_ns` executing (all stages).
    pub fn on_batch_end(&mut self, now_ns: u64, tokens: u32, execution_ns: u64) -> TokenOutcome {
        self.execution_ns += execution_ns;
        self.batch_tokens += tokens as u64;
        if !self.prefill_complete {
            self.computed_prefill_tokens += tokens;
        }
        self.processed_tokens += tokens;
        let mut out = TokenOutcome::default();
        if !self.prefill_complete {
            debug_assert!(self.processed_tokens <= self.current_prefill_tokens);
            if self.processed_tokens == self.current_prefill_tokens {
                self.prefill_complete = true;
                // the prefill's last iteration produces the next output token
                self.processed_tokens += 1;
                out.emitted_token = true;
            }
        } else {
            out.emitted_token = true;
        }
        if out.emitted_token {
            self.emitted_tokens += 1;
            if self.first_token_at_ns.is_none() {
                self.first_token_at_ns = Some(now_ns);
            } else {
                let gap = now_ns - self.last_token_at_ns;
                self.tbt_count += 1;
                self.tbt_sum_ns += gap;
                self.tbt_max_ns = self.tbt_max_ns.max(gap);
                out.gap_ns = Some(gap);
                if self.tbt_count == 1 {
                    self.second_token_at_ns = Some(now_ns);
                }
            }
            self.last_token_at_ns = now_ns;
        }
        debug_assert!(self.processed_tokens <= self.total_tokens());
        if self.processed_tokens == self.total_tokens() {
            self.completed = true;
            self.completed_at_ns = Some(now_ns);
            out.completed = true;
        } else if self.handoff_pending && self.prefill_complete {
            self.leaving = true;
        }
        out
    }

    /// Applies `steps` consecutive single-token decode steps at once, the first ending at
    /// `first_end_ns` and the last at `now_ns`, the same as `steps` calls of
    /// [`Request::on_batch_end`] with one token each: `later_max_ns` is the longest gap between
    /// two of the steps (after the first), `execution_ns` their execution time in all. The engine's decode runs use it
    /// (docs/performance.md). Returns the last step's outcome, whose `gap_ns` is the first
    /// step's gap (those of the later steps the engine recorded as they ended).
    pub fn on_decode_run(
        &mut self,
        now_ns: u64,
        steps: u32,
        first_end_ns: u64,
        later_max_ns: u64,
        execution_ns: u64,
    ) -> TokenOutcome {
        debug_assert!(self.prefill_complete && self.first_token_at_ns.is_some() && steps >= 1);
        let first_gap = first_end_ns - self.last_token_at_ns;
        self.execution_ns += execution_ns;
        self.batch_tokens += steps as u64;
        self.processed_tokens += steps;
        self.emitted_tokens += steps;
        if self.tbt_count == 0 {
            self.second_token_at_ns = Some(first_end_ns);
        }
        self.tbt_count += steps;
        // the gaps add up to the time from the last token before the run to its last step
        self.tbt_sum_ns += now_ns - self.last_token_at_ns;
        self.tbt_max_ns = self.tbt_max_ns.max(first_gap).max(later_max_ns);
        self.last_token_at_ns = now_ns;
        debug_assert!(self.processed_tokens <= self.total_tokens());
        let completed = self.processed_tokens == self.total_tokens();
        if completed {
            self.completed = true;
            self.completed_at_ns = Some(now_ns);
        }
        TokenOutcome {
            emitted_token: true,
            gap_ns: Some(first_gap),
            completed,
        }
    }

    /// Restarts the request from scratch (recompute preemption). Once the prefill is complete every
    /// token processed so far becomes prompt of the next attempt; before that, the prompt stays the
    /// prompt (Vidur turned unprocessed prompt tokens into output tokens here). The caller frees its
    /// KV blocks.
    pub fn restart(&mut self) {
        if self.prefill_complete {
            self.current_prefill_tokens = self.processed_tokens;
        }
        self.processed_tokens = 0;
        self.prefill_complete = false;
        self.scheduled = false;
        self.num_restarts += 1;
        self.num_preemptions += 1;
    }
}

/// The requests of a run, by id, keeping only a window: from the oldest unfinished request to the
/// newest. Finished requests at the front are retired (handed to a callback, e.g. a CSV writer, and
/// dropped), so memory follows the number of requests in the system, not the run's length.
#[derive(Debug, Clone, Default)]
pub struct RequestTable {
    /// Id of `slots[0]`.
    slots_base: u32,
    /// Index in `slots` of the oldest live request.
    start: usize,
    slots: Vec<Request>,
}

impl RequestTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests added so far (the next id).
    pub fn len(&self) -> u32 {
        self.slots_base + self.slots.len() as u32
    }

    /// True before the first request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the next request, at index [`RequestTable::len`]: its id in a sequential run; a lane
    /// of a parallel run holds every other request, so there its run-wide id (`r.id`) is larger
    /// (`engine::parallel`).
    pub fn push(&mut self, r: Request) {
        self.slots.push(r);
    }

    /// Requests not yet retired, oldest first.
    pub fn live(&self) -> impl Iterator<Item = &Request> {
        self.slots[self.start..].iter()
    }

    /// Retires the finished requests at the front, oldest first.
    pub fn retire_finished(&mut self, mut f: impl FnMut(&Request)) {
        let first = self.start;
        while self.slots.get(self.start).is_some_and(|r| r.completed) {
            self.start += 1;
        }
        if self.start > first {
            for r in &self.slots[first..self.start] {
                f(r);
            }
            self.compact();
        }
    }

    /// Retires every request left, oldest first.
    pub fn retire_all(&mut self, mut f: impl FnMut(&Request)) {
        for r in &self.slots[self.start..] {
            f(r);
        }
        self.slots_base += self.slots.len() as u32;
        self.slots.clear();
        self.start = 0;
    }

    /// Drops retired requests once they are the larger part of the storage (amortized O(1)).
    fn compact(&mut self) {
        if self.start >= 1024 && self.start * 2 >= self.slots.len() {
            self.slots.drain(..self.start);
            self.slots_base += self.start as u32;
            self.start = 0;
        }
    }
}

impl std::ops::Index<ReqId> for RequestTable {
    type Output = Request;
    #[inline]
    fn index(&self, id: ReqId) -> &Request {
        &self.slots[(id - self.slots_base) as usize]
    }
}

impl std::ops::IndexMut<ReqId> for RequestTable {
    #[inline]
    fn index_mut(&mut self, id: ReqId) -> &mut Request {
        &mut self.slots[(id - self.slots_base) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_emits_first_token_and_decodes_follow() {
        let mut r = Request::new(0, 0, &RequestSpec::simple(0, 4, 3));
        assert!(!r.on_batch_end(10, 2, 5).emitted_token);
        let o = r.on_batch_end(20, 2, 5);
        assert!(o.emitted_token && o.gap_ns.is_none());
        assert_eq!(r.first_token_at_ns, Some(20));
        assert_eq!(r.processed_tokens, 5);
        assert_eq!(r.on_batch_end(25, 1, 5).gap_ns, Some(5));
        let o = r.on_batch_end(40, 1, 5);
        assert!(o.completed);
        assert_eq!((r.tbt_count, r.tbt_sum_ns, r.tbt_max_ns), (2, 20, 15));
        assert_eq!(r.emitted_tokens, 3);
        assert_eq!(r.execution_ns, 20);
    }

    #[test]
    fn a_decode_run_equals_its_steps_one_by_one() {
        let spec = RequestSpec::simple(0, 4, 9);
        // prefill at 10, one decode at 17, then (in a run or one by one) steps ending at
        // 30, 33, 41 and 44: gaps 13, 3, 8, 3
        let mut one = Request::new(0, 0, &spec);
        one.on_batch_end(10, 4, 5);
        one.on_batch_end(17, 1, 7);
        let mut run = one.clone();
        for (end, exec) in [(30, 13), (33, 3), (41, 8), (44, 3)] {
            one.on_batch_end(end, 1, exec);
        }
        let out = run.on_decode_run(44, 4, 30, 8, 27);
        assert_eq!(run, one);
        assert_eq!(out.gap_ns, Some(13));
        assert!(out.emitted_token && !out.completed);
        assert_eq!((one.tbt_count, one.tbt_sum_ns, one.tbt_max_ns), (5, 34, 13));
        // a run from the first decode sets the second token's time; one that ends the request
        // completes it
        let mut one = Request::new(0, 0, &spec);
        one.on_batch_end(10, 4, 5);
        let mut run = one.clone();
        for (i, end) in [12u64, 20, 21, 30, 35, 36, 50, 52].into_iter().enumerate() {
            let o = one.on_batch_end(end, 1, 2);
            assert_eq!(o.completed, i == 7);
        }
        let out = run.on_decode_run(52, 8, 12, 14, 16);
        assert_eq!(run, one);
        assert!(out.completed);
        assert_eq!(run.second_token_at_ns, Some(12));
    }

    #[test]
    fn restart_after_prefill_turns_processed_into_prompt_and_conserves_output() {
        let mut r = Request::new(0, 0, &RequestSpec::simple(0, 4, 4));
        r.on_batch_end(10, 4, 1); // processed 5, 1 token
        r.on_batch_end(20, 1, 1); // processed 6, 2 tokens
        r.restart();
        assert_eq!((r.current_prefill_tokens, r.processed_tokens), (6, 0));
        r.on_batch_end(30, 6, 1); // re-prefill: processed 7, 3 tokens
        assert_eq!(r.emitted_tokens, 3);
        let o = r.on_batch_end(40, 1, 1);
        assert!(o.completed);
        assert_eq!(r.emitted_tokens, 4);
        assert_eq!(r.first_token_at_ns, Some(10));
    }

    #[test]
    fn restart_during_chunked_prefill_keeps_the_prompt() {
        let mut r = Request::new(0, 0, &RequestSpec::simple(0, 10, 2));
        r.on_batch_end(10, 4, 1);
        r.restart();
        assert_eq!((r.current_prefill_tokens, r.remaining_tokens()), (10, 12));
        assert_eq!(r.decode_tokens, 2);
    }

    #[test]
    fn table_retires_finished_requests_in_order() {
        let mut t = RequestTable::new();
        for i in 0..3 {
            t.push(Request::new(i, 0, &RequestSpec::simple(0, 1, 1)));
        }
        t[1].completed = true;
        let mut out = Vec::new();
        t.retire_finished(|r| out.push(r.id));
        assert!(out.is_empty(), "request 0 is not finished");
        t[0].completed = true;
        t.retire_finished(|r| out.push(r.id));
        assert_eq!(out, vec![0, 1]);
        assert_eq!((t.len(), t[2].id), (3, 2));
        t.retire_all(|r| out.push(r.id));
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.live().count(), 0);
    }

    #[test]
    fn single_token_output_completes_with_the_prefill() {
        let mut r = Request::new(0, 0, &RequestSpec::simple(0, 3, 1));
        let o = r.on_batch_end(7, 3, 7);
        assert!(o.completed && o.emitted_token);
        assert_eq!(r.tbt_count, 0);
    }
}
