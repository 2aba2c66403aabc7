//! Tests of disaggregation as search dimensions (`[space.disaggregation]`): expansion, keys,
//! checks, prices and the rows' pool columns.

use super::capacity::{Capacity, Status};
use super::results::{row, write_csv};
use super::space_tests::parse;
use crate::engine::transfer::TransferMode;
use crate::pools::PoolRole;

/// Llama-3-8B on H100, a budget of 8 GPUs, vllm_v1; `axes` is the `[space.disaggregation]` body.
fn space(tp: &str, axes: &str) -> String {
    format!(
        r#"
[space]
models = ["meta-llama/Meta-Llama-3-8B"]
tp = {tp}
gpu_budget = 8
[[space.devices]]
device = "h100"
[[space.schedulers]]
name = "vllm_v1"
[space.disaggregation]
{axes}
"#
    )
}

#[test]
fn a_budget_is_split_every_way_after_the_colocated_baseline() {
    let f = parse(&space(
        "[1, 2]",
        "transfer_modes = [\"after_prefill\", \"layerwise\"]",
    ))
    .unwrap();
    let c = f.expand();
    // TP 1: colocated + 7 splits × 2 modes; TP 2 (4 replicas): colocated + 3 splits × 2 modes.
    assert_eq!(c.len(), (1 + 7 * 2) + (1 + 3 * 2));
    let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys[0], "Meta-Llama-3-8B_h100_tp1_pp1_r8_vllm_v1");
    assert_eq!(keys[1], "Meta-Llama-3-8B_h100_tp1_pp1_p1d7_ap_vllm_v1");
    assert_eq!(keys[2], "Meta-Llama-3-8B_h100_tp1_pp1_p1d7_lw_vllm_v1");
    assert_eq!(keys[14], "Meta-Llama-3-8B_h100_tp1_pp1_p7d1_lw_vllm_v1");
    assert_eq!(keys[15], "Meta-Llama-3-8B_h100_tp2_pp1_r4_vllm_v1");
    assert_eq!(keys[21], "Meta-Llama-3-8B_h100_tp2_pp1_p3d1_lw_vllm_v1");
    assert!(c.iter().all(|c| c.invalid.is_none()), "{:?}", c[0].invalid);
    assert!(c.iter().enumerate().all(|(i, c)| c.index == i));
    // Every split uses the whole budget; the pools reach the run configuration.
    for cand in &c {
        let cfg = &cand.config;
        let gpus = cfg.cluster.num_replicas * cfg.replica.tp;
        assert_eq!(gpus, 8, "{}", cand.key);
        if let [p, d] = cfg.cluster.pools.as_slice() {
            assert_eq!((p.role, d.role), (PoolRole::Prefill, PoolRole::Decode));
            assert_eq!(p.replicas + d.replicas, cfg.cluster.num_replicas);
            assert!(cand
                .key
                .contains(&format!("_p{}d{}_", p.replicas, d.replicas)));
            let mode = cfg.cluster.kv_transfer.mode;
            assert_eq!(cand.key.contains("_lw_"), mode == TransferMode::Layerwise);
        } else {
            assert!(cand.key.contains("_r"), "{}", cand.key);
        }
    }
    let toml = c[2].config.to_toml();
    for want in [
        "[[cluster.pool]]\nrole = \"prefill\"\nreplicas = 1",
        "role = \"decode\"\nreplicas = 7",
        "mode = \"layerwise\"",
    ] {
        assert!(toml.contains(want), "{want} missing from\n{toml}");
    }
    // colocated = false drops the baseline; the default mode is after_prefill.
    let c = parse(&space("[4]", "colocated = false")).unwrap().expand();
    let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["Meta-Llama-3-8B_h100_tp4_pp1_p1d1_ap_vllm_v1"]);
    // A layout too large to split leaves only its colocated row.
    assert_eq!(parse(&space("[8]", "")).unwrap().expand().len(), 1);
}

#[test]
fn explicit_sizes_decode_devices_and_prices() {
    let text = r#"
[space]
models = ["meta-llama/Meta-Llama-3-8B"]
replicas = [2]
[[space.devices]]
device = "h100"
price_per_gpu_hour_usd = 5.0
[[space.schedulers]]
name = "vllm_v1"
[space.disaggregation]
prefill_replicas = [1, 2]
decode_replicas = [3]
[[space.disaggregation.decode_devices]]
device = "a100"
price_per_gpu_hour_usd = 2.0
[[space.disaggregation.decode_devices]]
device = "h100"
"#;
    let c = parse(text).unwrap().expand();
    let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Meta-Llama-3-8B_h100_tp1_pp1_r2_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p1d3-a100_ap_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p1d3-h100_ap_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p2d3-a100_ap_vllm_v1",
            "Meta-Llama-3-8B_h100_tp1_pp1_p2d3-h100_ap_vllm_v1",
        ]
    );
    assert!(c.iter().all(|c| c.invalid.is_none()), "{:?}", c[1].invalid);
    assert_eq!(c[1].config.cluster.pools[1].device.as_deref(), Some("a100"));
    // The decode pool's own price; an entry without one takes the catalog's, not the prefill
    // device's override.
    assert_eq!(c[1].decode_price_per_gpu_hour_usd, Some(2.0));
    let h100 = predictor::Catalog::builtin().device("h100").unwrap();
    assert_eq!(
        c[2].decode_price_per_gpu_hour_usd,
        Some(h100.price_per_gpu_hour_usd)
    );
    assert_eq!(c[0].decode_price_per_gpu_hour_usd, None);
    // The row's cost: 2 × 5.0 (prefill, H100) + 3 × 2.0 (decode, A100) = 16 USD/h.
    let none = Capacity {
        status: Status::Failed,
        reason: None,
        capacity_qps: None,
        fail_qps: None,
        probe_throughput_qps: None,
        arrival_span_s: None,
        evaluations: Vec::new(),
        at_capacity: None,
    };
    let r = row(&c[3], none.clone(), &[]).row;
    assert_eq!((r.replicas, r.gpus, r.usd_per_hour), (5, 5, 16.0));
    let p = r.pools.as_ref().unwrap();
    assert_eq!((p.prefill_replicas, p.decode_replicas), (2, 3));
    assert_eq!(
        (p.decode_device.as_str(), p.decode_price_per_gpu_hour_usd),
        ("a100", 2.0)
    );
    assert_eq!(row(&c[0], none.clone(), &[]).row.pools, None);
    // results.csv gains the pool columns when a row is disaggregated, and only then.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.csv");
    let rows: Vec<_> = c.iter().map(|c| row(c, none.clone(), &[]).row).collect();
    write_csv(&path, &rows, &[]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains(",gpus,prefill_replicas,decode_replicas,decode_device,decode_node,decode_price_per_gpu_hour_usd,transfer_mode,scheduler,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(",arrival_span_s,prefill_busy_fraction,decode_busy_fraction,decode_kv_usage_mean,kv_wait_p99_s,kv_after_prefill_p99_s,evaluations,"));
    assert!(lines[1].contains(",2,2,,,,,,,vllm_v1,"), "{}", lines[1]);
    assert!(
        lines[4].contains(",5,5,2,3,a100,a100_dgx,2,after_prefill,vllm_v1,"),
        "{}",
        lines[4]
    );
    let width = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == width));
    write_csv(&path, &rows[..1], &[]).unwrap();
    let plain = std::fs::read_to_string(&path).unwrap();
    assert!(!plain.contains("prefill_replicas"), "{plain}");
}

#[test]
fn a_decode_pool_needs_a_scheduler_that_takes_prefilled_requests() {
    let text = space("[1]", "prefill_replicas = [4]").replace("\"vllm_v1\"", "\"orca\"");
    let c = parse(&text).unwrap().expand();
    assert_eq!(c.len(), 2);
    assert!(c[0].invalid.is_none());
    let why = c[1].invalid.as_deref().unwrap();
    assert!(
        why.contains("decode pool") && why.contains("vllm_v1"),
        "{why}"
    );
}

#[test]
fn bad_axes_are_errors_naming_the_key() {
    for (axes, want) in [
        ("decode_replicas = [2]", "space.disaggregation.decode_replicas: is set by space.gpu_budget"),
        ("prefill_replicas = []", "space.disaggregation.prefill_replicas: is empty"),
        ("prefill_replicas = [0]", "space.disaggregation.prefill_replicas: 0 replicas"),
        ("transfer_modes = []", "space.disaggregation.transfer_modes: is empty"),
        ("transfer_modes = [\"streamed\"]", "unknown variant `streamed`"),
        ("decode_devices = []", "space.disaggregation.decode_devices: is empty"),
        ("[[space.disaggregation.decode_devices]]\ndevice = \"b300x\"", "space.disaggregation.decode_devices[0].device"),
        ("[[space.disaggregation.decode_devices]]\ndevice = \"a100\"\nprice_per_gpu_hour_usd = -1", "decode_devices[0].price_per_gpu_hour_usd"),
        ("ratio = \"1:3\"", "unknown field `ratio`"),
    ] {
        let e = parse(&space("[1]", axes)).unwrap_err();
        assert!(e.contains(want), "{axes}: {e}");
    }
    // Without a budget both lists are needed; space.replicas is only for colocated deployments.
    let no_budget = space("[1]", "prefill_replicas = [1]").replace("gpu_budget = 8", "");
    let e = parse(&no_budget).unwrap_err();
    assert!(
        e.contains("give both prefill_replicas and decode_replicas"),
        "{e}"
    );
    let e = parse(
        &space(
            "[1]",
            "colocated = false\nprefill_replicas = [1]\ndecode_replicas = [1]",
        )
        .replace("gpu_budget = 8", "replicas = [2]"),
    )
    .unwrap_err();
    assert!(
        e.contains("space.replicas") && e.contains("colocated = false"),
        "{e}"
    );
    // An explicit prefill share the budget cannot hold is an invalid row with the reason.
    let c = parse(&space("[2]", "prefill_replicas = [1, 4]"))
        .unwrap()
        .expand();
    assert_eq!(c.len(), 3);
    assert!(c[1].invalid.is_none());
    let why = c[2].invalid.as_deref().unwrap();
    assert!(why.contains("leave none of the GPU budget of 8"), "{why}");
}
