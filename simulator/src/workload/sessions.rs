//! Multi-turn sessions: conversations whose every turn's prompt repeats the conversation so far.
//!
//! Sessions start at the arrivals of the arrival process. Turns of live sessions wait in a queue
//! ordered by (arrival time, creation order), so the stream is arrival-ordered and only the live
//! sessions are held in memory.

use std::collections::BTreeMap;

use rand::prelude::*;
use rand_distr::Exp;

use super::arrival::{seconds_to_ns, ArrivalProcess};
use super::config::SessionConfig;
use super::lengths::LengthSampler;
use super::prefix::PrefixSampler;
use super::synthetic::Bounds;
use super::{RequestSpec, Segment};

/// A conversation between turns.
struct Session {
    id: u64,
    /// The conversation so far: shared prefix, then each turn's new prompt tokens and output.
    history: Vec<Segment>,
    history_tokens: u64,
    turns_left: u32,
    next_arrival_s: f64,
}

/// A stream of session turns.
pub(crate) struct Sessions {
    starts: ArrivalProcess,
    /// The next session start, drawn ahead; `None` when no more sessions start.
    next_start_s: Option<f64>,
    lengths: LengthSampler,
    prefix: Option<PrefixSampler>,
    rng: StdRng,
    think: Option<Exp<f64>>,
    min_turns: u32,
    max_turns: u32,
    max_tokens: u64,
    bounds: Bounds,
    /// Live sessions keyed by (next turn's arrival ns, creation sequence).
    pending: BTreeMap<(u64, u64), Session>,
    next_seq: u64,
    next_session_id: u64,
    next_segment_id: u64,
}

impl Sessions {
    /// A session stream; segment ids `first_segment_id..` are free for turns and outputs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &SessionConfig,
        mut starts: ArrivalProcess,
        lengths: LengthSampler,
        prefix: Option<PrefixSampler>,
        rng: StdRng,
        max_tokens: u32,
        bounds: Bounds,
        first_segment_id: u64,
    ) -> Self {
        let next_start_s = starts.next_s();
        Sessions {
            starts,
            next_start_s,
            lengths,
            prefix,
            rng,
            think: (cfg.think_time_s > 0.0)
                .then(|| Exp::new(1.0 / cfg.think_time_s).expect("validated think time")),
            min_turns: cfg.min_turns,
            max_turns: cfg.max_turns,
            max_tokens: u64::from(max_tokens),
            bounds,
            pending: BTreeMap::new(),
            next_seq: 0,
            next_session_id: 0,
            next_segment_id: first_segment_id,
        }
    }

    fn fresh_segment_id(&mut self) -> u64 {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        id
    }

    fn start_session(&mut self, t_s: f64) -> Session {
        self.next_start_s = self.starts.next_s();
        let history: Vec<Segment> = self
            .prefix
            .as_mut()
            .map(|p| p.next_segment())
            .into_iter()
            .collect();
        let history_tokens = history.iter().map(|s| u64::from(s.tokens)).sum();
        let turns = self.rng.random_range(self.min_turns..=self.max_turns);
        let id = self.next_session_id;
        self.next_session_id += 1;
        Session {
            id,
            history,
            history_tokens,
            turns_left: turns,
            next_arrival_s: t_s,
        }
    }

    /// The request for `session`'s next turn, updating the session; `None` when the turn would
    /// exceed `max_tokens` (the session ends).
    fn turn(&mut self, session: &mut Session) -> Option<RequestSpec> {
        let (new_tokens, decode) = self.lengths.next_pair();
        let prefill = session.history_tokens + u64::from(new_tokens);
        if prefill + u64::from(decode) > self.max_tokens {
            return None;
        }
        let prompt_id = self.fresh_segment_id();
        let output_id = self.fresh_segment_id();
        let mut segments = session.history.clone();
        segments.push(Segment {
            id: prompt_id,
            tokens: new_tokens,
        });
        let request = RequestSpec {
            arrival_ns: seconds_to_ns(session.next_arrival_s),
            prefill_tokens: prefill as u32,
            decode_tokens: decode,
            segments: segments.clone(),
            output_segment: Some(output_id),
            session_id: Some(session.id),
        };
        session.history = segments;
        session.history.push(Segment {
            id: output_id,
            tokens: decode,
        });
        session.history_tokens = prefill + u64::from(decode);
        session.turns_left -= 1;
        let think_s = self.think.map_or(0.0, |law| law.sample(&mut self.rng));
        session.next_arrival_s += think_s;
        Some(request)
    }
}

impl Iterator for Sessions {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        loop {
            if self.bounds.exhausted() {
                return None;
            }
            let start = self.next_start_s.filter(|&t| !self.bounds.too_late(t));
            let first_pending = self.pending.keys().next().copied();
            // A new session goes first only when it starts strictly before the earliest pending
            // turn (ties go to the turn created earlier).
            let mut session = match (start, first_pending) {
                (Some(t), Some((ns, _))) if seconds_to_ns(t) < ns => self.start_session(t),
                (Some(t), None) => self.start_session(t),
                (_, Some(key)) => self.pending.remove(&key).expect("key just read"),
                (None, None) => {
                    self.bounds.remaining = Some(0);
                    return None;
                }
            };
            if self.bounds.too_late(session.next_arrival_s) {
                continue; // the session's next turn falls after the end: it ends here
            }
            let Some(request) = self.turn(&mut session) else {
                continue; // the conversation outgrew max_tokens
            };
            if session.turns_left > 0 {
                let key = (seconds_to_ns(session.next_arrival_s), self.next_seq);
                self.next_seq += 1;
                self.pending.insert(key, session);
            }
            self.bounds.take();
            return Some(request);
        }
    }
}
