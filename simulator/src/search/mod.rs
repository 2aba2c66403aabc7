//! `simulator search`: capacity planning over a space of deployments (docs/search.md).
//!
//! A space file ([`space`]) lists models, devices, TP/PP degrees, replica counts or a GPU budget,
//! schedulers with their knobs, a workload and percentile SLOs. Each configuration's capacity,
//! the highest arrival rate meeting every SLO, is found by [`capacity`] (probe, bracketing,
//! bisection) with simulations run through [`crate::run::simulate`]; configurations run in
//! parallel with rayon. [`results`] and [`output`] write one row per configuration, the best
//! configuration per objective, the Pareto frontiers ([`plot`]) and `simulator run` files;
//! [`shard`] splits the space over machines and merges the pieces back byte-identically.

pub mod capacity;
pub mod error;
pub mod exec_cache;
pub mod output;
pub mod plot;
pub mod rate;
pub mod results;
pub mod shard;
pub mod slo;
pub mod space;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

pub use error::SearchError;
use rate::RateKnob;
use results::{FullRow, Header};
use shard::{Shard, ShardFile};
use space::SpaceFile;

/// Format tag of `results.json` and `shard.json`.
pub const FORMAT: &str = "servesim-search/1";

/// `simulator search`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SearchArgs {
    /// `merge`: join shard outputs.
    #[command(subcommand)]
    pub command: Option<SearchCommand>,
    /// The space file (TOML; docs/search.md)
    #[arg(long, value_name = "FILE.toml")]
    pub space: Option<PathBuf>,
    /// Output directory
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Search only configurations whose index is I modulo N (0 ≤ I < N) and write DIR/shard.json
    #[arg(long, value_name = "I/N", allow_hyphen_values = true)]
    pub shard: Option<String>,
    /// Worker threads; the results do not depend on it [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar and no summary
    #[arg(long, short)]
    pub quiet: bool,
}

/// Subcommands of `simulator search`.
#[derive(Debug, Clone, Subcommand)]
pub enum SearchCommand {
    /// Join the outputs of `simulator search --shard I/N` runs into the whole search's outputs
    Merge(MergeArgs),
}

/// `simulator search merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The shards' output directories (or their shard.json files)
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Output directory of the merged search
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// No summary
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `simulator search` (or `simulator search merge`).
pub fn main(args: &SearchArgs) -> Result<(), SearchError> {
    if let Some(SearchCommand::Merge(m)) = &args.command {
        let (header, rows) = shard::merge(&m.dirs)?;
        output::write_outputs(&m.out, &header, &rows)?;
        if !m.quiet {
            print_summary(&rows, &header, None);
            println!("outputs: {}", m.out.display());
        }
        return Ok(());
    }
    let missing = |flag: &str| SearchError::Space {
        field: flag.into(),
        why: "is required: simulator search --space FILE.toml --out DIR".into(),
    };
    let space_path = args.space.as_ref().ok_or_else(|| missing("--space"))?;
    let out = args.out.as_ref().ok_or_else(|| missing("--out"))?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let space = SpaceFile::load(space_path)?;
    let start = Instant::now();
    let show = !args.quiet && std::io::stderr().is_terminal();
    let (header, rows) = search(&space, shard, args.threads.unwrap_or(0), show)?;
    let wall_s = start.elapsed().as_secs_f64();
    match shard {
        Some(s) => {
            let path = shard::write(
                out,
                &ShardFile {
                    header: header.clone(),
                    shard: s,
                    rows: rows.clone(),
                },
            )?;
            if !args.quiet {
                print_summary(&rows, &header, Some(wall_s));
                println!("shard {}/{}: {}", s.index, s.count, path.display());
            }
        }
        None => {
            output::write_outputs(out, &header, &rows)?;
            if !args.quiet {
                print_summary(&rows, &header, Some(wall_s));
                println!("outputs: {}", out.display());
            }
        }
    }
    Ok(())
}

/// Searches every configuration of `space` (or of one shard) and returns the rows by index.
/// Rows pass through their JSON form, as shards do, so both paths write the same bytes.
pub fn search(
    space: &SpaceFile,
    shard: Option<Shard>,
    threads: usize,
    progress: bool,
) -> Result<(Header, Vec<FullRow>), SearchError> {
    let slos = space.slos();
    let knob = RateKnob::of(&space.workload, space.seed)?;
    let candidates = space.expand();
    let header = Header {
        format: FORMAT.to_string(),
        seed: space.seed,
        search: space.search.clone(),
        slos: slos.clone(),
        num_configurations: candidates.len(),
        space_fingerprint: results::fingerprint(&candidates),
    };
    let mine: Vec<_> = candidates
        .into_iter()
        .filter(|c| shard.is_none_or(|s| s.owns(c.index)))
        .collect();
    let bar = ProgressBar::with_draw_target(Some(mine.len() as u64), ProgressDrawTarget::hidden());
    if progress {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} configurations, {elapsed} elapsed, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| SearchError::Space {
            field: "--threads".into(),
            why: e.to_string(),
        })?;
    let cache = exec_cache::ExecCache::new();
    let rows: Vec<FullRow> = pool.install(|| {
        mine.par_iter()
            .with_max_len(1)
            .map(|c| {
                let cap = capacity::search(c, knob, &space.search, &slos, &cache);
                let r = results::row(c, cap, &slos);
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let text = serde_json::to_string(&rows).expect("rows serialize");
    let rows = serde_json::from_str(&text).expect("rows deserialize");
    Ok((header, rows))
}

fn print_summary(rows: &[FullRow], header: &Header, wall_s: Option<f64>) {
    let with = rows.iter().filter(|r| r.row.status.has_capacity()).count();
    let invalid = rows
        .iter()
        .filter(|r| r.row.status == capacity::Status::Invalid)
        .count();
    let sims: usize = rows.iter().map(|r| r.row.evaluations.len()).sum();
    println!(
        "{} configurations: {with} with a capacity, {invalid} invalid, {} other; {sims} simulations{}",
        rows.len(),
        rows.len() - with - invalid,
        wall_s.map(|w| format!(" in {w:.1} s wall")).unwrap_or_default()
    );
    let short = rows
        .iter()
        .filter(|r| r.row.status.has_capacity())
        .filter(|r| {
            r.row
                .at_capacity
                .as_ref()
                .is_some_and(|a| a.arrival_span_s < SHORT_SPAN_S)
        })
        .count();
    let plain: Vec<results::Row> = rows.iter().map(|r| r.row.clone()).collect();
    for o in &results::OBJECTIVES {
        if let Some(b) = results::best(o, &plain, &header.slos) {
            println!(
                "best {} ({}): #{} {}: {} {}",
                o.name,
                if o.maximize { "highest" } else { "lowest" },
                b.index,
                b.key,
                crate::compare::fmt_value(
                    results::objective_value(o, b, &header.slos).unwrap_or(0.0)
                ),
                results::objective_unit(o, &header.slos)
            );
        }
    }
    if short > 0 {
        eprintln!(
            "note: {short} configuration(s) see an arrival span under {SHORT_SPAN_S} s at their capacity; short bursts can overstate capacity (docs/search.md, \"Choosing the workload size\")"
        );
    }
}

/// Arrival spans below this many seconds at the capacity get a note (docs/search.md).
pub const SHORT_SPAN_S: f64 = 60.0;

#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod disagg_tests;
#[cfg(test)]
mod space_tests;
