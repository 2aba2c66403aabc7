//! `simulator sweep`: every flag of `simulator run`, with `--qps` taking a range `A:B:N` or a list
//! `R1,R2,...` instead of one rate, plus `--threads`. The run's `--qps` argument is redefined in
//! place (same name, new parser), so the run flags are not listed twice.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use clap::{value_parser, ArgMatches, Args, Command, FromArgMatches};
use simulator::sweep::{self, RateSpec};

use crate::cli::RunArgs;

/// `simulator sweep`.
#[derive(Debug, Clone)]
pub struct SweepArgs {
    /// The offered rates.
    pub rates: RateSpec,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Every other flag, as `simulator run` takes them.
    pub run: RunArgs,
}

impl Args for SweepArgs {
    fn augment_args(cmd: Command) -> Command {
        RunArgs::augment_args(cmd)
            .mut_arg("qps", |a| {
                a.value_parser(RateSpec::parse)
                    .value_name("A:B:N|R1,R2,...")
                    .required(true)
                    .help("Offered rates, req/s: N rates from A to B evenly spaced (1:30:30), or a list (1,2,4,8)")
            })
            // the run's --threads (threads within one run) becomes the sweep's: runs in parallel
            .mut_arg("threads", |a| {
                a.value_parser(value_parser!(usize))
                    .help("Worker threads, one run each; the results do not depend on it [default: one per core]")
            })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SweepArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        // Taken out before the run flags are read, which expect `qps` to be one number.
        let rates = m.remove_one::<RateSpec>("qps").ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--qps A:B:N (or a list of rates) is required\n",
            )
        })?;
        let threads = m.remove_one::<usize>("threads").unwrap_or(0);
        Ok(SweepArgs {
            rates,
            threads,
            run: RunArgs::from_arg_matches_mut(m)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Runs the sweep and prints its table (or, with `--json`, `sweep.json`).
pub fn main(args: &SweepArgs) -> Result<()> {
    let o = &args.run.output;
    let mut configs = Vec::with_capacity(args.rates.0.len());
    for &rate in &args.rates.0 {
        let mut a = args.run.clone();
        a.workload.qps = Some(rate);
        let (mut cfg, _) =
            crate::configure(&a).with_context(|| format!("at --qps {}", sweep::rate_text(rate)))?;
        cfg.output.batches = o.write_batches;
        cfg.output.trace = o.write_trace;
        cfg.output.report = false;
        if o.metric_percentiles.is_none() {
            cfg.output.metric_percentiles = sweep::DEFAULT_PERCENTILES.to_vec();
        }
        configs.push((rate, cfg));
    }
    let out = o.out.clone().unwrap_or_else(|| {
        Path::new("runs").join(format!("sweep_{}", simulator::stamp::utc_date_time()))
    });
    if let Some(path) = &args.run.config {
        simulator::output::staging::check_not_an_output_of(
            &out,
            simulator::output::staging::OutputKind::Sweep,
            "--config",
            path,
        )?;
    }
    let show = !o.quiet && std::io::stderr().is_terminal();
    let result = sweep::run_and_write(&configs, &out, args.threads, show)?;
    if o.json {
        print!("{}", sweep::json_text(&result));
    } else if !o.quiet {
        print!("{}", sweep::table_text(&result));
        println!(
            "outputs: {} (open {})",
            out.display(),
            out.join("sweep.html").display()
        );
    }
    Ok(())
}
