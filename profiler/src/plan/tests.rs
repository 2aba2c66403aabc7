use super::*;
use predictor::Catalog;

fn config(model: &str, grid: GridKind, gpus: u32) -> PlanConfig {
    let m = Catalog::builtin().model(model).unwrap();
    PlanConfig {
        max_model_len: m.max_position_embeddings as u64,
        model: m,
        tps: vec![1, 2, 4, 8],
        grid,
        max_tokens: 16384,
        kv_budget_bytes: 40_000_000_000,
        gpus,
        suites: [Suite::Mlp, Suite::Attention, Suite::Collectives].into(),
    }
}

const L8B: &str = "meta-llama/Meta-Llama-3-8B";
const L70B: &str = "meta-llama/Meta-Llama-3-70B";

#[test]
fn full_plan_point_counts_are_pinned() {
    let p = Plan::new(&config(L8B, GridKind::Full, 1)).unwrap();
    assert_eq!(p.mlp.len(), 116 * 4);
    assert_eq!(p.lm_head.len(), 15 * 4);
    let prefill = p.attention.iter().filter(|a| a.is_prefill).count();
    let decode = p.attention.len() - prefill;
    // 84 prefill shapes with q + prefix <= 8192 per TP; decode shapes within 8K context and 40 GB of KV
    assert_eq!(prefill, 84 * 4);
    let decode_per_tp: Vec<usize> = [1, 2, 4, 8]
        .iter()
        .map(|&tp| {
            p.attention
                .iter()
                .filter(|a| !a.is_prefill && a.tp == tp)
                .count()
        })
        .collect();
    assert_eq!(decode_per_tp[0], 108);
    assert_eq!(decode_per_tp[3], 120);
    assert_eq!(decode, decode_per_tp.iter().sum::<usize>());
    assert!(
        p.collectives.is_empty(),
        "one GPU: no collective can be measured"
    );

    let p70 = Plan::new(&config(L70B, GridKind::Full, 1)).unwrap();
    let d70: Vec<usize> = [1, 8]
        .iter()
        .map(|&tp| {
            p70.attention
                .iter()
                .filter(|a| !a.is_prefill && a.tp == tp)
                .count()
        })
        .collect();
    assert_eq!(d70, vec![95, 116]);
}

#[test]
fn attention_points_respect_the_context_and_memory_filters() {
    let cfg = config(L70B, GridKind::Full, 1);
    let p = Plan::new(&cfg).unwrap();
    for a in &p.attention {
        let s = p.rank(a.tp);
        if a.is_prefill {
            assert_eq!(a.batch_size, 1);
            assert!(a.prefill_chunk_size + a.kv_cache_size <= cfg.max_model_len);
        } else {
            assert_eq!(a.prefill_chunk_size, 0);
            assert!(a.kv_cache_size < cfg.max_model_len);
            let bytes = a.batch_size * (a.kv_cache_size + 1) * s.kv_bytes_per_token() * 80;
            assert!(bytes <= cfg.kv_budget_bytes, "{a:?}");
        }
    }
}

#[test]
fn quick_plan_is_a_subset_of_the_full_plan() {
    let full = Plan::new(&config(L8B, GridKind::Full, 8)).unwrap();
    let quick = Plan::new(&config(L8B, GridKind::Quick, 8)).unwrap();
    assert!(quick.mlp.iter().all(|x| full.mlp.contains(x)));
    assert!(quick.attention.iter().all(|x| full.attention.contains(x)));
    assert!(quick
        .collectives
        .iter()
        .all(|x| full.collectives.contains(x)));
    assert_eq!(quick.mlp.len(), 7 * 4);
    assert!(quick.measurements().len() < full.measurements().len() / 5);
}

#[test]
fn collectives_cover_every_gpu_count_the_node_allows() {
    let p = Plan::new(&config(L8B, GridKind::Quick, 4)).unwrap();
    let workers: std::collections::BTreeSet<u32> =
        p.collectives.iter().map(|c| c.num_workers).collect();
    assert_eq!(workers.into_iter().collect::<Vec<_>>(), vec![2, 4]);
    let sr = p.collectives.iter().filter(|c| c.send_recv).count();
    assert_eq!(sr, 5);
    assert!(p
        .collectives
        .iter()
        .filter(|c| c.send_recv)
        .all(|c| c.num_workers == 2));
}

#[test]
fn plans_are_deterministic_and_sorted_by_tp() {
    let a = Plan::new(&config(L8B, GridKind::Full, 8)).unwrap();
    let b = Plan::new(&config(L8B, GridKind::Full, 8)).unwrap();
    assert_eq!(a.measurements(), b.measurements());
    assert!(a.mlp.windows(2).all(|w| w[0] < w[1]));
    let mut tps: Vec<u32> = a.attention.iter().map(|x| x.tp).collect();
    let sorted = {
        let mut t = tps.clone();
        t.sort();
        t
    };
    assert_eq!(tps, sorted);
    tps.dedup();
    assert_eq!(tps, vec![1, 2, 4, 8]);
}

#[test]
fn full_sweeps_of_llama3_8b_and_70b_stay_under_five_minutes_of_gpu_time_on_h100() {
    let cat = Catalog::builtin();
    let h100 = cat.device("h100").unwrap();
    let node = cat.node("h100_dgx").unwrap();
    for model in [L8B, L70B] {
        let p = Plan::new(&config(model, GridKind::Full, 8)).unwrap();
        let e = p.estimate(&h100, Some(&node));
        assert!(e.total_s() < 300.0, "{model}: {e:?}");
        assert!(
            e.gpu_s > 1.0,
            "{model}: an estimate this small means the work model is broken: {e:?}"
        );
        let q = Plan::new(&config(model, GridKind::Quick, 1))
            .unwrap()
            .estimate(&h100, None);
        assert!(q.total_s() < e.total_s() / 4.0);
    }
}

#[test]
fn a_bad_tp_degree_is_an_error() {
    let mut cfg = config(L8B, GridKind::Quick, 1);
    cfg.tps = vec![1, 3];
    assert!(Plan::new(&cfg).is_err());
}
