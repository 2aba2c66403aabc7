//! `simulator`: simulates an LLM serving cluster. `simulator run --help` lists every option;
//! docs/cli.md describes them and docs/outputs.md the files a run writes.

mod cli;
mod cli_v1;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simulator::{simulate, RunOptions, SimConfig, SimOutcome};

/// servesim's LLM serving-cluster simulator.
#[derive(Debug, Parser)]
#[command(name = "simulator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate one configuration (default: Meta-Llama-3-8B on one h100, sarathi, 1,000 Poisson requests).
    Run(Box<cli::RunArgs>),
    /// Capacity planning: the highest rate meeting the SLOs for every configuration of a space (docs/search.md).
    Search(Box<simulator::search::SearchArgs>),
    /// Fit the engine model's coefficients to measured serving runs (docs/calibration.md).
    Calibrate(Box<simulator::calibrate::CalibrateArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(a)) => *a,
        Some(Command::Search(a)) => {
            return match simulator::search::main(&a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Calibrate(a)) => {
            return match simulator::calibrate::main(&a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        None => cli::RunArgs::default(),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &cli::RunArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))?;
            SimConfig::from_toml(&text)
                .with_context(|| format!("invalid configuration file {}", path.display()))?
        }
        None => SimConfig::default(),
    };
    args.apply_to(&mut cfg)?;
    cfg.validate_values()?;
    let out_dir = args.output.out.clone().unwrap_or_else(default_out_dir);
    let opts = RunOptions {
        out_dir: Some(out_dir),
        quiet: args.output.quiet,
        exec_model: None,
    };
    let outcome = simulate(&cfg, &opts)?;
    if !args.output.quiet {
        print_summary(&cfg, &outcome);
    }
    Ok(())
}

/// `runs/<UTC date-time>`.
fn default_out_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Path::new("runs").join(format!(
        "{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

fn print_summary(cfg: &SimConfig, o: &SimOutcome) {
    let s = &o.summary;
    let l = &s.latency;
    println!(
        "simulated {} on {} × {} (TP{} PP{}), {} scheduler, {} router",
        cfg.replica.model,
        cfg.cluster.num_replicas,
        cfg.replica.device,
        cfg.replica.tp,
        cfg.replica.pp,
        cfg.scheduler.name,
        serde_json::to_value(cfg.cluster.router)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    println!(
        "execution backend: {} ({}){}",
        s.backend.kind,
        s.backend.source,
        if s.backend.fallbacks.is_empty() {
            String::new()
        } else {
            format!("; fallbacks: {}", s.backend.fallbacks.join(", "))
        }
    );
    if s.backend.out_of_grid_lookups > 0 {
        println!(
            "note: {} predictions fell outside the profiled grid and were extrapolated",
            s.backend.out_of_grid_lookups
        );
    }
    println!(
        "requests: {} arrived, {} completed in {:.1} s simulated ({:.2} s wall, {:.0} simulated requests/s)",
        s.requests.arrived,
        s.requests.completed,
        s.simulated_time_s,
        o.wall_time_s,
        s.requests.completed as f64 / o.wall_time_s.max(1e-9)
    );
    println!(
        "throughput: {:.2} req/s, {:.0} output tokens/s, {:.0} tokens/s",
        s.throughput.requests_per_s,
        s.throughput.output_tokens_per_s,
        s.throughput.total_tokens_per_s
    );
    println!("latency (s)          mean       p50       p90       p99       max");
    for (name, st) in [
        ("TTFT", &l.ttft_s),
        ("TBT", &l.tbt_s),
        ("TPOT", &l.tpot_s),
        ("E2E", &l.e2e_s),
        ("scheduling delay", &l.scheduling_delay_s),
    ] {
        println!(
            "  {name:<16} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            st.mean, st.p50, st.p90, st.p99, st.max
        );
    }
    for r in &s.replicas {
        println!(
            "replica {}: busy {:.0} %, MFU {:.1} %, KV blocks {} (mean use {:.0} %, max {:.0} %), {} batches, {} restarts",
            r.replica_id,
            r.busy_fraction * 100.0,
            r.mfu * 100.0,
            r.kv_blocks_total,
            r.kv_usage_mean * 100.0,
            r.kv_usage_max * 100.0,
            r.batches,
            r.restarts
        );
    }
    if let Some(slo) = &s.slo {
        println!(
            "SLOs met by {:.1} % of requests; goodput {:.2} req/s",
            slo.attainment * 100.0,
            slo.goodput_requests_per_s
        );
    }
    println!(
        "cost: {} GPUs, ${:.2}/h, ${:.2} per million output tokens",
        s.cost.gpus, s.cost.usd_per_hour, s.cost.usd_per_million_output_tokens
    );
    if let Some(dir) = &o.out_dir {
        println!("outputs: {}", dir.display());
    }
}
