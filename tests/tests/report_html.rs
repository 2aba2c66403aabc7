//! The run report (`simulator::report::write_report`) on synthetic run directories that follow
//! docs/outputs.md: every plot is written (SVG and PNG), the HTML is self-contained and shows the
//! summary, missing files are noted, bad files are clear errors, output is byte-deterministic.

mod report_fixture;

use std::path::Path;

use simulator::report::write_report;

/// Plot stems a complete run with several replicas must produce.
const PLOTS: [&str; 18] = [
    "ttft_cdf",
    "ttft_cdf_log",
    "tpot_cdf",
    "tpot_cdf_log",
    "itl_cdf",
    "itl_cdf_log",
    "e2e_cdf",
    "e2e_cdf_log",
    "tbt_max_cdf",
    "tbt_max_cdf_log",
    "scheduling_delay_cdf",
    "batch_size_timeseries",
    "batch_tokens_timeseries",
    "batch_tokens_histogram",
    "operator_breakdown",
    "kv_usage_timeseries",
    "queue_length_timeseries",
    "throughput_timeseries",
];

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn complete_run_gives_every_plot_and_a_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 600, 3, 7);
    let files = write_report(dir.path()).unwrap();
    assert!(files.notes.is_empty(), "{:?}", files.notes);
    let svgs: Vec<String> = files.svgs.iter().map(|p| stem(p)).collect();
    let pngs: Vec<String> = files.pngs.iter().map(|p| stem(p)).collect();
    assert_eq!(svgs, PLOTS);
    assert_eq!(pngs, PLOTS);
    for p in files.pngs.iter() {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{}", p.display());
        assert!(bytes.len() > 10_000, "{} looks empty", p.display());
    }
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(!html.to_lowercase().contains("<script"));
    // The only URL is the SVG namespace (an identifier, never fetched).
    let without_ns = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://"),
        "the page refers to the network"
    );
    assert_eq!(html.matches("<svg").count(), PLOTS.len());
    for p in PLOTS {
        assert!(html.contains(&format!("<figure id=\"{p}\"")), "{p}");
    }
    // Per-replica lines with several replicas, the summary and the configuration.
    let ttft = std::fs::read_to_string(dir.path().join("plots/ttft_cdf.svg")).unwrap();
    for want in [
        "all replicas (600 requests)",
        "replica 0",
        "replica 2",
        "Fraction of requests",
    ] {
        assert!(ttft.contains(want), "ttft_cdf.svg lacks {want}");
    }
    for want in [
        "<td class=\"k\">TTFT</td>",
        "<h2 id=\"glance\">At a glance</h2>",
        "Kept up with the offered load",
        "on 3 replicas of 1 h100 GPU (TP1 × PP1), 3 GPUs in all: sarathi scheduler, round_robin router",
        "id=\"scale-log\"",
        "<figure id=\"ttft_cdf_log\" class=\"log\">",
        "<tr><td>cluster</td>",
        "goodput (requests/s)",
        "usd_per_million_output_tokens",
        "mfu (%)",
        "num_replicas = 3",
        "<h3>Deployment</h3>",
        "meta-llama/Meta-Llama-3-8B",
        "mlp_up_proj",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
}

#[test]
fn same_inputs_give_identical_bytes() {
    // Two directories with the same name (the page's title names the run directory).
    let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (ta.path().join("run"), tb.path().join("run"));
    report_fixture::write_run(&a, 300, 2, 11);
    report_fixture::write_run(&b, 300, 2, 11);
    let fa = write_report(&a).unwrap();
    let fb = write_report(&b).unwrap();
    let names: Vec<String> = std::iter::once("report.html".to_string())
        .chain(
            fa.svgs
                .iter()
                .chain(&fa.pngs)
                .map(|p| format!("plots/{}", p.file_name().unwrap().to_string_lossy())),
        )
        .collect();
    assert_eq!(fa.svgs.len(), fb.svgs.len());
    for n in names {
        let (x, y) = (
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
        );
        assert!(x == y, "{n} differs between two identical runs");
    }
    // Writing the report again over the first one changes nothing either.
    let before = std::fs::read(a.join("report.html")).unwrap();
    write_report(&a).unwrap();
    assert_eq!(before, std::fs::read(a.join("report.html")).unwrap());
}

#[test]
fn one_replica_has_no_per_replica_lines() {
    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 200, 1, 3);
    write_report(dir.path()).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("plots/e2e_cdf.svg")).unwrap();
    assert!(svg.contains("all requests (200)"));
    assert!(!svg.contains("replica 0"));
}

#[test]
fn missing_files_and_columns_are_noted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 200, 2, 5);
    std::fs::remove_file(dir.path().join("timeseries.csv")).unwrap();
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();
    // Drop the TPOT column from requests.csv.
    let req = std::fs::read_to_string(dir.path().join("requests.csv")).unwrap();
    let header: Vec<&str> = req.lines().next().unwrap().split(',').collect();
    let tpot = header.iter().position(|h| *h == "tpot_s").unwrap();
    let cut: String = req
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(tpot);
            f.join(",") + "\n"
        })
        .collect();
    std::fs::write(dir.path().join("requests.csv"), cut).unwrap();

    let files = write_report(dir.path()).unwrap();
    let notes = files.notes.join(" | ");
    assert!(notes.contains("timeseries.csv is missing"), "{notes}");
    assert!(notes.contains("config.toml is missing"), "{notes}");
    assert!(notes.contains("tpot_s"), "{notes}");
    let stems: Vec<String> = files.svgs.iter().map(|p| stem(p)).collect();
    assert!(!stems.contains(&"kv_usage_timeseries".to_string()));
    assert!(!stems.contains(&"tpot_cdf".to_string()));
    assert!(stems.contains(&"ttft_cdf".to_string()));
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("timeseries.csv is missing"));
    assert!(html.contains("No config.toml in the run directory"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let empty = tempfile::tempdir().unwrap();
    let e = write_report(empty.path()).unwrap_err().to_string();
    assert!(e.contains("not a run directory"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 50, 1, 1);
    let mut b = std::fs::read_to_string(dir.path().join("batches.csv")).unwrap();
    b.push_str("999,0,0,oops,1.0,1,1,0,1,0,1,0");
    b.push_str(&",0".repeat(15));
    b.push('\n');
    std::fs::write(dir.path().join("batches.csv"), &b).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    let line = b.lines().count();
    assert!(e.contains("batches.csv"), "{e}");
    assert!(e.contains(&format!("line {line}")), "{e}");
    assert!(e.contains("start_s") && e.contains("oops"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 50, 1, 1);
    std::fs::write(dir.path().join("summary.json"), "{not json").unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("summary.json") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn invalid_config_is_shown_as_text_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 50, 1, 2);
    std::fs::write(dir.path().join("config.toml"), "model = = <b>\n").unwrap();
    let files = write_report(dir.path()).unwrap();
    assert!(
        files.notes.iter().any(|n| n.contains("not valid TOML")),
        "{:?}",
        files.notes
    );
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(
        html.contains("model = = &lt;b&gt;"),
        "config escaped and shown"
    );
    assert!(!html.contains("<h3>Deployment</h3>"));
}

#[test]
fn header_only_files_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    report_fixture::write_run(dir.path(), 30, 1, 4);
    let req = std::fs::read_to_string(dir.path().join("requests.csv")).unwrap();
    let header = req.lines().next().unwrap().to_string() + "\n";
    std::fs::write(dir.path().join("requests.csv"), header).unwrap();
    let files = write_report(dir.path()).unwrap();
    assert!(
        files
            .notes
            .iter()
            .any(|n| n.contains("requests.csv has a header but no rows")),
        "{:?}",
        files.notes
    );
    // Only the every-gap ITL CDF is left: it comes from itl_histogram.csv.
    assert!(!files
        .svgs
        .iter()
        .any(|p| stem(p).ends_with("_cdf") && stem(p) != "itl_cdf"));
    assert!(files
        .svgs
        .iter()
        .any(|p| stem(p) == "batch_tokens_histogram"));
}
