//! One simulation from a configuration: [`simulate`]. Safe to call from many threads at once (no
//! global state); files are written only when [`RunOptions::out_dir`] is set.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use predictor::table::TableBounds;
use predictor::{build_execution_model, BackendInfo, Catalog, ExecSetup, ExecutionModel};

use crate::bench::BenchResult;
use crate::config::SimConfig;
use crate::engine::disagg::PoolSetup;
use crate::engine::{Engine, EngineOutcome, EngineSetup, Progress};
use crate::error::SimError;
use crate::metrics::load::{self, ArrivalTally};
use crate::metrics::miss_watch::LatencyBound;
use crate::metrics::summary::{BackendSummary, ClusterFacts, Summary};
use crate::metrics::{FlopModel, MissWatch};
use crate::output::staging::{self, Staging};
use crate::output::{self, Sinks};
use crate::scheduler::SchedulerParams;

/// How to run (as opposed to what to simulate).
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Directory for the output files; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Use this execution model instead of building one from the configuration (for callers that
    /// run many simulations of one replica layout).
    pub exec_model: Option<Arc<dyn ExecutionModel>>,
    /// For a disaggregated configuration: the decode pool's execution model. Only with it is
    /// [`RunOptions::exec_model`] used there, as the prefill pool's.
    pub decode_exec_model: Option<Arc<dyn ExecutionModel>>,
    /// Stop the run as soon as one of these bounds is certainly missed
    /// ([`crate::metrics::miss_watch`]); the outcome's `certain_miss` then gives the verdict and
    /// its summary covers the run only up to there. Empty: run to the end.
    pub stop_at_certain_miss: Vec<LatencyBound>,
    /// Form every batch through the policy, without decode runs (the same results, more slowly;
    /// [`Engine::with_decode_runs`]).
    pub step_by_step: bool,
    /// Threads for this one run: its replicas are split among them where the run allows it
    /// ([`crate::engine::parallel`]), with the same outputs for every count; 0 and 1 run it on the
    /// calling thread.
    pub threads: usize,
}

/// The result of [`simulate`].
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The content of `summary.json`.
    pub summary: Summary,
    /// The content of `bench.json` (vLLM's benchmark keys).
    pub bench: BenchResult,
    /// The backend that answered.
    pub backend: BackendInfo,
    /// KV blocks per replica.
    pub kv_blocks_per_replica: u64,
    /// Wall-clock time of the simulation, s.
    pub wall_time_s: f64,
    /// Where the files went.
    pub out_dir: Option<PathBuf>,
    /// The run stopped early on a certain miss of one of
    /// [`RunOptions::stop_at_certain_miss`]: the verdict.
    pub certain_miss: Option<String>,
    /// Threads the run used ([`RunOptions::threads`]).
    pub threads: usize,
    /// Why it used fewer threads than asked for, if it did (for the terminal: the files are
    /// the same for every thread count).
    pub threads_note: Option<String>,
}

/// Builds the execution model a configuration asks for.
pub fn execution_model(
    cfg: &SimConfig,
    r: &crate::config::Resolved,
) -> Result<Arc<dyn ExecutionModel>, SimError> {
    let setup = ExecSetup {
        table_bounds: table_bounds(cfg),
        ..r.exec.clone()
    };
    Ok(build_execution_model(&setup)?)
}

/// Prediction-table bounds covering what the run can ask for: Vidur's defaults (4,096 tokens,
/// batches of 128), widened to the workload's longest request and the scheduler's batch cap.
/// Larger batches than these still get answers (counted as out-of-grid lookups).
fn table_bounds(cfg: &SimConfig) -> TableBounds {
    let defaults = TableBounds::default();
    let longest = u64::from(cfg.workload.max_request_tokens()).div_ceil(64) * 64;
    let max_tokens = defaults.max_tokens.max(longest);
    TableBounds {
        max_tokens,
        max_batch_size: defaults
            .max_batch_size
            .max(u64::from(cfg.scheduler.batch_size_cap)),
        max_prefill_chunk: defaults.max_prefill_chunk.max(max_tokens),
    }
}

/// Runs the simulation `cfg` describes. With [`RunOptions::out_dir`], the files are written to a
/// staging directory and moved into place only when the whole run succeeded
/// ([`crate::output::staging`]); a failed run leaves the directory as it was.
pub fn simulate(cfg: &SimConfig, opts: &RunOptions) -> Result<SimOutcome, SimError> {
    let Some(dir) = &opts.out_dir else {
        return simulate_into(cfg, opts, None);
    };
    for (flag, input) in cfg.workload.input_files() {
        staging::check_not_an_output(dir, flag, input)?;
    }
    let stage = Staging::create(dir)?;
    match simulate_into(cfg, opts, Some(stage.path())) {
        Ok(outcome) if outcome.summary.requests.arrived == 0 => {
            stage.discard();
            Err(SimError::Config {
                field: "workload".into(),
                why: format!(
                    "no request arrived: {} produced none before the run ended; raise the rate (--qps, --rate-stages) or the duration (--duration), or check the trace",
                    crate::describe::arrivals(cfg)
                ),
            })
        }
        Ok(outcome) => {
            stage.commit()?;
            Ok(outcome)
        }
        Err(e) => {
            stage.discard();
            Err(e)
        }
    }
}

fn simulate_into(
    given: &SimConfig,
    opts: &RunOptions,
    write_dir: Option<&std::path::Path>,
) -> Result<SimOutcome, SimError> {
    let start = Instant::now();
    // With pools: the prefill pool (disaggregated) or the one mixed pool as a colocated cluster.
    let disagg = given.disaggregated()?;
    let pooled;
    let cfg = match &disagg {
        Some(d) => &d.prefill.config,
        None if given.cluster.pools.is_empty() => given,
        None => {
            pooled = given.colocated()?;
            &pooled
        }
    };
    let resolved = match &disagg {
        Some(d) => d.prefill.resolved.clone(),
        None => cfg.resolve(&Catalog::builtin())?,
    };
    // The caller's models: the replicas' (colocated), or both pools' (disaggregated).
    let given_decode = opts
        .exec_model
        .as_ref()
        .and(opts.decode_exec_model.as_ref());
    let exec = match &opts.exec_model {
        Some(e) if disagg.is_none() || given_decode.is_some() => e.clone(),
        _ => execution_model(cfg, &resolved)?,
    };
    let decode_pool = match &disagg {
        Some(d) => Some(crate::engine::disagg::DisaggSetup {
            decode: pool_setup(
                &d.decode.config,
                &d.decode.resolved,
                match given_decode {
                    Some(e) => e.clone(),
                    None => execution_model(&d.decode.config, &d.decode.resolved)?,
                },
            ),
            transfer: d.transfer,
        }),
        None => None,
    };
    let backend = exec.info();
    let generated = crate::workload::generate_noted(&cfg.workload, cfg.seed)?;
    let tally = Arc::new(Mutex::new(ArrivalTally::default()));
    let arrivals = {
        let tally = tally.clone();
        Box::new(
            generated
                .requests
                .inspect(move |s| tally.lock().unwrap_or_else(|p| p.into_inner()).record(s)),
        )
    };
    let pp = resolved.parallelism.pp;
    let (all_replicas, max_pp) = match &decode_pool {
        Some(d) => (
            cfg.cluster.num_replicas + d.decode.replicas,
            pp.max(d.decode.pp),
        ),
        None => (cfg.cluster.num_replicas, pp),
    };
    let sinks = match write_dir {
        Some(dir) => Some(
            Sinks::create(
                dir,
                cfg.output.batches,
                cfg.output.trace,
                all_replicas,
                max_pp,
            )?
            .with_disaggregation(disagg.is_some())?,
        ),
        None => None,
    };
    let setup = EngineSetup {
        pool: pool_setup(cfg, &resolved, exec.clone()),
        router_weights: cfg.cluster.kv_aware,
        async_scheduling: resolved.exec.engine.async_scheduling,
        frontend_ns: exec.frontend_ns(),
        stage_ends_ns: cfg
            .workload
            .arrival
            .stage_bounds()
            .iter()
            .map(|&(_, end, _)| (end * 1e9).round() as u64)
            .collect(),
        seed: cfg.seed,
        time_limit_ns: cfg.time_limit_s.map(|t| (t * 1e9).round() as u64),
        max_request_tokens: resolved.max_request_tokens,
        flops: FlopModel::new(&resolved.model),
        slo: cfg.slo.clone(),
        timeseries_interval_ns: (cfg.output.timeseries_interval_s * 1e9).round() as u64,
        sinks,
        keep_stage_log: false,
        keep_requests: false,
        disagg: decode_pool,
        miss_watch: miss_watch(cfg, &opts.stop_at_certain_miss)?,
    };
    let mut bar =
        crate::progress::RunProgress::new(opts.quiet, crate::progress::expected_requests(cfg));
    let mut on_progress = |p: Progress| bar.update(p);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads_note = None;
    let threads = match crate::engine::parallel::unsupported(&setup) {
        Some(why) if opts.threads > 1 => {
            threads_note = Some(format!("ran on one thread, not {}: {why}", opts.threads));
            1
        }
        _ if opts.threads > cores => {
            threads_note = Some(format!(
                "ran on {cores} threads, not {}: this machine has {cores} cores, and lanes that \
                 wait for each other gain nothing from more threads than cores",
                opts.threads
            ));
            cores
        }
        _ => opts.threads.max(1),
    };
    let outcome = if threads > 1 {
        let how = crate::engine::parallel::ParallelRun {
            decode_runs: !opts.step_by_step,
            ..crate::engine::parallel::ParallelRun::new(threads)
        };
        crate::engine::parallel::run(setup, arrivals, how, &mut on_progress)?
    } else {
        Engine::new(setup, arrivals)
            .with_decode_runs(!opts.step_by_step)
            .run(&mut on_progress)?
    };
    bar.finish();
    let facts = ClusterFacts {
        gpus_per_replica: resolved.parallelism.world_size(),
        peak_flops_per_gpu: resolved.device.peak_bf16_flops,
        usd_per_gpu_hour: resolved.device.price_per_gpu_hour_usd,
        backend: BackendSummary {
            kind: backend.kind.to_string(),
            source: backend.source.clone(),
            fallbacks: backend
                .fallbacks
                .iter()
                .map(|(op, k)| format!("{}: {k}", op.name()))
                .collect(),
            out_of_grid_lookups: exec.out_of_grid_lookups(),
        },
        slo: cfg.slo.clone(),
        stages: cfg.workload.arrival.stage_bounds(),
        frontend_ns: exec.frontend_ns(),
    };
    let mut summary = Summary::build(&outcome, &facts);
    if let Some(d) = &disagg {
        crate::metrics::pools::add_to_summary(&mut summary, d, &outcome.metrics.transfers);
    }
    let arrived = tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .facts(outcome.end_ns);
    summary.load = Some(load::judge(&summary, &arrived, &outcome.metrics.ttft_trend));
    summary.workload = Some(arrived);
    summary.notes = generated.notes;
    summary.notes.extend(run_notes(cfg, &outcome, &backend));
    let bench = crate::bench::build(cfg, &resolved.model.name, &summary, &outcome.metrics);
    if let Some(dir) = write_dir {
        let written = match &disagg {
            Some(_) => given.clone(),
            None => cfg.resolved_for_output(&resolved),
        };
        output::write_file(dir, "config.toml", &written.to_toml())?;
        let json = serde_json::to_string_pretty(&summary).expect("the summary serializes");
        output::write_file(dir, "summary.json", &(json + "\n"))?;
        output::write_file(dir, "bench.json", &bench.to_json())?;
        output::write_file(
            dir,
            "itl_histogram.csv",
            &output::itl::text(&outcome.metrics.tbt),
        )?;
        if cfg.output.report {
            crate::report::write_report(dir)?;
        }
    }
    Ok(SimOutcome {
        summary,
        bench,
        backend,
        kv_blocks_per_replica: resolved.memory.num_blocks,
        wall_time_s: start.elapsed().as_secs_f64(),
        out_dir: opts.out_dir.clone(),
        certain_miss: outcome.certain_miss.clone(),
        threads,
        threads_note,
    })
}

/// The watch of `bounds` over the requests of `cfg`'s workload (counted by generating it once
/// more: the engine pulls it lazily); `None` without bounds.
fn miss_watch(cfg: &SimConfig, bounds: &[LatencyBound]) -> Result<Option<MissWatch>, SimError> {
    if bounds.is_empty() {
        return Ok(None);
    }
    let (mut requests, mut multi_token) = (0u64, 0u64);
    for r in crate::workload::generate_noted(&cfg.workload, cfg.seed)?.requests {
        requests += 1;
        multi_token += u64::from(r.decode_tokens > 1);
    }
    Ok(Some(MissWatch::new(bounds, requests, multi_token)))
}

/// One pool's replicas as the engine builds them.
fn pool_setup(
    cfg: &SimConfig,
    resolved: &crate::config::Resolved,
    exec: Arc<dyn ExecutionModel>,
) -> PoolSetup {
    let pp = resolved.parallelism.pp;
    PoolSetup {
        exec,
        replicas: cfg.cluster.num_replicas,
        pp,
        scheduler: resolved.scheduler,
        scheduler_params: SchedulerParams {
            config: cfg.scheduler.clone(),
            pp,
            num_blocks: resolved.memory.num_blocks,
            max_blocks_per_request: resolved
                .max_request_tokens
                .div_ceil(resolved.memory.block_size),
        },
        block_size: resolved.memory.block_size,
        router: cfg.cluster.router,
    }
}

/// The notes of a finished run: a stop at the time limit, a workload that ended before
/// `num_requests`, the roofline answering although profile directories were given (operator
/// fallbacks are in [`BackendSummary`]).
fn run_notes(cfg: &SimConfig, o: &EngineOutcome, backend: &BackendInfo) -> Vec<String> {
    let mut notes = Vec::new();
    if cfg.predictor.backend == predictor::BackendChoice::Auto
        && backend.kind != predictor::BackendKind::Profiled
        && !cfg.predictor.profiles.is_empty()
    {
        notes.push(format!(
            "no profile of {} on {} in the --profiles directories ({}): the {} backend answered",
            cfg.replica.model,
            cfg.replica.device,
            cfg.predictor
                .profiles
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            backend.kind
        ));
    }
    if o.time_limited {
        notes.push(format!(
            "the run stopped at the time limit of {} s (--time-limit) with {} of {} arrived requests unfinished",
            cfg.time_limit_s.unwrap_or(0.0),
            o.arrived - o.completed,
            o.arrived
        ));
    } else if let Some(n) = cfg.workload.num_requests {
        if o.arrived < n {
            let why = if cfg.workload.trace.is_some()
                || matches!(
                    cfg.workload.arrival,
                    crate::workload::ArrivalConfig::Trace { .. }
                ) {
                "the trace has no more rows"
            } else if matches!(
                cfg.workload.arrival,
                crate::workload::ArrivalConfig::Stages { .. }
            ) {
                "the last rate stage (--rate-stages) ended"
            } else {
                "workload.duration_s ended it"
            };
            notes.push(format!(
                "{} requests arrived, fewer than the {n} asked for (--num-requests): {why}",
                o.arrived
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_runs_agree_and_write_nothing_without_a_directory() {
        // (through TOML, so the test does not depend on the workload's field types)
        let cfg =
            SimConfig::from_toml("[cluster]\nnum_replicas = 2\n[workload]\nnum_requests = 60\n")
                .unwrap();
        let opts = RunOptions {
            quiet: true,
            ..Default::default()
        };
        let summaries: Vec<Summary> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| s.spawn(|| simulate(&cfg, &opts).unwrap().summary))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(summaries[0].requests.completed, 60);
        assert!(summaries.iter().all(|x| x == &summaries[0]));
        // a shared execution model gives the same answer as building one per run
        let resolved = cfg.resolve(&Catalog::builtin()).unwrap();
        let shared = RunOptions {
            quiet: true,
            exec_model: Some(execution_model(&cfg, &resolved).unwrap()),
            ..Default::default()
        };
        assert_eq!(simulate(&cfg, &shared).unwrap().summary, summaries[0]);
    }
}
