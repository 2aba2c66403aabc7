//! `scripts/check-report.sh` on a synthetic run's report, a comparison of two runs and a small sweep:
//! each page loads in headless Chromium with no console message or load error, has every plot
//! inline, and a screenshot is written. Skipped (with a note) where `chromium` is not installed; CI
//! installs it.

mod report_fixture;

use std::process::Command;

use servesim_e2e::repo_root;

fn chromium_installed() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn report_loads_in_headless_chromium() {
    if !chromium_installed() {
        println!("note: chromium is not installed; skipping the headless-browser check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    report_fixture::write_run(&run, 300, 2, 9);
    simulator::report::write_report(&run).unwrap();
    let shot = dir.path().join("shot.png");
    let out = Command::new(repo_root().join("scripts/check-report.sh"))
        .arg(&run)
        .arg(&shot)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-report.sh failed:\n{stderr}");
    assert!(stderr.contains("18 inline plots"), "{stderr}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // The check does fail on a page that logs a console error.
    let html = run.join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    std::fs::write(
        &html,
        page.replace("</body>", "<script>console.error('boom')</script></body>"),
    )
    .unwrap();
    let out = Command::new(repo_root().join("scripts/check-report.sh"))
        .arg(&run)
        .arg(&shot)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a page with a script must fail");
}

#[test]
fn compare_and_sweep_pages_load_in_headless_chromium() {
    if !chromium_installed() {
        println!("note: chromium is not installed; skipping the headless-browser check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    report_fixture::write_run(&a, 200, 1, 3);
    report_fixture::write_run(&b, 200, 2, 4);
    let cmp = dir.path().join("cmp");
    simulator::compare::main(&simulator::compare::CompareArgs {
        dirs: vec![a, b],
        out: Some(cmp.clone()),
        json: false,
        quiet: true,
    })
    .unwrap();
    let sweep = dir.path().join("sweep");
    let base = simulator::SimConfig::from_toml(
        "[workload]\nnum_requests = 80\n[output]\nbatches = false\ntrace = false\nreport = false\n",
    )
    .unwrap();
    let configs: Vec<(f64, simulator::SimConfig)> = [2.0, 30.0]
        .iter()
        .map(|&q| {
            let mut c = base.clone();
            c.workload.arrival = simulator::workload::ArrivalConfig::Poisson { qps: q };
            (q, c)
        })
        .collect();
    let s = simulator::sweep::run(&configs, &sweep, 2, false).unwrap();
    simulator::sweep::write_outputs(&sweep, &s).unwrap();
    for (d, page, plots) in [(&cmp, "compare", 8), (&sweep, "sweep", 5)] {
        let out = Command::new(repo_root().join("scripts/check-report.sh"))
            .arg(d)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "check-report.sh failed on {page}.html:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "{page}.html loads with no errors, {plots} inline plots"
            )),
            "{stderr}"
        );
        let png = std::fs::read(d.join(format!("{page}-screenshot.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
