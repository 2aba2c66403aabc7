//! Tests of trace reading through the public interface: bad files, Vidur's reference traces, and
//! our Mooncake and session/prefix fixtures (`tests/fixtures/workload/`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::tests::{all, assert_ordered, error_of, parse};
use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/workload")
        .join(name)
}

/// A reference trace of Vidur's, committed gzipped under `data/vidur/processed_traces/`.
fn reference_trace(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/vidur/processed_traces")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// `path` decompressed into `dir` (same name without `.gz`).
fn gunzip_into(path: &Path, dir: &Path) -> PathBuf {
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut trace_csv::open_text(path).unwrap(), &mut text).unwrap();
    let out = dir.join(path.file_stem().unwrap());
    std::fs::write(&out, text).unwrap();
    out
}

/// `path` gzip-compressed into `dir` (same name plus `.gz`).
fn gzip_into(path: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}.gz",
        path.file_name().unwrap().to_string_lossy()
    ));
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&out).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&std::fs::read(path).unwrap()).unwrap();
    gz.finish().unwrap();
    out
}

fn temp_file(contents: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f
}

#[test]
fn bad_trace_files_are_reported_with_file_and_line() {
    let missing = parse("[trace]\nfile = \"/nonexistent/trace.csv\"\n");
    let message = error_of(&missing);
    assert!(
        message.contains("/nonexistent/trace.csv") && message.contains("cannot read"),
        "{message}"
    );

    let header_only = temp_file("arrived_at,num_prefill_tokens,num_decode_tokens\n", ".csv");
    let mut cfg = WorkloadConfig {
        num_requests: None,
        trace: Some(TraceConfig::new(header_only.path())),
        ..WorkloadConfig::default()
    };
    assert!(
        error_of(&cfg).contains("no data rows"),
        "{}",
        error_of(&cfg)
    );

    let empty = temp_file("", ".csv");
    cfg.trace = Some(TraceConfig::new(empty.path()));
    assert!(cfg.validate().is_err());

    let no_decode = temp_file("arrived_at,num_prefill_tokens\n0,10\n", ".csv");
    cfg.trace = Some(TraceConfig::new(no_decode.path()));
    let message = error_of(&cfg);
    assert!(
        message.contains("no column `num_decode_tokens`")
            && message.contains("arrived_at, num_prefill_tokens"),
        "{message}"
    );

    let bad_number = temp_file(
        "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n1,abc,5\n",
        ".csv",
    );
    cfg.trace = Some(TraceConfig::new(bad_number.path()));
    cfg.validate().unwrap(); // the header and first row are fine …
    let message = generate(&cfg, 1).err().expect("bad row").to_string();
    assert!(
        message.contains("line 3") && message.contains("num_prefill_tokens"),
        "{message}"
    );

    let inconsistent_prefix = temp_file(
        "arrived_at,num_prefill_tokens,num_decode_tokens,prefix_id,prefix_tokens\n0,100,5,1,50\n1,100,5,1,60\n",
        ".csv",
    );
    cfg.trace = Some(TraceConfig::new(inconsistent_prefix.path()));
    let message = generate(&cfg, 1)
        .err()
        .expect("inconsistent prefix")
        .to_string();
    assert!(
        message.contains("line 3") && message.contains("prefix_id 1"),
        "{message}"
    );

    let lengths_without_decode = temp_file("num_prefill_tokens\n5\n", ".csv");
    let lengths = WorkloadConfig {
        lengths: LengthConfig::Trace {
            trace_file: lengths_without_decode.path().to_path_buf(),
            prefill_scale_factor: 1.0,
            decode_scale_factor: 1.0,
        },
        ..WorkloadConfig::default()
    };
    assert!(error_of(&lengths).contains("num_decode_tokens"));

    let arrivals = WorkloadConfig {
        arrival: ArrivalConfig::Trace {
            trace_file: lengths_without_decode.path().to_path_buf(),
            column: "arrived_at".into(),
            time_scale_factor: 1.0,
        },
        ..WorkloadConfig::default()
    };
    assert!(error_of(&arrivals).contains("no column `arrived_at`"));

    let bad_json = temp_file("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n{\"timestamp\": 5}\n", ".jsonl");
    cfg.trace = Some(TraceConfig::new(bad_json.path()));
    cfg.validate().unwrap();
    let message = generate(&cfg, 1).err().expect("bad json").to_string();
    assert!(
        message.contains("line 2") && message.contains("input_length"),
        "{message}"
    );

    let too_many_blocks = temp_file("{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1, 2, 3]}\n", ".jsonl");
    cfg.trace = Some(TraceConfig::new(too_many_blocks.path()));
    let message = generate(&cfg, 1)
        .err()
        .expect("too many blocks")
        .to_string();
    assert!(
        message.contains("line 1") && message.contains("3 hash_ids"),
        "{message}"
    );

    let conflicting_blocks = temp_file(
        "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1, 2]}\n\
         {\"timestamp\": 1, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, 2]}\n",
        ".jsonl",
    );
    cfg.trace = Some(TraceConfig::new(conflicting_blocks.path()));
    let message = generate(&cfg, 1)
        .err()
        .expect("conflicting blocks")
        .to_string();
    assert!(
        message.contains("line 2") && message.contains("hash id 2"),
        "{message}"
    );
}

#[test]
fn splitwise_trace_replays_every_row_in_order_with_both_lengths_clipped() {
    let path = reference_trace("splitwise_conv.csv.gz");
    let cfg = WorkloadConfig {
        num_requests: None,
        trace: Some(TraceConfig::new(&path)),
        ..WorkloadConfig::default()
    };
    let requests = all(&cfg, 0);
    assert_eq!(requests.len(), 19_366);
    assert_ordered(&requests);
    assert!(requests
        .iter()
        .all(|r| r.prefill_tokens + r.decode_tokens <= 4096));
    // The second row: 4.314579 s, 396 + 109 tokens.
    assert_eq!(
        (
            requests[1].arrival_ns,
            requests[1].prefill_tokens,
            requests[1].decode_tokens
        ),
        (4_314_579_000, 396, 109)
    );
    // Over-long rows lose tokens from both prompt and output (Vidur trimmed only the prompt).
    let mut raw = csv::Reader::from_reader(trace_csv::open_text(&path).unwrap());
    let rows: Vec<(f64, u32, u32)> = raw.deserialize().map(|r| r.unwrap()).collect();
    let i = rows
        .iter()
        .position(|(_, p, d)| p + d > 4096 && *d > 50)
        .expect("an over-long row with a real output");
    let (t, p, d) = rows[i];
    let (clipped_p, clipped_d) = trace_csv::clip_to_max(p, d, 4096);
    assert!(
        clipped_p < p && clipped_d < d,
        "({p}, {d}) -> ({clipped_p}, {clipped_d})"
    );
    let r = &requests[i];
    assert_eq!(
        (r.arrival_ns, r.prefill_tokens, r.decode_tokens),
        (arrival::seconds_to_ns(t), clipped_p, clipped_d)
    );
    // Halving the time scale halves every arrival time.
    let mut fast = cfg.clone();
    fast.trace.as_mut().unwrap().time_scale_factor = 0.5;
    let fast_requests = all(&fast, 0);
    assert_eq!(fast_requests[1].arrival_ns, 2_157_289_500);
    // num_requests and duration_s bound a replay.
    let mut first_100 = cfg.clone();
    first_100.num_requests = Some(100);
    assert_eq!(all(&first_100, 0), requests[..100]);
    let mut first_minute = cfg;
    first_minute.duration_s = Some(60.0);
    let n = all(&first_minute, 0).len();
    assert_eq!(
        n,
        requests
            .iter()
            .take_while(|r| r.arrival_ns < 60_000_000_000)
            .count()
    );
}

#[test]
fn splitwise_code_drives_arrivals_and_arxiv_drives_lengths_past_its_rows() {
    let code = reference_trace("splitwise_code.csv.gz");
    let arxiv = reference_trace("arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv.gz");
    let cfg = WorkloadConfig {
        num_requests: Some(30_000), // more than the 28,257 rows of arxiv, and than the 8,819 arrivals
        arrival: ArrivalConfig::Trace {
            trace_file: code,
            column: "arrived_at".into(),
            time_scale_factor: 1.0,
        },
        lengths: LengthConfig::Trace {
            trace_file: arxiv.clone(),
            prefill_scale_factor: 1.0,
            decode_scale_factor: 1.0,
        },
        ..WorkloadConfig::default()
    };
    let requests = all(&cfg, 42);
    // The arrival trace runs out first (Vidur's generator also stops there).
    assert_eq!(requests.len(), 8_819);
    assert_eq!(requests[0].arrival_ns, 0);
    assert_ordered(&requests);
    // With static arrivals the length trace is cycled, reshuffled, past its 28,257 rows.
    let cycled = WorkloadConfig {
        num_requests: Some(30_000),
        arrival: ArrivalConfig::Static,
        ..cfg
    };
    let requests = all(&cycled, 42);
    assert_eq!(requests.len(), 30_000);
    assert!(requests
        .iter()
        .all(|r| r.prefill_tokens + r.decode_tokens <= 4096));
    let mean_p = requests
        .iter()
        .map(|r| f64::from(r.prefill_tokens))
        .sum::<f64>()
        / 30_000.0;
    assert!((mean_p - 2588.0).abs() < 40.0, "mean prompt {mean_p}");
}

#[test]
fn gzipped_and_plain_traces_give_the_same_requests() {
    let dir = tempfile::tempdir().unwrap();
    // CSV replay: the committed .csv.gz against its decompressed copy.
    let gz = reference_trace("splitwise_code.csv.gz");
    let plain = gunzip_into(&gz, dir.path());
    assert!(std::fs::read(&plain).unwrap().starts_with(b"arrived_at,"));
    let replay = |file: &Path| {
        let cfg = WorkloadConfig {
            num_requests: None,
            trace: Some(TraceConfig::new(file)),
            ..WorkloadConfig::default()
        };
        all(&cfg, 0)
    };
    let from_gz = replay(&gz);
    assert_eq!(from_gz.len(), 8_819);
    assert_eq!(from_gz, replay(&plain));
    // Arrival and length traces read .gz too.
    let columns = |arrivals: &Path, lengths: &Path| {
        let cfg = WorkloadConfig {
            num_requests: Some(500),
            arrival: ArrivalConfig::Trace {
                trace_file: arrivals.to_path_buf(),
                column: "arrived_at".into(),
                time_scale_factor: 1.0,
            },
            lengths: LengthConfig::Trace {
                trace_file: lengths.to_path_buf(),
                prefill_scale_factor: 1.0,
                decode_scale_factor: 1.0,
            },
            ..WorkloadConfig::default()
        };
        all(&cfg, 3)
    };
    assert_eq!(columns(&gz, &gz), columns(&plain, &plain));
    // Mooncake JSON lines: `.jsonl.gz` is still recognised as Mooncake.
    let jsonl = fixture("mooncake_small.jsonl");
    let jsonl_gz = gzip_into(&jsonl, dir.path());
    assert_eq!(
        TraceConfig::new(&jsonl_gz).resolved_format(),
        TraceFormat::Mooncake
    );
    assert_eq!(replay(&jsonl_gz), replay(&jsonl));
    // A file named .gz that is not gzip is an error naming the file, not a panic.
    let fake = dir.path().join("not_really.csv.gz");
    std::fs::copy(&plain, &fake).unwrap();
    let cfg = WorkloadConfig {
        num_requests: None,
        trace: Some(TraceConfig::new(&fake)),
        ..WorkloadConfig::default()
    };
    let message = error_of(&cfg);
    assert!(message.contains("not_really.csv.gz"), "{message}");
}

#[test]
fn mooncake_fixture_becomes_block_segments() {
    let cfg = WorkloadConfig {
        num_requests: None,
        trace: Some(TraceConfig::new(fixture("mooncake_small.jsonl"))),
        ..WorkloadConfig::default()
    };
    let requests = all(&cfg, 0);
    let seg = |id, tokens| Segment { id, tokens };
    let summary: Vec<(u64, u32, u32, Vec<Segment>)> = requests
        .iter()
        .map(|r| {
            (
                r.arrival_ns,
                r.prefill_tokens,
                r.decode_tokens,
                r.segments.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 1200, 10, vec![seg(0, 512), seg(1, 512), seg(2, 176)]),
            (1_000_000_000, 1024, 5, vec![seg(0, 512), seg(1, 512)]),
            (2_500_000_000, 700, 20, vec![seg(0, 512), seg(3, 188)]),
            (3_000_000_000, 100, 1, vec![seg(4, 100)]),
            // 5000 + 100 clipped to 4015 + 80: the blocks past token 4015 are dropped.
            (
                3_000_000_000,
                4015,
                80,
                [0, 1, 5, 6, 7, 8, 9]
                    .iter()
                    .map(|&id| seg(id, 512))
                    .collect()
            ),
        ]
    );
    let mut wide = cfg.clone();
    wide.max_tokens = 8192;
    wide.trace.as_mut().unwrap().time_scale_factor = 2.0;
    let last = all(&wide, 0).pop().unwrap();
    assert_eq!(last.arrival_ns, 6_000_000_000);
    assert_eq!(last.segments.len(), 10);
    assert_eq!(last.segments[9], seg(12, 5000 - 9 * 512));
}

#[test]
fn csv_sessions_and_prefixes_become_segments() {
    let cfg = WorkloadConfig {
        num_requests: None,
        trace: Some(TraceConfig::new(fixture("sessions_prefix.csv"))),
        ..WorkloadConfig::default()
    };
    let requests = all(&cfg, 0);
    let seg = |id, tokens| Segment { id, tokens };
    let got: Vec<(Vec<Segment>, Option<u64>, Option<u64>)> = requests
        .iter()
        .map(|r| (r.segments.clone(), r.output_segment, r.session_id))
        .collect();
    assert_eq!(
        got,
        vec![
            (vec![seg(7, 500), seg(8, 100)], Some(9), Some(1)),
            (vec![seg(7, 500)], None, None),
            (
                vec![seg(7, 500), seg(8, 100), seg(9, 50), seg(10, 150)],
                Some(11),
                Some(1)
            ),
            (vec![seg(12, 100)], Some(13), Some(2)),
            (
                vec![seg(12, 100), seg(13, 10), seg(14, 90)],
                Some(15),
                Some(2)
            ),
            // Shorter than the conversation so far: the session starts over.
            (vec![seg(16, 50)], Some(17), Some(1)),
            // A 500-token prefix does not fit a 400-token prompt: the prompt is unique.
            (vec![], None, None),
        ]
    );
}
