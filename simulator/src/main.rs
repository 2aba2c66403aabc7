//! `simulator`: simulates an LLM serving cluster. `simulator run --help` lists every option;
//! docs/cli.md describes them and docs/outputs.md the files a run writes.

mod cli;
mod cli_v1;
mod large_outputs;
mod sweep_cli;
mod terminal;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simulator::{simulate, RunOptions, SimConfig};

/// servesim's LLM serving-cluster simulator.
#[derive(Debug, Parser)]
#[command(name = "simulator", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate one configuration (default: Meta-Llama-3-8B on one h100, vllm_v1 on the engine model calibrated for vLLM 0.15.1, 1,000 Poisson requests).
    // negative numbers reach the range checks, which name the flag (not "unexpected argument '-1'")
    #[command(allow_negative_numbers = true)]
    Run(Box<cli::RunArgs>),
    /// Put runs side by side: a table of differences and compare.html with overlaid CDFs (docs/compare.md).
    Compare(Box<simulator::compare::CompareArgs>),
    /// Latency and throughput against offered load: one run per rate of --qps A:B:N (or a list), in parallel (docs/sweep.md).
    #[command(allow_negative_numbers = true)]
    Sweep(Box<sweep_cli::SweepArgs>),
    /// Capacity planning: the highest rate meeting the SLOs for every configuration of a space (docs/search.md).
    #[command(allow_negative_numbers = true)]
    Search(Box<simulator::search::SearchArgs>),
    /// Fit the engine model's coefficients to measured serving runs (docs/calibration.md).
    #[command(allow_negative_numbers = true)]
    Calibrate(Box<simulator::calibrate::CalibrateArgs>),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(a) => run(&a),
        Command::Compare(a) => simulator::compare::main(&a).map_err(anyhow::Error::from),
        Command::Sweep(a) => sweep_cli::main(&a),
        Command::Search(a) => simulator::search::main(&a).map_err(anyhow::Error::from),
        Command::Calibrate(a) => simulator::calibrate::main(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", predictor::errtext::error_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The configuration `simulator run` (and `sweep`) flags describe: `--config` (if any) with the
/// flags applied, checked; and the text of the `--config` file.
fn configure(args: &cli::RunArgs) -> Result<(SimConfig, Option<String>)> {
    let text = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))?,
        ),
        None => None,
    };
    let mut cfg = match (&text, &args.config) {
        (Some(t), Some(path)) => SimConfig::from_toml(t)
            .with_context(|| format!("invalid configuration file {}", path.display()))?,
        _ => SimConfig::default(),
    };
    args.apply_to(&mut cfg)?;
    args.cluster.check_router_flags(cfg.cluster.router)?;
    cfg.validate_values()?;
    Ok((cfg, text))
}

fn run(args: &cli::RunArgs) -> Result<()> {
    let (mut cfg, text) = configure(args)?;
    let quiet = args.output.quiet;
    for note in large_outputs::limit(&mut cfg, args, text.as_deref()) {
        if !quiet {
            eprintln!("note: {note}");
        }
    }
    let out_dir = args.output.out.clone().unwrap_or_else(default_out_dir);
    if let Some(path) = &args.config {
        simulator::output::staging::check_not_an_output(&out_dir, "--config", path)?;
    }
    let opts = RunOptions {
        out_dir: Some(out_dir.clone()),
        quiet,
        step_by_step: args.step_by_step,
        threads: args.threads.unwrap_or(1) as usize,
        ..Default::default()
    };
    let outcome = simulate(&cfg, &opts)?;
    if let Some(note) = outcome.threads_note.as_ref().filter(|_| !quiet) {
        eprintln!("note: {note}");
    }
    if args.output.json {
        print!("{}", outcome.bench.to_json());
        // stdout holds the JSON; the run's notes (summary.json `notes`) still reach the terminal
        if !quiet {
            for note in &outcome.summary.notes {
                eprintln!("note: {note}");
            }
        }
    } else if !quiet {
        terminal::print_summary(&cfg, &outcome);
    }
    if !quiet {
        for note in large_outputs::announce(&out_dir) {
            eprintln!("note: {note}");
        }
    }
    Ok(())
}

/// `runs/<UTC date-time>`.
fn default_out_dir() -> PathBuf {
    Path::new("runs").join(simulator::stamp::utc_date_time())
}
