//! The output-size policy of `simulator run`. `batches.csv` and `trace.json` grow with the number
//! of batches (about 6 KB and 13 KB per request of the default workload), so above
//! [`LARGE_RUN_REQUESTS`] requests they are written only when asked for (`--write-batches`,
//! `--write-trace`, or the key in a `--config` file); after a run, files above
//! [`ANNOUNCE_BYTES`] are named with their size.

use std::path::Path;

use simulator::config::SimConfig;
use simulator::workload::ArrivalConfig;

use crate::cli::RunArgs;

/// Runs expected to serve more requests than this skip `batches.csv` and `trace.json` unless asked.
pub const LARGE_RUN_REQUESTS: u64 = 20_000;
/// Output files at least this large are announced after the run.
pub const ANNOUNCE_BYTES: u64 = 100 * 1024 * 1024;

/// Requests the workload will generate, when the configuration says: `num_requests`, or the
/// rate times `duration_s` of a synthetic workload.
fn expected_requests(cfg: &SimConfig) -> Option<u64> {
    let w = &cfg.workload;
    if let Some(n) = w.num_requests {
        return Some(n);
    }
    let d = w.duration_s?;
    match (&w.arrival, &w.trace) {
        (ArrivalConfig::Poisson { qps } | ArrivalConfig::Gamma { qps, .. }, None) => {
            Some((qps * d).ceil() as u64)
        }
        _ => None,
    }
}

/// True when the `[output]` table of the configuration text sets `key`.
fn config_sets(config_text: Option<&str>, key: &str) -> bool {
    config_text
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("output").and_then(|o| o.get(key)).cloned())
        .is_some()
}

/// Turns `batches.csv` and `trace.json` off for a large run unless the flags or the configuration
/// file ask for them; returns a note for each file turned off.
pub fn limit(cfg: &mut SimConfig, args: &RunArgs, config_text: Option<&str>) -> Vec<String> {
    let Some(n) = expected_requests(cfg).filter(|&n| n > LARGE_RUN_REQUESTS) else {
        return Vec::new();
    };
    let o = &args.output;
    let mut notes = Vec::new();
    let files = [
        (
            "batches.csv",
            "batches",
            o.no_batches || o.write_batches,
            "--write-batches",
            6,
        ),
        (
            "trace.json",
            "trace",
            o.no_trace || o.write_trace,
            "--write-trace",
            13,
        ),
    ];
    for (file, key, flagged, flag, kb_per_request) in files {
        if flagged || config_sets(config_text, key) {
            continue;
        }
        let on = match key {
            "batches" => &mut cfg.output.batches,
            _ => &mut cfg.output.trace,
        };
        if *on {
            *on = false;
            notes.push(format!(
                "{file} is not written for runs above {LARGE_RUN_REQUESTS} requests (this one has {n}; about {} MB for the default workload); {flag} writes it",
                n * kb_per_request / 1000
            ));
        }
    }
    notes
}

/// Notes naming the files of `dir` at least [`ANNOUNCE_BYTES`] large, in name order.
pub fn announce(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut big: Vec<(String, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let len = e.metadata().ok()?.len();
            (len >= ANNOUNCE_BYTES).then(|| (e.file_name().to_string_lossy().into_owned(), len))
        })
        .collect();
    big.sort();
    big.into_iter()
        .map(|(name, len)| {
            let skip = match name.as_str() {
                "trace.json" => " (--no-trace skips it)",
                "batches.csv" => " (--no-batches skips it)",
                _ => "",
            };
            format!("{name} is {} MB{skip}", len / 1_000_000)
        })
        .collect()
}
