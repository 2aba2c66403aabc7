//! Tests of the capacity search on small real simulations.

use super::capacity::{violations, Capacity, Status};
use super::exec_cache::ExecCache;
use super::rate::RateKnob;
use super::space::{default_slos, Candidate, SearchKnobs, SloLimit, SpaceFile};

fn search(c: &Candidate, knob: RateKnob, knobs: &SearchKnobs, slos: &[SloLimit]) -> Capacity {
    super::capacity::search(c, knob, knobs, slos, &ExecCache::new())
}

fn space(workload: &str) -> SpaceFile {
    let text = format!(
        r#"
[space]
models = ["meta-llama/Llama-2-7b-hf"]
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "sarathi"
{workload}
"#
    );
    let f: SpaceFile = toml::from_str(&text).unwrap();
    f.check().unwrap();
    f
}

#[test]
fn capacity_passes_and_the_failing_rate_is_within_the_tolerance() {
    let f = space("[workload]\nnum_requests = 200\n");
    let c = &f.expand()[0];
    let knob = RateKnob::of(&f.workload, f.seed).unwrap();
    let knobs = SearchKnobs::default();
    let slos = default_slos();
    let r = search(c, knob, &knobs, &slos);
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    let (cap, fail) = (r.capacity_qps.unwrap(), r.fail_qps.unwrap());
    assert!(
        fail > cap && fail - cap <= knobs.tolerance * cap,
        "{cap} {fail}"
    );
    let (cfg, summary) = r.at_capacity.as_ref().unwrap();
    assert!(violations(summary, cfg.time_limit_s, &slos).is_empty());
    // The evaluations record the capacity as a pass and the failing rate as a miss.
    let ev = |q: f64| r.evaluations.iter().find(|e| e.rate_qps == q).unwrap();
    assert!(ev(cap).pass && !ev(fail).pass && !ev(fail).violations.is_empty());
    assert!(r.evaluations.len() as u32 <= knobs.max_evaluations);
    // Deterministic.
    let again = search(c, knob, &knobs, &slos);
    assert_eq!(again.evaluations, r.evaluations);
}

#[test]
fn tighter_slos_give_a_lower_capacity_and_impossible_ones_none() {
    let f = space("[workload]\nnum_requests = 150\n");
    let c = &f.expand()[0];
    let knob = RateKnob::of(&f.workload, f.seed).unwrap();
    let knobs = SearchKnobs::default();
    let mut slos = default_slos();
    let loose = search(c, knob, &knobs, &slos).capacity_qps.unwrap();
    slos[0].max_s = 0.5;
    let tight = search(c, knob, &knobs, &slos).capacity_qps.unwrap();
    assert!(tight < loose, "{tight} vs {loose}");
    // No request can get its first token in a microsecond.
    slos[0].max_s = 1e-6;
    let none = search(c, knob, &knobs, &slos);
    assert_eq!(none.status, Status::NoRateMeetsSlos);
    assert!(none.capacity_qps.is_none() && none.reason.unwrap().contains("ttft_p90"));
}

#[test]
fn trace_replays_are_scaled_through_their_time_factor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("trace.csv");
    let mut text = String::from("arrived_at,num_prefill_tokens,num_decode_tokens\n");
    for i in 0..200 {
        text.push_str(&format!(
            "{},{},{}\n",
            i as f64 * 0.5,
            300 + (i * 37) % 500,
            50 + i % 90
        ));
    }
    std::fs::write(&p, text).unwrap();
    let f = space(&format!(
        "[workload]\n[workload.trace]\nfile = {:?}\n",
        p.to_str().unwrap()
    ));
    let c = &f.expand()[0];
    let knob = RateKnob::of(&f.workload, f.seed).unwrap();
    let r = search(c, knob, &SearchKnobs::default(), &default_slos());
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    let cap = r.capacity_qps.unwrap();
    let (cfg, _) = r.at_capacity.unwrap();
    // The trace's own rate is 2 req/s; the factor compresses it to the capacity.
    let factor = cfg.workload.trace.unwrap().time_scale_factor;
    assert!(
        (factor - 2.0 / cap).abs() < 1e-9 * factor.max(1.0),
        "{factor} {cap}"
    );
}

#[test]
fn a_workload_too_small_to_load_the_deployment_is_unbounded_and_never_best() {
    let f = space("[workload]\nnum_requests = 4\n");
    let c = &f.expand()[0];
    let knob = RateKnob::of(&f.workload, f.seed).unwrap();
    let slos = default_slos();
    let r = search(c, knob, &SearchKnobs::default(), &slos);
    assert_eq!(r.status, Status::Unbounded);
    assert_eq!(r.evaluations.len(), 1, "the probe alone decides");
    assert!(r.reason.as_ref().unwrap().contains("num_requests"));
    let row = super::results::row(c, r, &slos).row;
    assert!(row.capacity_qps.is_some());
    assert!(super::results::best(&super::results::OBJECTIVES[0], &[row], &slos).is_none());
}

#[test]
fn a_probe_that_passes_on_a_cut_of_the_workload_does_not_end_the_search() {
    // 2,000 short requests at once meet these loose SLOs on one H100, but the workload
    // (arrivals for 20 s) grows with the rate: the search doubles on until a rate fails.
    let f = space(
        "[workload]\nduration_s = 20\n[workload.lengths]\nkind = \"fixed\"\nprefill_tokens = 32\ndecode_tokens = 4\n[workload.arrival]\nkind = \"poisson\"\nqps = 1.0\n",
    );
    let c = &f.expand()[0];
    let knob = RateKnob::of(&f.workload, f.seed).unwrap();
    let slos = [SloLimit {
        metric: super::space::SloMetric::Ttft,
        percentile: 90.0,
        max_s: 5.0,
    }];
    let r = search(c, knob, &SearchKnobs::default(), &slos);
    assert!(r.evaluations[0].pass, "the probe meets the SLO");
    assert!(r.status.has_capacity(), "{:?}: {:?}", r.status, r.reason);
    let (cap, fail) = (r.capacity_qps.unwrap(), r.fail_qps.unwrap());
    assert!(fail > cap);
    // The capacity exceeds what 2,000 requests could show: the passing run holds more.
    let (cfg, summary) = r.at_capacity.as_ref().unwrap();
    assert!(
        summary.requests.completed > 2000,
        "{}",
        summary.requests.completed
    );
    assert_eq!(cfg.workload.duration_s, Some(20.0));
}
