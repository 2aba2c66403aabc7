//! The discrete-event engine (docs/design.md §5): arrivals, replica scheduling, pipeline stages
//! and batch ends on an integer-nanosecond clock.
//!
//! Arrivals are pulled lazily from the workload iterator and handled before any queued event at
//! the same time (Vidur creates all arrival events up front, so they win ties). Other events run in
//! (time, creation) order. A batch moves through the replica's stages, each a FIFO single server;
//! at most PP batches are in flight per replica. At the end of a batch's last stage the engine
//! applies its tokens, frees the blocks of finished requests, tells the policy, and schedules the
//! replica again at the same time.

mod bookkeeping;
mod decode_run;
pub mod disagg;
pub mod event;
pub mod parallel;
pub mod replica;
pub mod transfer;

use predictor::{BatchShape, StageTime};

use crate::config::SloConfig;
use crate::error::SimError;
use crate::metrics::{FlopModel, Metrics, MissWatch};
use crate::output::{Sinks, StageRecord};
use crate::request::{ReqId, Request, RequestTable};
use crate::router::{KvAwareWeights, Router};
use crate::scheduler::{BatchEntry, SchedCtx};
use crate::workload::RequestSpec;
pub use disagg::PoolSetup;
use event::{EventKind, EventQueue};
pub use replica::ReplicaState;

/// The latest simulated time a run may reach, ns (10⁹ s, about 31.7 years; the `u64` clock holds
/// 584 years, so sums of such times cannot overflow). An arrival or a batch end past it is an
/// error, not a wrapped or saturated clock.
pub const MAX_SIMULATED_NS: u64 = 1_000_000_000 * 1_000_000_000;

/// Everything the engine is built from.
pub struct EngineSetup {
    /// The replicas (under disaggregation, the prefill pool); the router chooses among them.
    pub pool: PoolSetup,
    /// Weights of the `kv_aware` router (validated), for every pool's router.
    pub router_weights: KvAwareWeights,
    /// Asynchronous scheduling (vLLM's `--async-scheduling`): a request that arrives while a
    /// replica runs a step reaches its scheduler only when the next step starts, so it waits for
    /// the step after next.
    pub async_scheduling: bool,
    /// Front-end time per request outside the engine, added to its TTFT and E2E, ns.
    pub frontend_ns: u64,
    /// Ends of the workload's load stages, ns, for per-stage latencies (empty: none).
    pub stage_ends_ns: Vec<u64>,
    /// Seed of the random router.
    pub seed: u64,
    /// Stop time, ns.
    pub time_limit_ns: Option<u64>,
    /// Longest request allowed, tokens.
    pub max_request_tokens: u32,
    /// FLOPs per batch.
    pub flops: FlopModel,
    /// SLOs for goodput.
    pub slo: SloConfig,
    /// Time-series sampling interval, ns.
    pub timeseries_interval_ns: u64,
    /// Streamed output files.
    pub sinks: Option<Sinks>,
    /// Keep every [`StageRecord`] in memory (tests).
    pub keep_stage_log: bool,
    /// Keep every finished request in memory (tests).
    pub keep_requests: bool,
    /// Disaggregated serving: the replicas above are the prefill pool, this adds the decode pool.
    pub disagg: Option<disagg::DisaggSetup>,
    /// Stop as soon as a latency bound is certainly missed (the capacity search's failing rates).
    pub miss_watch: Option<MissWatch>,
}

/// A batch in flight.
struct Batch {
    id: u64,
    replica: u32,
    entries: Vec<BatchEntry>,
    shape: BatchShape,
    kv_blocks_used: u64,
    exec_ns: u64,
    stage_start_ns: u64,
    /// The current stage's time by operator, when stage records are written
    /// ([`Engine::records_stages`]); default otherwise.
    stage_time: StageTime,
    /// Set once the batch runs more than one decode step ([`decode_run`]).
    run: Option<decode_run::DecodeRun>,
}

/// Progress of a run, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Requests arrived.
    pub arrived: u64,
    /// Requests finished.
    pub completed: u64,
    /// Simulated time, ns.
    pub now_ns: u64,
}

/// What a run leaves behind.
pub struct EngineOutcome {
    /// Requests that arrived.
    pub arrived: u64,
    /// Every request, by id, when kept ([`EngineSetup::keep_requests`]); empty otherwise.
    pub requests: Vec<Request>,
    /// Replica states (counters, KV caches).
    pub replicas: Vec<ReplicaState>,
    /// Simulated end time, ns.
    pub end_ns: u64,
    /// Latency distributions.
    pub metrics: Metrics,
    /// Requests finished.
    pub completed: u64,
    /// The time limit stopped the run.
    pub time_limited: bool,
    /// The run stopped because a latency bound of [`EngineSetup::miss_watch`] was certainly
    /// missed: the verdict.
    pub certain_miss: Option<String>,
    /// Batch stages, when kept.
    pub stage_log: Vec<StageRecord>,
    /// Steps the engine formed itself, in decode runs ([`Engine::with_decode_runs`]).
    pub run_steps: u64,
}

/// The engine.
pub struct Engine {
    now_ns: u64,
    events: EventQueue,
    arrivals: Box<dyn Iterator<Item = RequestSpec> + Send>,
    next_arrival: Option<RequestSpec>,
    requests: RequestTable,
    kept_requests: Option<Vec<Request>>,
    replicas: Vec<ReplicaState>,
    router: Router,
    /// Replicas the router chooses among at arrival (the prefill pool under disaggregation).
    entry_replicas: usize,
    disagg: Option<disagg::Disagg>,
    batches: Vec<Option<Batch>>,
    free_slots: Vec<u32>,
    entry_pool: Vec<Vec<BatchEntry>>,
    next_batch_id: u64,
    time_limit_ns: Option<u64>,
    max_request_tokens: u32,
    flops: FlopModel,
    slo: SloConfig,
    metrics: Metrics,
    completed: u64,
    ts_interval_ns: u64,
    ts_start_ns: u64,
    ts_rows: u64,
    ts_max_rows: u64,
    async_scheduling: bool,
    frontend_ns: u64,
    sinks: Option<Sinks>,
    stage_log: Option<Vec<StageRecord>>,
    miss_watch: Option<MissWatch>,
    certain_miss: Option<String>,
    /// Decode runs are on ([`decode_run`]).
    decode_runs: bool,
    /// Stage records go somewhere: the stage log is kept, or `batches.csv` or `trace.json` is
    /// written.
    records_stages: bool,
    run_pool: Vec<Vec<decode_run::RunEntry>>,
    run_steps: u64,
    /// Run-wide id of `replicas[0]`: 0, except in a lane of a parallel run ([`parallel`]).
    replica_base: u32,
    /// A lane's exchange with the coordinator of a parallel run; `None` in a sequential run.
    lane: Option<parallel::LaneIo>,
}

impl Engine {
    /// An engine serving `arrivals` (in arrival order).
    pub fn new(setup: EngineSetup, arrivals: Box<dyn Iterator<Item = RequestSpec> + Send>) -> Self {
        let records_stages =
            setup.keep_stage_log || setup.sinks.as_ref().is_some_and(|s| s.writes_stages());
        let mut replicas = setup.pool.build();
        let disagg = (setup.disagg.as_ref())
            .map(|d| disagg::Disagg::new(d, &mut replicas, setup.seed, setup.router_weights));
        Engine {
            replicas,
            now_ns: 0,
            events: EventQueue::default(),
            arrivals,
            next_arrival: None,
            requests: RequestTable::new(),
            kept_requests: setup.keep_requests.then(Vec::new),
            router: Router::new(setup.pool.router, setup.pool.replicas, setup.seed)
                .with_weights(setup.router_weights),
            entry_replicas: setup.pool.replicas as usize,
            disagg,
            batches: Vec::new(),
            free_slots: Vec::new(),
            entry_pool: Vec::new(),
            next_batch_id: 0,
            time_limit_ns: setup.time_limit_ns,
            max_request_tokens: setup.max_request_tokens,
            flops: setup.flops,
            slo: setup.slo,
            metrics: Metrics::with_stages(setup.stage_ends_ns),
            completed: 0,
            ts_interval_ns: setup.timeseries_interval_ns.max(1),
            ts_start_ns: 0,
            ts_rows: 0,
            ts_max_rows: crate::output::MAX_TIMESERIES_ROWS,
            async_scheduling: setup.async_scheduling,
            frontend_ns: setup.frontend_ns,
            miss_watch: setup.miss_watch,
            certain_miss: None,
            sinks: setup.sinks,
            stage_log: setup.keep_stage_log.then(Vec::new),
            decode_runs: setup.disagg.is_none(),
            records_stages,
            run_pool: Vec::new(),
            run_steps: 0,
            replica_base: 0,
            lane: None,
        }
    }

    /// Turns decode runs off (`false`): every step goes through the policy, with the same results,
    /// more slowly (docs/performance.md). They are on by default, except under disaggregation.
    pub fn with_decode_runs(mut self, on: bool) -> Self {
        self.decode_runs = on && self.disagg.is_none();
        self
    }

    /// Sets the most rows `timeseries.csv` may get (default [`crate::output::MAX_TIMESERIES_ROWS`]).
    pub fn with_max_timeseries_rows(mut self, rows: u64) -> Self {
        self.ts_max_rows = rows;
        self
    }

    /// Runs to the end; `progress` is called now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> Result<EngineOutcome, SimError> {
        self.next_arrival = self.arrivals.next();
        let mut steps = 0u64;
        let mut time_limited = false;
        loop {
            let arrival = self.next_arrival.as_ref().map(|s| s.arrival_ns);
            let (t, is_arrival) = match (arrival, self.events.peek_time()) {
                (None, None) => break,
                (Some(a), Some(h)) if a <= h => (a, true),
                (Some(a), None) => (a, true),
                (_, Some(h)) => (h, false),
            };
            if let Some(limit) = self.time_limit_ns {
                if t > limit {
                    time_limited = true;
                    self.advance_to(limit)?;
                    self.now_ns = limit.max(self.now_ns);
                    break;
                }
            }
            bookkeeping::check_item_time(t, self.now_ns, is_arrival, self.requests.len())?;
            self.advance_to(t)?;
            self.now_ns = t;
            if is_arrival {
                let spec = self.next_arrival.take().expect("peeked");
                self.on_arrival(&spec)?;
                self.next_arrival = self.arrivals.next();
            } else {
                self.next_event()?;
            }
            if self.certain_miss.is_some() {
                break;
            }
            steps += 1;
            if steps.is_multiple_of(8192) {
                progress(Progress {
                    arrived: self.requests.len() as u64,
                    completed: self.completed,
                    now_ns: self.now_ns,
                });
            }
        }
        self.settle_decode_runs();
        if !time_limited && self.certain_miss.is_none() {
            self.check_drained()?;
        }
        self.retire(true)?;
        self.finish_timeseries()?;
        let now = self.now_ns;
        for r in &mut self.replicas {
            r.account_kv(now);
        }
        if let Some(s) = self.sinks.take() {
            s.finish()?;
        }
        progress(Progress {
            arrived: self.requests.len() as u64,
            completed: self.completed,
            now_ns: self.now_ns,
        });
        Ok(EngineOutcome {
            arrived: self.requests.len() as u64,
            requests: self.kept_requests.unwrap_or_default(),
            replicas: self.replicas,
            end_ns: self.now_ns,
            metrics: self.metrics,
            completed: self.completed,
            time_limited,
            certain_miss: self.certain_miss,
            stage_log: self.stage_log.unwrap_or_default(),
            run_steps: self.run_steps,
        })
    }

    fn on_arrival(&mut self, spec: &RequestSpec) -> Result<(), SimError> {
        let mut req = arrival_request(
            self.requests.len(),
            spec,
            self.max_request_tokens,
            self.frontend_ns,
            self.disagg.is_some(),
        )?;
        req.replica = self
            .router
            .route_request(&req, &self.replicas[..self.entry_replicas]);
        self.admit(req);
        Ok(())
    }

    /// Hands a routed request (`req.replica`, a run-wide replica id) to its replica's policy at
    /// the current time.
    fn admit(&mut self, req: Request) {
        let r = req.replica - self.replica_base;
        // the table's index, which equals the request's id except in a lane (parallel.rs)
        let id: ReqId = self.requests.len();
        self.requests.push(req);
        let rep = &mut self.replicas[r as usize];
        rep.outstanding += 1;
        rep.requests += 1;
        if self.async_scheduling && rep.in_flight > 0 {
            // The next step was planned when the current one started: wait for the one after.
            rep.inbox.push(id);
            return;
        }
        let mut ctx = SchedCtx {
            now_ns: self.now_ns,
            requests: &mut self.requests,
            kv: &mut rep.kv,
        };
        rep.scheduler.add_request(id, &mut ctx);
        self.schedule_soon(r);
    }

    /// Runs the earliest queued event (the clock already at its time).
    fn next_event(&mut self) -> Result<(), SimError> {
        let ev = self.events.pop().expect("peeked");
        match ev.kind {
            EventKind::ReplicaSchedule { replica } => self.on_replica_schedule(replica),
            EventKind::StageEnd {
                replica,
                stage,
                slot,
            } => self.on_stage_end(replica, stage, slot),
            EventKind::TransferEnd { request } => self.on_transfer_end(request),
        }
    }

    fn schedule_soon(&mut self, r: u32) {
        let rep = &mut self.replicas[r as usize];
        if !rep.schedule_pending {
            rep.schedule_pending = true;
            self.events
                .push_now(self.now_ns, EventKind::ReplicaSchedule { replica: r });
        }
    }

    fn on_replica_schedule(&mut self, r: u32) -> Result<(), SimError> {
        let now = self.now_ns;
        self.replicas[r as usize].schedule_pending = false;
        self.replicas[r as usize].account_kv(now);
        loop {
            let formed = self.form_batches(r)?;
            // Requests held back while the last step ran reach the scheduler now that the next
            // step has started (asynchronous scheduling); with nothing running they go at once.
            let rep = &mut self.replicas[r as usize];
            if rep.inbox.is_empty() {
                return Ok(());
            }
            let mut ctx = SchedCtx {
                now_ns: now,
                requests: &mut self.requests,
                kv: &mut rep.kv,
            };
            for id in rep.inbox.drain(..) {
                rep.scheduler.add_request(id, &mut ctx);
            }
            if formed {
                return Ok(());
            }
        }
    }

    /// Forms batches on replica `r` while fewer than PP are in flight; true when one was formed.
    fn form_batches(&mut self, r: u32) -> Result<bool, SimError> {
        let now = self.now_ns;
        let mut formed = false;
        if let Some(slot) = self.replicas[r as usize].parked_run.take() {
            self.resume_decode_run(r, slot)?;
            formed = true;
        }
        while self.replicas[r as usize].in_flight < self.replicas[r as usize].pp() {
            let mut entries = self.entry_pool.pop().unwrap_or_default();
            entries.clear();
            let rep = &mut self.replicas[r as usize];
            let mut ctx = SchedCtx {
                now_ns: now,
                requests: &mut self.requests,
                kv: &mut rep.kv,
            };
            rep.scheduler.next_batch(&mut ctx, &mut entries)?;
            if entries.is_empty() {
                self.entry_pool.push(entries);
                break;
            }
            let mut shape = BatchShape::new();
            for e in &entries {
                let q = &mut self.requests[e.request];
                let ok = e.tokens > 0
                    && !q.in_flight
                    && !q.completed
                    && q.kv_blocks > 0
                    && if e.is_prefill {
                        !q.prefill_complete && e.tokens <= q.remaining_prefill_tokens()
                    } else {
                        q.prefill_complete && e.tokens == 1
                    };
                if !ok {
                    return Err(SimError::Internal(format!(
                        "the replica scheduler formed an invalid batch entry {e:?} for request {q:?}"
                    )));
                }
                if e.is_prefill {
                    shape.add_prefill(e.tokens as u64, q.processed_tokens as u64);
                } else {
                    shape.add_decode(q.processed_tokens as u64);
                }
                q.in_flight = true;
                q.on_schedule(now);
            }
            rep.flops += self.flops.flops(&shape);
            rep.in_flight += 1;
            rep.max_in_flight = rep.max_in_flight.max(rep.in_flight);
            let batch = Batch {
                id: self.next_batch_id,
                replica: r,
                entries,
                shape,
                kv_blocks_used: rep.kv.allocated(),
                exec_ns: 0,
                stage_start_ns: 0,
                stage_time: StageTime::default(),
                run: None,
            };
            self.next_batch_id += 1;
            self.after_batch_formed(r, &batch.entries)?;
            let slot = match self.free_slots.pop() {
                Some(s) => {
                    self.batches[s as usize] = Some(batch);
                    s
                }
                None => {
                    self.batches.push(Some(batch));
                    (self.batches.len() - 1) as u32
                }
            };
            self.enqueue_stage(r, 0, slot);
            formed = true;
        }
        Ok(formed)
    }

    fn enqueue_stage(&mut self, r: u32, s: u32, slot: u32) {
        let stage = &mut self.replicas[r as usize].stages[s as usize];
        if stage.busy.is_none() {
            self.start_stage(r, s, slot);
        } else {
            stage.queue.push_back(slot);
        }
    }

    fn start_stage(&mut self, r: u32, s: u32, slot: u32) {
        let now = self.now_ns;
        let b = self.batches[slot as usize].as_mut().expect("live batch");
        let st = self.replicas[r as usize].exec.stage_time(&b.shape, s);
        let dur = st.total_ns();
        if self.records_stages {
            b.stage_time = st;
        }
        b.stage_start_ns = now;
        b.exec_ns += dur;
        let rep = &mut self.replicas[r as usize];
        rep.stages[s as usize].busy = Some(slot);
        if s == 0 {
            rep.stage0_since_ns = Some(now);
        }
        self.events.push(
            now.saturating_add(dur),
            EventKind::StageEnd {
                replica: r,
                stage: s,
                slot,
            },
        );
    }

    fn on_stage_end(&mut self, r: u32, s: u32, slot: u32) -> Result<(), SimError> {
        let now = self.now_ns;
        let rep = &mut self.replicas[r as usize];
        let stage = &mut rep.stages[s as usize];
        stage.busy = None;
        let b = self.batches[slot as usize].as_ref().expect("live batch");
        stage.busy_ns += now - b.stage_start_ns;
        if s == 0 {
            rep.ts_busy_ns += now - b.stage_start_ns.max(self.ts_start_ns);
            rep.stage0_since_ns = None;
        }
        if self.records_stages {
            let rec = StageRecord {
                batch_id: b.id,
                replica: r,
                stage: s,
                start_ns: b.stage_start_ns,
                end_ns: now,
                size: b.shape.num_requests(),
                prefill_requests: b.shape.num_prefills,
                decode_requests: b.shape.num_decodes,
                prefill_tokens: b.shape.prefill_tokens,
                decode_tokens: b.shape.num_decodes as u64,
                kv_blocks_used: b.kv_blocks_used,
            };
            if let Some(sinks) = &mut self.sinks {
                sinks.stage(&rec, &b.stage_time.ops_ms)?;
            }
            if let Some(log) = &mut self.stage_log {
                log.push(rec);
            }
        }
        if s + 1 < self.replicas[r as usize].pp() {
            self.enqueue_stage(r, s + 1, slot);
        } else {
            self.batch_end(r, slot)?;
        }
        if let Some(next) = self.replicas[r as usize].stages[s as usize]
            .queue
            .pop_front()
        {
            self.start_stage(r, s, next);
        }
        Ok(())
    }

    fn batch_end(&mut self, r: u32, slot: u32) -> Result<(), SimError> {
        if self.decode_runs && self.park_decode_run(r, slot)? {
            return Ok(());
        }
        let now = self.now_ns;
        let mut b = self.batches[slot as usize].take().expect("live batch");
        self.free_slots.push(slot);
        self.replicas[r as usize].account_kv(now);
        if let Some(run) = b.run.take() {
            self.end_decode_run(r, run);
        } else {
            for e in &b.entries {
                let q = &mut self.requests[e.request];
                q.in_flight = false;
                let out = q.on_batch_end(now, e.tokens, b.exec_ns);
                self.token_done(r, e.request, out);
            }
        }
        let rep = &mut self.replicas[r as usize];
        let mut ctx = SchedCtx {
            now_ns: now,
            requests: &mut self.requests,
            kv: &mut rep.kv,
        };
        rep.scheduler.on_batch_end(&b.entries, &mut ctx);
        rep.in_flight -= 1;
        rep.batches += 1;
        rep.ts_batches += 1;
        self.schedule_soon(r);
        self.after_batch_end(r, &b.entries)?;
        self.entry_pool.push(b.entries);
        self.retire(false)
    }

    /// Request `id` of a batch on replica `r` took its step (`out`): records its token gap, and
    /// when it completed, frees its blocks and records its latencies.
    fn token_done(&mut self, r: u32, id: ReqId, out: crate::request::TokenOutcome) {
        if let Some(g) = out.gap_ns {
            self.metrics.tbt.record(g);
        }
        if out.completed {
            let rep = &mut self.replicas[r as usize];
            let q = &mut self.requests[id];
            rep.kv.free(q);
            rep.outstanding -= 1;
            if let Some(lane) = &mut self.lane {
                lane.completed_on.push(r);
            }
            rep.restarts += q.num_restarts as u64;
            rep.ts_completed += 1;
            self.completed += 1;
            let l = self.metrics.on_complete(q, &self.slo);
            if let Some(w) = &mut self.miss_watch {
                if let Some(why) = w.observe(&l) {
                    self.certain_miss.get_or_insert(why);
                }
            }
        }
    }
}

/// The request `id` for an arrival of `spec`, checked against the workload's longest request;
/// not yet routed.
fn arrival_request(
    id: ReqId,
    spec: &RequestSpec,
    max_request_tokens: u32,
    frontend_ns: u64,
    disaggregated: bool,
) -> Result<Request, SimError> {
    if spec.prefill_tokens == 0 || spec.decode_tokens == 0 {
        return Err(SimError::Config {
            field: "workload".into(),
            why: format!(
                "request {id} has {} prompt and {} output tokens; both must be at least 1",
                spec.prefill_tokens, spec.decode_tokens
            ),
        });
    }
    let total = spec.prefill_tokens as u64 + spec.decode_tokens as u64;
    if total > max_request_tokens as u64 {
        return Err(SimError::Config {
            field: "workload".into(),
            why: format!("request {id} has {total} tokens, more than the workload's declared maximum of {max_request_tokens}"),
        });
    }
    let mut req = Request::new(id, 0, spec);
    req.frontend_ns = frontend_ns;
    req.handoff_pending = disaggregated;
    Ok(req)
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod disagg_proptests;
#[cfg(test)]
mod disagg_tests;
#[cfg(test)]
mod invalid_batch_tests;
#[cfg(test)]
mod parallel_tests;
#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
mod routing_tests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
