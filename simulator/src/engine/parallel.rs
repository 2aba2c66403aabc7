//! One run over several threads (issue 17; docs/performance.md, "Parallel runs").
//!
//! Replicas only interact through the router, and the router only acts at arrivals. So the
//! replicas are split into *lanes*, contiguous ranges of replicas, each an [`Engine`] of its own
//! (its events, batches, requests and metrics) on its own thread, and a *coordinator* on the
//! calling thread pulls the arrivals, routes them and writes the files:
//!
//! - with a router that reads replica state (`lor`, `power_of_two`) the lanes advance in lockstep
//!   windows ending at each arrival: every lane has run its events before the arrival's time, the
//!   coordinator routes it on the unfinished-request counts the lanes keep in a shared array, and
//!   the lane that gets it admits it first in its next window (arrivals win ties, as in
//!   [`Engine::run`]);
//! - with a router that reads nothing (`round_robin`, `random`), the coordinator routes every
//!   arrival up to the next window end at once, and the lanes run on until then.
//!
//! Windows also end at each time-series sample and at the time limit, where the coordinator reads
//! every replica as the sequential engine would. Everything a lane produces that depends on the
//! order of events across replicas is kept out of the lane: requests go to `requests.csv` in id
//! order through a reorder buffer here, and the TTFT trend is filled in that order too
//! ([`Metrics::on_retire`]); latency histograms and totals are sums, merged at the end. So a run
//! writes the same bytes for every thread count, and the same as [`Engine::run`]; the tests check
//! it file by file.
//!
//! Not split (the caller runs [`Engine::run`]; [`unsupported`] says why): disaggregated serving,
//! a stop at a certain miss, stage records (`batches.csv`, `trace.json`: their rows and batch ids
//! follow the order of events across replicas), and the `least_kv` and `kv_aware` routers (they
//! read every replica's KV cache at every arrival).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{
    bookkeeping, disagg::PoolSetup, Engine, EngineOutcome, EngineSetup, Progress, MAX_SIMULATED_NS,
};
use crate::error::SimError;
use crate::metrics::Metrics;
use crate::output::Sinks;
use crate::request::Request;
use crate::router::{ReplicaView, Router, RouterKind};
use crate::workload::RequestSpec;

/// A lane's exchange with the coordinator.
#[derive(Default)]
pub(super) struct LaneIo {
    /// Routed arrivals not yet admitted, in arrival order.
    injected: VecDeque<Request>,
    /// Lane-local replica of each request finished in the current window (taken off the shared
    /// unfinished counts at the window's end).
    pub(super) completed_on: Vec<u32>,
    /// The error that ended the lane's last window.
    error: Option<SimError>,
}

/// Why a run cannot be split over threads; `None` when it can.
pub fn unsupported(setup: &EngineSetup) -> Option<&'static str> {
    if setup.disagg.is_some() {
        Some("disaggregated serving moves requests between replicas")
    } else if setup.miss_watch.is_some() {
        Some("a stop at a certain miss follows the order of completions")
    } else if setup.keep_stage_log || setup.sinks.as_ref().is_some_and(|s| s.writes_stages()) {
        Some("batches.csv and trace.json follow the order of events across replicas (--no-batches --no-trace)")
    } else if matches!(setup.pool.router, RouterKind::LeastKv | RouterKind::KvAware) {
        Some("the least_kv and kv_aware routers read every replica's KV cache at each arrival")
    } else if setup.pool.replicas < 2 {
        Some("one replica")
    } else {
        None
    }
}

/// Most arrivals handed to the lanes at once when routing reads no replica state: a window ends
/// at the next one (memory stays flat without time-series samples to end windows).
const FREE_WINDOW_ARRIVALS: u32 = 4096;

/// True when the router reads replica state, so lanes synchronise at every arrival.
fn synced(router: RouterKind) -> bool {
    !matches!(router, RouterKind::RoundRobin | RouterKind::Random)
}

/// One worker's control block, on its own cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Control {
    /// Window number the worker is asked to run.
    go: AtomicU64,
    /// Its end: the lane runs what comes before it.
    until: AtomicU64,
    /// Last window number the worker finished; `u64::MAX` when it stopped.
    done: AtomicU64,
    /// Time of the lane's next arrival or event after its window (`u64::MAX`: none).
    next_ns: AtomicU64,
    /// The lane's window failed: its error is in its [`LaneIo`].
    failed: AtomicBool,
    /// The worker sleeps waiting for `go`.
    sleeping: AtomicBool,
}

/// What the workers share with the coordinator.
struct Shared<'a> {
    lanes: &'a [Mutex<Engine>],
    /// Requests each lane retired (finished, in its id order), for the coordinator to write.
    outbox: &'a [Mutex<Vec<Request>>],
    ctl: &'a [Control],
    out: &'a Outstanding,
    stop: &'a AtomicBool,
    /// The coordinator sleeps waiting for a worker's `done`.
    coordinator_sleeps: &'a AtomicBool,
    coordinator: std::thread::Thread,
}

/// Unfinished requests per replica, written by the lanes and the coordinator in turn.
struct Outstanding(Vec<AtomicU32>);

impl ReplicaView for Outstanding {
    fn num_replicas(&self) -> u32 {
        self.0.len() as u32
    }
    fn outstanding(&self, replica: u32) -> u32 {
        self.0[replica as usize].load(Ordering::Relaxed)
    }
    fn kv_blocks(&self, _replica: u32) -> (u64, u64) {
        (0, 1)
    }
    fn prefix_block_size(&self) -> Option<u32> {
        None
    }
    fn cached_prefix_blocks(&self, _replica: u32, _hashes: &[u64]) -> u32 {
        0
    }
}

impl Engine {
    /// Lane: admits the injected arrivals and runs the events before `until`, as [`Engine::run`]
    /// would.
    fn run_window(&mut self, until: u64) -> Result<(), SimError> {
        loop {
            let io = self.lane.as_mut().expect("a lane");
            let arrival = io.injected.front().map(|q| q.arrived_at_ns);
            let (t, is_arrival) = match (arrival, self.events.peek_time()) {
                (None, None) => return Ok(()),
                (Some(a), Some(h)) if a <= h => (a, true),
                (Some(a), None) => (a, true),
                (_, Some(h)) => (h, false),
            };
            if t >= until {
                return Ok(());
            }
            if t > MAX_SIMULATED_NS {
                return Err(self.out_of_range(t, false));
            }
            if t < self.now_ns {
                return Err(SimError::Internal(format!(
                    "the clock went back from {} to {t} ns",
                    self.now_ns
                )));
            }
            self.now_ns = t;
            if is_arrival {
                let q = io.injected.pop_front().expect("peeked");
                self.admit(q);
            } else {
                self.next_event()?;
            }
        }
    }

    /// Lane: time of its next arrival or event (`u64::MAX`: none).
    fn next_item_ns(&self) -> u64 {
        let io = self.lane.as_ref().expect("a lane");
        let a = io.injected.front().map_or(u64::MAX, |q| q.arrived_at_ns);
        a.min(self.events.peek_time().unwrap_or(u64::MAX))
    }
}

/// Asks the workers to stop when dropped (also on an early return or a panic).
struct StopGuard<'a> {
    stop: &'a AtomicBool,
    ctl: &'a [Control],
    workers: Vec<std::thread::Thread>,
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for (c, t) in self.ctl[1..].iter().zip(&self.workers) {
            c.go.fetch_add(1, Ordering::SeqCst);
            t.unpark();
        }
    }
}

/// Marks a worker stopped when dropped, so the coordinator never waits for a dead thread.
struct DoneGuard<'a>(&'a Control, &'a Shared<'a>);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        self.0.done.store(u64::MAX, Ordering::SeqCst);
        self.1.coordinator.unpark();
    }
}

/// Spins before sleeping when waiting: about as long as a few windows take.
const SPINS: u32 = 1 << 11;

/// Waits until `f` holds: spins first (a window is microseconds), then sleeps with `sleeping`
/// set, to be woken by [`wake`]; so more threads than free cores still progress.
fn wait_for(mut f: impl FnMut() -> bool, sleeping: &AtomicBool) {
    for _ in 0..SPINS {
        if f() {
            return;
        }
        std::hint::spin_loop();
    }
    loop {
        sleeping.store(true, Ordering::SeqCst);
        if f() {
            sleeping.store(false, Ordering::Relaxed);
            return;
        }
        std::thread::park();
        sleeping.store(false, Ordering::Relaxed);
        if f() {
            return;
        }
    }
}

/// Wakes `thread` if it sleeps in [`wait_for`] (after the store it waits for, made `SeqCst`).
fn wake(thread: &std::thread::Thread, sleeping: &AtomicBool) {
    if sleeping.load(Ordering::SeqCst) {
        thread.unpark();
    }
}

fn lock<'a>(lane: &'a Mutex<Engine>) -> Result<MutexGuard<'a, Engine>, SimError> {
    lane.lock()
        .map_err(|_| SimError::Internal("a simulation thread panicked".into()))
}

/// How to run in parallel.
#[derive(Debug, Clone, Copy)]
pub struct ParallelRun {
    /// Threads, one per lane (at most one per replica; more threads than cores only slow it).
    pub threads: usize,
    /// Decode runs on ([`Engine::with_decode_runs`]).
    pub decode_runs: bool,
    /// Most rows `timeseries.csv` may get ([`Engine::with_max_timeseries_rows`]).
    pub max_timeseries_rows: u64,
}

impl ParallelRun {
    /// `threads` threads, decode runs on, the default row limit.
    pub fn new(threads: usize) -> Self {
        ParallelRun {
            threads,
            decode_runs: true,
            max_timeseries_rows: crate::output::MAX_TIMESERIES_ROWS,
        }
    }
}

/// Runs `setup` as `how` says: the same outcome and files as [`Engine::run`], for every thread
/// count. The setup must pass [`unsupported`] (an internal error otherwise).
pub fn run(
    mut setup: EngineSetup,
    arrivals: Box<dyn Iterator<Item = RequestSpec> + Send>,
    how: ParallelRun,
    progress: &mut dyn FnMut(Progress),
) -> Result<EngineOutcome, SimError> {
    let (threads, decode_runs) = (how.threads, how.decode_runs);
    if let Some(why) = unsupported(&setup) {
        return Err(SimError::Internal(format!(
            "a parallel run was asked for where it cannot be: {why}"
        )));
    }
    let replicas = setup.pool.replicas;
    let lanes_n = threads.clamp(1, replicas as usize) as u32;
    let sinks = setup.sinks.take();
    let mut lanes = Vec::with_capacity(lanes_n as usize);
    let mut bounds = Vec::with_capacity(lanes_n as usize + 1);
    for k in 0..lanes_n {
        let (lo, hi) = (replicas * k / lanes_n, replicas * (k + 1) / lanes_n);
        bounds.push(lo);
        lanes.push(Mutex::new(lane(&setup, lo, hi - lo, decode_runs)));
    }
    bounds.push(replicas);
    let ctl: Vec<Control> = (0..lanes_n).map(|_| Control::default()).collect();
    let outstanding = Outstanding((0..replicas).map(|_| AtomicU32::new(0)).collect());
    for c in &ctl {
        c.next_ns.store(u64::MAX, Ordering::Relaxed);
    }
    let stop = AtomicBool::new(false);
    let coordinator_sleeps = AtomicBool::new(false);
    let outbox: Vec<Mutex<Vec<Request>>> = (0..lanes_n).map(|_| Mutex::default()).collect();
    let shared = Shared {
        lanes: &lanes,
        outbox: &outbox,
        ctl: &ctl,
        out: &outstanding,
        stop: &stop,
        coordinator_sleeps: &coordinator_sleeps,
        coordinator: std::thread::current(),
    };
    let mut coord = Coordinator {
        now_ns: 0,
        arrivals,
        arrived: 0,
        router: Router::new(setup.pool.router, replicas, setup.seed)
            .with_weights(setup.router_weights),
        synced: synced(setup.pool.router),
        bounds,
        max_request_tokens: setup.max_request_tokens,
        frontend_ns: setup.frontend_ns,
        time_limit_ns: setup.time_limit_ns,
        sinks,
        ts_interval_ns: setup.timeseries_interval_ns.max(1),
        ts_start_ns: 0,
        ts_rows: 0,
        ts_max_rows: how.max_timeseries_rows,
        trend: Metrics::default(),
        pending: VecDeque::new(),
        next_write: 0,
        kept: setup.keep_requests.then(Vec::new),
        epoch: 0,
        workers: Vec::new(),
    };
    std::thread::scope(|s| {
        let shared = &shared;
        // (before the first spawn: a failed spawn must still stop the workers started)
        let mut stop_guard = StopGuard {
            stop: &stop,
            ctl: &ctl,
            workers: Vec::new(),
        };
        for k in 1..lanes_n as usize {
            let base = coord.bounds[k];
            let h = std::thread::Builder::new()
                .name(format!("lane {k}"))
                .spawn_scoped(s, move || worker(k, shared, base))
                .map_err(|e| {
                    SimError::Internal(format!("cannot start a simulation thread: {e}"))
                })?;
            stop_guard.workers.push(h.thread().clone());
        }
        coord.workers = stop_guard.workers.clone();
        coord.run(shared, progress)
    })
}

/// A lane of `n` replicas from `first` on, built as [`Engine::new`] builds a run's.
fn lane(setup: &EngineSetup, first: u32, n: u32, decode_runs: bool) -> Engine {
    let p = &setup.pool;
    let lane_setup = EngineSetup {
        pool: PoolSetup {
            exec: p.exec.clone(),
            replicas: n,
            pp: p.pp,
            scheduler: p.scheduler,
            scheduler_params: p.scheduler_params.clone(),
            block_size: p.block_size,
            router: p.router,
        },
        router_weights: setup.router_weights,
        async_scheduling: setup.async_scheduling,
        frontend_ns: setup.frontend_ns,
        stage_ends_ns: setup.stage_ends_ns.clone(),
        seed: setup.seed,
        time_limit_ns: None,
        max_request_tokens: setup.max_request_tokens,
        flops: setup.flops,
        slo: setup.slo.clone(),
        timeseries_interval_ns: setup.timeseries_interval_ns,
        sinks: None,
        keep_stage_log: false,
        keep_requests: true,
        disagg: None,
        miss_watch: None,
    };
    let mut e = Engine::new(lane_setup, Box::new(std::iter::empty())).with_decode_runs(decode_runs);
    e.replica_base = first;
    e.lane = Some(LaneIo::default());
    e
}

/// Worker `k`: runs its lane's windows until told to stop.
fn worker(k: usize, sh: &Shared<'_>, base: u32) {
    let ctl = &sh.ctl[k];
    let _done = DoneGuard(ctl, sh);
    let mut seen = 0u64;
    loop {
        let mut epoch = seen;
        wait_for(
            || {
                epoch = ctl.go.load(Ordering::SeqCst);
                epoch > seen
            },
            &ctl.sleeping,
        );
        seen = epoch;
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let until = ctl.until.load(Ordering::Relaxed);
        let Ok(mut e) = sh.lanes[k].lock() else {
            return;
        };
        let result = e.run_window(until);
        drain_completions(&mut e, sh.out, base);
        hand_out(&mut e, &sh.outbox[k]);
        ctl.next_ns.store(e.next_item_ns(), Ordering::Relaxed);
        if let Err(err) = result {
            e.lane.as_mut().expect("a lane").error = Some(err);
            ctl.failed.store(true, Ordering::Relaxed);
        }
        drop(e);
        ctl.done.store(epoch, Ordering::SeqCst);
        wake(&sh.coordinator, sh.coordinator_sleeps);
    }
}

/// Moves the requests the lane retired to its outbox.
fn hand_out(e: &mut Engine, outbox: &Mutex<Vec<Request>>) {
    let kept = e.kept_requests.as_mut().expect("a lane keeps its requests");
    if !kept.is_empty() {
        if let Ok(mut o) = outbox.lock() {
            o.append(kept);
        }
    }
}

/// Takes the lane's finished requests off the shared unfinished counts.
fn drain_completions(e: &mut Engine, out: &Outstanding, base: u32) {
    let io = e.lane.as_mut().expect("a lane");
    for r in io.completed_on.drain(..) {
        out.0[(base + r) as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The run-wide state: the clock, the arrivals, the router and the files.
struct Coordinator {
    now_ns: u64,
    arrivals: Box<dyn Iterator<Item = RequestSpec> + Send>,
    /// Requests arrived (the next request id).
    arrived: u32,
    router: Router,
    synced: bool,
    /// First replica of each lane, then the replica count.
    bounds: Vec<u32>,
    max_request_tokens: u32,
    frontend_ns: u64,
    time_limit_ns: Option<u64>,
    sinks: Option<Sinks>,
    ts_interval_ns: u64,
    ts_start_ns: u64,
    ts_rows: u64,
    ts_max_rows: u64,
    /// The TTFT trend, in request-id order ([`Metrics::on_retire`]).
    trend: Metrics,
    /// Retired requests waiting for an older one still running in another lane, by id from
    /// `next_write`.
    pending: VecDeque<Option<Request>>,
    next_write: u32,
    kept: Option<Vec<Request>>,
    epoch: u64,
    /// The workers' threads (lanes 1 on).
    workers: Vec<std::thread::Thread>,
}

impl Coordinator {
    fn lane_of(&self, replica: u32) -> usize {
        self.bounds.partition_point(|&b| b <= replica) - 1
    }

    fn run(
        &mut self,
        sh: &Shared<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EngineOutcome, SimError> {
        let mut next_arrival = self.arrivals.next();
        let mut time_limited = false;
        let mut windows = 0u64;
        loop {
            // a window ends at the next arrival when routing reads the lanes' state
            let mut until = match &next_arrival {
                Some(s) if self.synced => s.arrival_ns,
                _ => u64::MAX,
            };
            if self.sinks.is_some() {
                until = until.min(self.ts_start_ns + self.ts_interval_ns + 1);
            }
            if let Some(l) = self.time_limit_ns {
                until = until.min(l.saturating_add(1));
            }
            if !self.synced {
                // routing reads nothing: hand out the arrivals before the window's end now, at
                // most FREE_WINDOW_ARRIVALS of them (the lanes hold what is handed out)
                let mut handed = 0;
                while let Some(spec) = next_arrival.take_if(|s| s.arrival_ns < until) {
                    let req = self.request(&spec);
                    if handed == FREE_WINDOW_ARRIVALS
                        || spec.arrival_ns < self.now_ns
                        || spec.arrival_ns > MAX_SIMULATED_NS
                        || req.is_err()
                    {
                        // the window ends before it; the checks below report a bad one in order
                        until = spec.arrival_ns;
                        next_arrival = Some(spec);
                        break;
                    }
                    self.now_ns = spec.arrival_ns;
                    self.hand_to_lane(req?, sh)?;
                    handed += 1;
                    next_arrival = self.arrivals.next();
                }
            }
            self.window(until, sh)?;
            windows += 1;
            if windows.is_multiple_of(8192) {
                progress(self.progress(sh)?);
            }
            let a = next_arrival.as_ref().map(|s| s.arrival_ns);
            let ev = sh
                .ctl
                .iter()
                .map(|c| c.next_ns.load(Ordering::Relaxed))
                .min()
                .unwrap_or(u64::MAX);
            let (t, is_arrival) = match a {
                Some(a) if a <= ev => (a, true),
                _ if ev == u64::MAX => break,
                _ => (ev, false),
            };
            if let Some(limit) = self.time_limit_ns {
                if t > limit {
                    time_limited = true;
                    self.advance_to(limit, sh)?;
                    self.now_ns = limit.max(self.now_ns);
                    break;
                }
            }
            bookkeeping::check_item_time(t, self.now_ns, is_arrival, self.arrived)?;
            self.advance_to(t, sh)?;
            self.now_ns = t;
            if is_arrival {
                let spec = next_arrival.take().expect("peeked");
                let req = self.request(&spec)?;
                self.hand_to_lane(req, sh)?;
                next_arrival = self.arrivals.next();
            }
        }
        self.finish(sh, time_limited, progress)
    }

    /// Runs every lane with work before `until` up to it: lane 0 here, the others on their
    /// threads.
    fn window(&mut self, until: u64, sh: &Shared<'_>) -> Result<(), SimError> {
        self.epoch += 1;
        let epoch = self.epoch;
        for (k, c) in sh.ctl.iter().enumerate().skip(1) {
            if c.next_ns.load(Ordering::Relaxed) < until {
                c.until.store(until, Ordering::Relaxed);
                c.go.store(epoch, Ordering::SeqCst);
                wake(&self.workers[k - 1], &c.sleeping);
            }
        }
        if epoch.is_multiple_of(64) {
            // while the workers run: write what the lanes retired
            self.retire(sh, false)?;
        }
        let mut first = Ok(());
        if sh.ctl[0].next_ns.load(Ordering::Relaxed) < until {
            let mut e = lock(&sh.lanes[0])?;
            first = e.run_window(until);
            drain_completions(&mut e, sh.out, 0);
            hand_out(&mut e, &sh.outbox[0]);
            sh.ctl[0].next_ns.store(e.next_item_ns(), Ordering::Relaxed);
        }
        let mut failed = None;
        for (k, c) in sh.ctl.iter().enumerate().skip(1) {
            if c.go.load(Ordering::Relaxed) != epoch {
                continue;
            }
            let mut done = 0;
            wait_for(
                || {
                    done = c.done.load(Ordering::SeqCst);
                    done >= epoch
                },
                sh.coordinator_sleeps,
            );
            if done == u64::MAX {
                return Err(SimError::Internal("a simulation thread stopped".into()));
            }
            if failed.is_none() && c.failed.load(Ordering::Relaxed) {
                failed = Some(k);
            }
        }
        first?;
        if let Some(k) = failed {
            let mut e = lock(&sh.lanes[k])?;
            let io = e.lane.as_mut().expect("a lane");
            return Err(io.error.take().unwrap_or_else(|| {
                SimError::Internal("a simulation thread failed without an error".into())
            }));
        }
        Ok(())
    }

    /// The request for an arrival of `spec`, checked as [`Engine::run`] checks it.
    fn request(&self, spec: &RequestSpec) -> Result<Request, SimError> {
        super::arrival_request(
            self.arrived,
            spec,
            self.max_request_tokens,
            self.frontend_ns,
            false,
        )
    }

    /// Routes the arriving request `req` (at the current time) and hands it to its lane.
    fn hand_to_lane(&mut self, mut req: Request, sh: &Shared<'_>) -> Result<(), SimError> {
        let r = self.router.route_request(&req, sh.out);
        req.replica = r;
        sh.out.0[r as usize].fetch_add(1, Ordering::Relaxed);
        self.arrived += 1;
        let k = self.lane_of(r);
        let mut e = lock(&sh.lanes[k])?;
        let at = req.arrived_at_ns;
        e.lane.as_mut().expect("a lane").injected.push_back(req);
        let next = &sh.ctl[k].next_ns;
        next.store(next.load(Ordering::Relaxed).min(at), Ordering::Relaxed);
        Ok(())
    }

    /// Emits the time-series samples due before `t` over every lane's replicas, as
    /// [`Engine::advance_to`] does (the lanes have run everything before `t`).
    fn advance_to(&mut self, t: u64, sh: &Shared<'_>) -> Result<(), SimError> {
        if self.sinks.is_none() {
            return Ok(());
        }
        let due = t.saturating_sub(self.ts_start_ns + 1) / self.ts_interval_ns;
        let rows = due.saturating_mul(self.replicas() as u64);
        if self.ts_rows.saturating_add(rows) > self.ts_max_rows {
            return Err(bookkeeping::too_many_rows(
                t,
                self.replicas(),
                self.ts_interval_ns,
                self.ts_max_rows,
            ));
        }
        self.ts_rows += rows;
        while self.ts_start_ns + self.ts_interval_ns < t {
            let at = self.ts_start_ns + self.ts_interval_ns;
            self.sample(at, sh)?;
        }
        Ok(())
    }

    fn replicas(&self) -> u32 {
        *self.bounds.last().expect("bounds")
    }

    fn sample(&mut self, at: u64, sh: &Shared<'_>) -> Result<(), SimError> {
        let Some(sinks) = &mut self.sinks else {
            return Ok(());
        };
        for (k, l) in sh.lanes.iter().enumerate() {
            let mut e = lock(l)?;
            bookkeeping::sample_replicas(
                &mut e.replicas,
                self.bounds[k],
                at,
                self.ts_start_ns,
                sinks,
            )?;
            // the lane's stage ends count busy time from the interval's start
            e.ts_start_ns = at;
        }
        self.ts_start_ns = at;
        Ok(())
    }

    /// Takes the lanes' retired requests and writes those whose turn has come (all, at the end).
    fn retire(&mut self, sh: &Shared<'_>, all: bool) -> Result<(), SimError> {
        for (k, l) in sh.lanes.iter().enumerate() {
            if all {
                let mut e = lock(l)?;
                e.retire(true)?;
                hand_out(&mut e, &sh.outbox[k]);
            }
            let mut outbox = sh.outbox[k]
                .lock()
                .map_err(|_| SimError::Internal("a simulation thread panicked".into()))?;
            for q in outbox.drain(..) {
                let i = (q.id - self.next_write) as usize;
                if i >= self.pending.len() {
                    self.pending.resize(i + 1, None);
                }
                self.pending[i] = Some(q);
            }
        }
        while let Some(Some(_)) = self.pending.front() {
            let q = self.pending.pop_front().flatten().expect("checked");
            self.next_write += 1;
            self.trend.on_retire(&q);
            if let Some(s) = &mut self.sinks {
                s.request(&q)?;
            }
            if let Some(k) = &mut self.kept {
                k.push(q);
            }
        }
        Ok(())
    }

    fn progress(&self, sh: &Shared<'_>) -> Result<Progress, SimError> {
        let mut completed = 0;
        for l in sh.lanes {
            completed += lock(l)?.completed;
        }
        Ok(Progress {
            arrived: self.arrived as u64,
            completed,
            now_ns: self.now_ns,
        })
    }

    /// Ends the run as [`Engine::run`] does, over every lane.
    fn finish(
        &mut self,
        sh: &Shared<'_>,
        time_limited: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EngineOutcome, SimError> {
        for l in sh.lanes {
            self.now_ns = self.now_ns.max(lock(l)?.now_ns);
        }
        let now = self.now_ns;
        let mut completed = 0;
        for l in sh.lanes {
            let mut e = lock(l)?;
            e.now_ns = now;
            e.settle_decode_runs();
            completed += e.completed;
        }
        if !time_limited && completed < self.arrived as u64 {
            let mut oldest: Option<SimError> = None;
            let mut oldest_id = u32::MAX;
            for l in sh.lanes {
                let e = lock(l)?;
                let stuck = e.requests.live().find(|q| !q.completed);
                if let Some(q) = stuck.filter(|q| q.id < oldest_id) {
                    oldest_id = q.id;
                    oldest = Some(e.stalled(q, self.arrived as u64 - completed));
                }
            }
            return Err(oldest.unwrap_or_else(|| {
                SimError::Internal("unfinished requests, but none in any lane".into())
            }));
        }
        self.retire(sh, true)?;
        if now > self.ts_start_ns {
            self.sample(now, sh)?;
        }
        if let Some(s) = self.sinks.take() {
            s.finish()?;
        }
        let mut metrics = Metrics::default();
        let mut replicas = Vec::with_capacity(self.replicas() as usize);
        let mut run_steps = 0;
        let mut first = true;
        for l in sh.lanes {
            let mut e = lock(l)?;
            for r in &mut e.replicas {
                r.account_kv(now);
            }
            if first {
                metrics = std::mem::take(&mut e.metrics);
                first = false;
            } else {
                metrics.merge(&e.metrics);
            }
            replicas.append(&mut e.replicas);
            run_steps += e.run_steps;
        }
        metrics.ttft_trend = self.trend.ttft_trend;
        progress(Progress {
            arrived: self.arrived as u64,
            completed,
            now_ns: now,
        });
        Ok(EngineOutcome {
            arrived: self.arrived as u64,
            requests: self.kept.take().unwrap_or_default(),
            replicas,
            end_ns: now,
            metrics,
            completed,
            time_limited,
            certain_miss: None,
            stage_log: Vec::new(),
            run_steps,
        })
    }
}
