//! Writes a synthetic run directory (see `tests/tests/report_fixture/mod.rs`) and its report, to
//! look at the report without running a simulation:
//! `cargo run --release -p servesim-e2e --example report_fixture -- DIR [REQUESTS] [REPLICAS]`;
//! `... -- DIR report` only (re)writes the report of an existing run directory.

#[path = "../tests/report_fixture/mod.rs"]
mod report_fixture;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: report_fixture DIR [REQUESTS (default 2000)] [REPLICAS (default 2)]");
        std::process::exit(2);
    };
    let parse = |i: usize, default: usize| {
        args.get(i).map_or(default, |s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("report_fixture: `{s}` is not a count");
                std::process::exit(2)
            })
        })
    };
    let dir = std::path::Path::new(dir);
    let t0 = std::time::Instant::now();
    if args.get(1).map(String::as_str) != Some("report") {
        let (n, replicas) = (parse(1, 2000), parse(2, 2));
        report_fixture::write_run(dir, n, replicas, 42);
    }
    let t1 = std::time::Instant::now();
    match simulator::report::write_report(dir) {
        Ok(files) => println!(
            "fixture {:.2} s, report {:.2} s: {} ({} plots)",
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64(),
            files.html.display(),
            files.svgs.len()
        ),
        Err(e) => {
            eprintln!("report_fixture: {e}");
            std::process::exit(1);
        }
    }
}
