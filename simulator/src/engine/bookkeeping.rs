//! What the engine reports besides batches: time-series samples, retired requests, and the
//! end-of-run check that nothing is left behind.

use super::{Engine, ReplicaState};
use crate::error::SimError;
#[cfg(doc)]
use crate::output::MAX_TIMESERIES_ROWS;
use crate::output::{Sinks, TimeseriesRow};
use crate::request::Request;

impl Engine {
    /// Hands finished requests at the front of the table (or all, at the end) to the outputs.
    pub(super) fn retire(&mut self, all: bool) -> Result<(), SimError> {
        let sinks = &mut self.sinks;
        let kept = &mut self.kept_requests;
        // a lane hands its requests to the coordinator, which keeps the trend (parallel.rs)
        let mut metrics = self.lane.is_none().then_some(&mut self.metrics);
        let mut result = Ok(());
        let mut take = |r: &Request| {
            if let Some(m) = metrics.as_deref_mut() {
                m.on_retire(r);
            }
            if let Some(s) = sinks.as_mut() {
                if result.is_ok() {
                    result = s.request(r);
                }
            }
            if let Some(k) = kept.as_mut() {
                k.push(r.clone());
            }
        };
        if all {
            self.requests.retire_all(&mut take);
        } else {
            self.requests.retire_finished(&mut take);
        }
        result
    }

    /// Emits the time-series samples due before `t`; refuses, before writing any, when they would
    /// take `timeseries.csv` past its row limit ([`MAX_TIMESERIES_ROWS`] unless set otherwise).
    pub(super) fn advance_to(&mut self, t: u64) -> Result<(), SimError> {
        if self.sinks.is_none() {
            return Ok(());
        }
        let due = t.saturating_sub(self.ts_start_ns + 1) / self.ts_interval_ns;
        let rows = due.saturating_mul(self.replicas.len() as u64);
        if self.ts_rows.saturating_add(rows) > self.ts_max_rows {
            return Err(self.too_many_rows(t));
        }
        self.ts_rows += rows;
        // a sample at time T covers the events at T too
        while self.ts_start_ns + self.ts_interval_ns < t {
            let at = self.ts_start_ns + self.ts_interval_ns;
            self.sample(at)?;
        }
        Ok(())
    }

    pub(super) fn sample(&mut self, at: u64) -> Result<(), SimError> {
        let Some(sinks) = &mut self.sinks else {
            return Ok(());
        };
        sample_replicas(&mut self.replicas, 0, at, self.ts_start_ns, sinks)?;
        self.ts_start_ns = at;
        Ok(())
    }

    pub(super) fn finish_timeseries(&mut self) -> Result<(), SimError> {
        if self.now_ns > self.ts_start_ns {
            self.sample(self.now_ns)?;
        }
        Ok(())
    }

    /// The error for a time series that would pass its row limit by time `t`.
    fn too_many_rows(&self, t: u64) -> SimError {
        too_many_rows(
            t,
            self.replicas.len() as u32,
            self.ts_interval_ns,
            self.ts_max_rows,
        )
    }

    /// The error for an event at `t` past [`super::MAX_SIMULATED_NS`].
    pub(super) fn out_of_range(&self, t: u64, is_arrival: bool) -> SimError {
        out_of_range_error(t, is_arrival, self.requests.len())
    }

    pub(super) fn check_drained(&self) -> Result<(), SimError> {
        let unfinished = self.requests.len() as u64 - self.completed;
        if unfinished == 0 {
            return Ok(());
        }
        let stuck = self
            .requests
            .live()
            .find(|q| !q.completed)
            .expect("an unfinished request");
        Err(self.stalled(stuck, unfinished))
    }

    /// The error for a run that ended with `unfinished` requests, the oldest `stuck` (one of
    /// this engine's).
    pub(super) fn stalled(&self, stuck: &Request, unfinished: u64) -> SimError {
        let rep = &self.replicas[(stuck.replica - self.replica_base) as usize];
        SimError::Stalled {
            time_s: self.now_ns as f64 * 1e-9,
            unfinished,
            detail: format!(
                "request {} ({} prompt + {} output tokens) on replica {} never finished; the replica has {} KV blocks of {} tokens, {} in use",
                stuck.id,
                stuck.prefill_tokens,
                stuck.decode_tokens,
                stuck.replica,
                rep.kv.num_blocks(),
                rep.kv.block_size(),
                rep.kv.allocated()
            ),
        }
    }
}

/// Writes one time-series row per replica of `replicas` (run-wide ids from `first`) for the
/// interval from `start` to `at`, and starts their next interval.
pub(super) fn sample_replicas(
    replicas: &mut [ReplicaState],
    first: u32,
    at: u64,
    start: u64,
    sinks: &mut Sinks,
) -> Result<(), SimError> {
    let span = (at - start).max(1);
    for (i, rep) in replicas.iter_mut().enumerate() {
        if let Some(since) = rep.stage0_since_ns {
            rep.ts_busy_ns += at - since.max(start);
        }
        let queued = rep.scheduler.num_queued() as u64;
        sinks.timeseries(&TimeseriesRow {
            time_ns: at,
            replica: first + i as u32,
            queued,
            running: rep.outstanding as u64 - queued,
            kv_used: rep.kv.allocated(),
            kv_total: rep.kv.num_blocks(),
            completed: rep.ts_completed,
            batches: rep.ts_batches,
            busy_fraction: rep.ts_busy_ns as f64 / span as f64,
        })?;
        rep.ts_completed = 0;
        rep.ts_batches = 0;
        rep.ts_busy_ns = 0;
    }
    Ok(())
}

/// The error for a time series of `replicas` replicas, sampled every `interval_ns`, that would
/// pass `limit` rows by time `t`.
pub(super) fn too_many_rows(t: u64, replicas: u32, interval_ns: u64, limit: u64) -> SimError {
    let replicas = replicas as f64;
    let t_s = t as f64 * 1e-9;
    let interval_s = interval_ns as f64 * 1e-9;
    let needed_s = (t_s * replicas / limit as f64).max(interval_s * 2.0);
    SimError::OutputTooLarge(format!(
        "timeseries.csv would pass {limit} rows: simulated time reaches {t_s:.6e} s \
         (one row per replica every {interval_s} s, {replicas} replica(s)); the workload spans \
         more simulated time than it has work for. Compress the arrivals (--time-scale, a \
         higher --qps) or sample less often (--timeseries-interval {needed_s:.3e} or more)"
    ))
}

/// Checks the time `t` of the next item (the arrival of request `next_request`, or an event)
/// against the simulator's last time and the clock at `now`.
#[inline]
pub(super) fn check_item_time(
    t: u64,
    now: u64,
    is_arrival: bool,
    next_request: u32,
) -> Result<(), SimError> {
    if t > super::MAX_SIMULATED_NS {
        return Err(out_of_range_error(t, is_arrival, next_request));
    }
    if t < now {
        return Err(if is_arrival {
            SimError::Config {
                field: "workload".into(),
                why: format!("request {next_request} arrives at {t} ns, before the previous one: the workload must be in arrival order"),
            }
        } else {
            SimError::Internal(format!("the clock went back from {now} to {t} ns"))
        });
    }
    Ok(())
}

/// The error for an item at `t` past [`super::MAX_SIMULATED_NS`]: the arrival of request
/// `next_request`, or a batch end.
pub(super) fn out_of_range_error(t: u64, is_arrival: bool, next_request: u32) -> SimError {
    let limit_s = super::MAX_SIMULATED_NS as f64 * 1e-9;
    // u64::MAX is a saturated conversion: the time asked for was larger still
    let at = if t == u64::MAX {
        format!("after {:.6e} s", t as f64 * 1e-9)
    } else {
        format!("at {:.6e} s", t as f64 * 1e-9)
    };
    SimError::TimeRange(if is_arrival {
        format!(
            "request {next_request} arrives {at}, past the simulator's limit of {limit_s:.0e} s; \
             check the workload's rate (--qps) and time scale (--time-scale)",
        )
    } else {
        format!(
            "a batch would end {at}, past the simulator's limit of {limit_s:.0e} s; \
             the execution model gives implausibly long batch times (check [predictor.roofline] \
             and [predictor.params])"
        )
    })
}
