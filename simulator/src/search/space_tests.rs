//! Tests of the space file: parsing errors, expansion order and invalid configurations.

use super::space::SpaceFile;

const MINIMAL: &str = r#"
[space]
models = ["meta-llama/Llama-2-7b-hf"]
[[space.devices]]
device = "a100"
[[space.schedulers]]
name = "vllm"
"#;

/// Loads `text` as a space file (from a temporary file, as `simulator search` reads it).
pub(super) fn parse(text: &str) -> Result<SpaceFile, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("space.toml");
    std::fs::write(&p, text).unwrap();
    SpaceFile::load(&p).map_err(|e| e.to_string())
}

#[test]
fn minimal_space_has_vidur_default_slos() {
    let f = parse(MINIMAL).unwrap();
    let s = f.slos();
    assert_eq!(s.len(), 3);
    assert_eq!(
        s.iter().map(|s| s.label()).collect::<Vec<_>>(),
        ["ttft_p90", "tbt_p99", "scheduling_delay_p99"]
    );
    assert_eq!(f.expand().len(), 1);
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let e = parse(&format!("{MINIMAL}\n[search]\ntolerence = 0.1\n")).unwrap_err();
    assert!(e.contains("tolerence") && e.contains("line"), "{e}");
    assert!(e.contains("docs/search.md"), "{e}");
    let e = parse(&MINIMAL.replace("[space]", "[space]\nmodel = \"x\"")).unwrap_err();
    assert!(e.contains("unknown field `model`"), "{e}");
}

#[test]
fn impossible_slos_are_rejected() {
    for (slo, want) in [
        (
            "metric = \"ttft\"\npercentile = 90\nmax_s = 0",
            "impossible",
        ),
        (
            "metric = \"ttft\"\npercentile = 90\nmax_s = -1",
            "impossible",
        ),
        ("metric = \"tbt\"\npercentile = 0\nmax_s = 1", "(0, 100]"),
        ("metric = \"tbt\"\npercentile = 101\nmax_s = 1", "(0, 100]"),
        (
            "metric = \"tbt\"\npercentile = 75\nmax_s = 1",
            "one of 50, 90, 95, 99",
        ),
        (
            "metric = \"latency\"\npercentile = 90\nmax_s = 1",
            "unknown variant",
        ),
    ] {
        let e = parse(&format!("{MINIMAL}\n[[slo]]\n{slo}\n")).unwrap_err();
        assert!(e.contains(want), "{slo}: {e}");
        assert!(e.contains("slo[0]") || e.contains("line 10"), "{slo}: {e}");
    }
    let e = parse(&format!("slo = []\n{MINIMAL}")).unwrap_err();
    assert!(e.contains("slo: is empty"), "{e}");
}

#[test]
fn empty_spaces_are_rejected() {
    for (from, to, field) in [
        (
            "models = [\"meta-llama/Llama-2-7b-hf\"]",
            "models = []",
            "space.models",
        ),
        ("[space]", "[space]\ntp = []", "space.tp"),
        ("[space]", "[space]\nreplicas = []", "space.replicas"),
    ] {
        let e = parse(&MINIMAL.replace(from, to)).unwrap_err();
        assert!(
            e.contains(field) && e.contains("no configuration"),
            "{field}: {e}"
        );
    }
    let e =
        parse("[space]\nmodels = [\"meta-llama/Llama-2-7b-hf\"]\ndevices = []\nschedulers = []\n")
            .unwrap_err();
    assert!(e.contains("space.devices"), "{e}");
}

#[test]
fn unknown_names_and_unscalable_workloads_are_errors() {
    let e = parse(&MINIMAL.replace("\"a100\"", "\"a1000\"")).unwrap_err();
    assert!(e.contains("space.devices[0].device"), "{e}");
    let e = parse(&MINIMAL.replace("\"vllm\"", "\"vllm2\"")).unwrap_err();
    assert!(
        e.contains("space.schedulers[0].name") && e.contains("sarathi"),
        "{e}"
    );
    let e = parse(&format!(
        "{MINIMAL}\n[workload.arrival]\nkind = \"static\"\n"
    ))
    .unwrap_err();
    assert!(e.contains("no rate to scale"), "{e}");
}

#[test]
fn invalid_configurations_are_listed_with_their_reason() {
    let f = parse(
        r#"
[space]
models = ["meta-llama/Llama-2-70b-hf"]
tp = [1, 3, 16]
pp = [1, 100]
[[space.devices]]
device = "a100"
[[space.schedulers]]
name = "vllm"
"#,
    )
    .unwrap();
    let c = f.expand();
    assert_eq!(c.len(), 6);
    let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys[0], "Llama-2-70b-hf_a100_tp1_pp1_r1_vllm");
    assert_eq!(keys[5], "Llama-2-70b-hf_a100_tp16_pp100_r1_vllm");
    let why: Vec<String> = c.iter().map(|c| c.invalid.clone().unwrap()).collect();
    assert!(why[0].contains("does not fit"), "{}", why[0]);
    assert!(
        why[2].contains("TP 3") || why[2].contains("tp 3") || why[2].contains('3'),
        "{}",
        why[2]
    );
    assert!(why[2].contains("heads"), "{}", why[2]);
    assert!(why[1].contains("layers"), "{}", why[1]);
    assert!(why[4].to_lowercase().contains("node"), "{}", why[4]);
}

#[test]
fn gpu_budget_sets_replicas_and_prices_default_to_the_catalog() {
    let f = parse(
        r#"
[space]
models = ["meta-llama/Llama-2-7b-hf"]
tp = [1, 2, 8]
gpu_budget = 4
[[space.devices]]
device = "h100"
[[space.devices]]
device = "a100"
price_per_gpu_hour_usd = 3.72
[[space.schedulers]]
name = "sarathi"
chunk_size = [256, 1024]
"#,
    )
    .unwrap();
    let c = f.expand();
    assert_eq!(c.len(), 12);
    assert_eq!(c[0].config.cluster.num_replicas, 4);
    assert_eq!(c[1].key, "Llama-2-7b-hf_h100_tp1_pp1_r4_sarathi_cs1024");
    assert_eq!(c[1].config.scheduler.chunk_size, 1024);
    assert_eq!(c[2].config.cluster.num_replicas, 2);
    assert!(c[4].invalid.as_ref().unwrap().contains("budget"));
    let h100 = predictor::Catalog::builtin().device("h100").unwrap();
    assert_eq!(c[0].price_per_gpu_hour_usd, h100.price_per_gpu_hour_usd);
    assert_eq!(c[6].price_per_gpu_hour_usd, 3.72);
}

#[test]
fn the_scheduler_section_sets_every_other_knob() {
    let f = parse(&format!(
        "{MINIMAL}\n[scheduler]\nblock_size = 32\nbatch_size_cap = 64\nwatermark_blocks_fraction = 0.05\n"
    ))
    .unwrap();
    let c = &f.expand()[0].config.scheduler;
    assert_eq!(
        (c.name.as_str(), c.block_size, c.batch_size_cap),
        ("vllm", 32, 64)
    );
    assert_eq!(c.watermark_blocks_fraction, 0.05);
    let e = parse(&format!("{MINIMAL}\n[scheduler]\nblocksize = 32\n")).unwrap_err();
    assert!(e.contains("blocksize"), "{e}");
}

#[test]
fn ep_and_precision_are_axes_and_reach_the_run_config() {
    let text = r#"
[space]
models = ["mistralai/Mixtral-8x7B-v0.1", "meta-llama/Llama-2-7b-hf"]
tp = [2, 4]
ep = [1, 2]
quantization = ["auto", "fp8"]
kv_cache_dtype = ["auto", "fp8"]
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "vllm_v1"
"#;
    let f = parse(text).unwrap();
    let c = f.expand();
    assert_eq!(c.len(), 2 * 2 * 2 * 2 * 2);
    // Nesting: model, device, tp, pp, ep, quantization, kv_cache_dtype, ...
    assert_eq!(c[0].key, "Mixtral-8x7B-v0.1_h100_tp2_pp1_r1_vllm_v1");
    assert_eq!(c[1].key, "Mixtral-8x7B-v0.1_h100_tp2_pp1_kvfp8_r1_vllm_v1");
    assert_eq!(c[2].key, "Mixtral-8x7B-v0.1_h100_tp2_pp1_qfp8_r1_vllm_v1");
    assert_eq!(
        c[7].key,
        "Mixtral-8x7B-v0.1_h100_tp2_pp1_ep2_qfp8_kvfp8_r1_vllm_v1"
    );
    let mut keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), c.len(), "keys are distinct");
    // Mixtral takes every EP and precision; its EP-2 FP8 run config says so.
    assert!(
        c[..16].iter().all(|c| c.invalid.is_none()),
        "{:?}",
        c[..16].iter().map(|c| &c.invalid).collect::<Vec<_>>()
    );
    let toml = c[7].config.to_toml();
    for want in [
        "ep = 2",
        "quantization = \"fp8\"",
        "kv_cache_dtype = \"fp8\"",
    ] {
        assert!(toml.contains(want), "{want} missing from\n{toml}");
    }
    // The dense model: EP 2 is invalid (with the reason), EP 1 is fine.
    for cand in &c[16..] {
        let ep = cand.config.replica.ep;
        match &cand.invalid {
            Some(why) => assert!(ep == 2 && why.contains("mixture-of-experts"), "{why}"),
            None => assert_eq!(ep, 1, "{}", cand.key),
        }
    }
    assert_eq!(c[16..].iter().filter(|c| c.invalid.is_some()).count(), 8);
    // EP must divide TP: EP 4 at TP 2 is invalid.
    let e = f.space.clone();
    let mut g = f.clone();
    g.space = super::space::Space {
        ep: vec![4],
        models: vec!["mistralai/Mixtral-8x7B-v0.1".into()],
        ..e
    };
    let c = g.expand();
    assert!(
        c[0].invalid
            .as_deref()
            .is_some_and(|w| w.contains("divide")),
        "{:?}",
        c[0].invalid
    );
    assert!(
        c[4].invalid.is_none(),
        "TP 4 takes EP 4: {:?}",
        c[4].invalid
    );
}

#[test]
fn empty_or_zero_ep_and_empty_precision_axes_are_errors() {
    for (line, want) in [
        ("ep = []", "space.ep"),
        ("ep = [0]", "space.ep"),
        ("quantization = []", "space.quantization"),
        ("kv_cache_dtype = []", "space.kv_cache_dtype"),
        ("quantization = [\"int4\"]", "int4"),
    ] {
        let e = parse(&MINIMAL.replace("[space]", &format!("[space]\n{line}"))).unwrap_err();
        assert!(e.contains(want), "{line}: {e}");
    }
}
