use super::*;
use crate::reference::{rel_l2, to_bf16};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

#[test]
fn one_query_over_two_keys_weights_them_three_to_one() {
    // scores ln3 and 0 -> softmax 3/4, 1/4; values are the unit vectors
    let kv = PagedKv {
        k: to_bf16(&[1.0, 0.0, 0.0, 0.0]),
        v: to_bf16(&[1.0, 0.0, 0.0, 1.0]),
        kv_heads: 1,
        d: 2,
        page: 2,
    };
    let q = to_bf16(&[3f32.ln(), 0.0]);
    let qs = Queries {
        q: &q,
        stride: 2,
        q_heads: 1,
    };
    let seqs = [Seq {
        q_len: 1,
        kv_len: 2,
        block_table: vec![0],
    }];
    let out = naive(qs, &seqs, &kv, 1.0);
    assert!(
        (out[0] - 0.75).abs() < 2e-3 && (out[1] - 0.25).abs() < 2e-3,
        "{out:?}"
    );
    let flash = flash_prefill(qs, &seqs, &kv, 1.0, 64, 64);
    assert!(rel_l2(&flash, &out) < 1e-2);
    let split = split_kv_decode(qs, &seqs, &kv, 1.0, 1, 2);
    assert!(rel_l2(&split, &out) < 1e-5);
}

#[test]
fn causal_mask_lets_the_first_query_of_a_full_prefill_see_only_itself() {
    let kv = PagedKv {
        k: to_bf16(&[1.0, 0.0, 0.0, 1.0]),
        v: to_bf16(&[1.0, 2.0, 3.0, 4.0]),
        kv_heads: 1,
        d: 2,
        page: 1,
    };
    let q = to_bf16(&[0.0, 0.0, 0.0, 0.0]);
    let qs = Queries {
        q: &q,
        stride: 2,
        q_heads: 1,
    };
    // pages in reverse order: position 0 is in page 1, position 1 in page 0
    let seqs = [Seq {
        q_len: 2,
        kv_len: 2,
        block_table: vec![1, 0],
    }];
    let out = naive(qs, &seqs, &kv, 1.0);
    assert_eq!(&out[0..2], &[3.0, 4.0]);
    assert_eq!(&out[2..4], &[2.0, 3.0]);
    assert_eq!(flash_prefill(qs, &seqs, &kv, 1.0, 1, 1), out);
}

#[test]
fn decode_splits_fill_the_gpu_and_respect_the_key_limit() {
    // one sequence, 8 KV heads, 32K keys on 132 SMs: limited by the 512-key buffer
    let (s, k) = decode_splits(1, 8, 32768, 132, 512);
    assert_eq!((s, k), (64, 512));
    // 64 sequences x 8 heads already fill the GPU: only the length rule applies
    assert_eq!(decode_splits(64, 8, 1024, 132, 512), (2, 512));
    // tiny context: one split
    assert_eq!(decode_splits(256, 8, 16, 132, 512), (1, 16));
    let (s, k) = decode_splits(1, 1, 1000, 132, 512);
    assert!(s * k >= 1000 && k % 16 == 0 && k <= 512);
}

struct Case {
    kv: PagedKv,
    q: Vec<half::bf16>,
    q_heads: usize,
    seqs: Vec<Seq>,
}

fn case(seed: u64, q_lens: &[usize], prefixes: &[usize], kv_heads: usize, group: usize) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let (d, page) = (8, 4);
    let q_heads = kv_heads * group;
    let pages: usize = q_lens
        .iter()
        .zip(prefixes)
        .map(|(q, p)| (q + p).div_ceil(page))
        .sum();
    let mut ids: Vec<i32> = (0..pages as i32 + 3).collect();
    ids.shuffle(&mut rng);
    let mut next = 0;
    let seqs: Vec<Seq> = q_lens
        .iter()
        .zip(prefixes)
        .map(|(&q, &p)| {
            let n = (q + p).div_ceil(page);
            let bt = ids[next..next + n].to_vec();
            next += n;
            Seq {
                q_len: q,
                kv_len: q + p,
                block_table: bt,
            }
        })
        .collect();
    let cache = (pages + 3) * page * kv_heads * d;
    let mut rnd = |n: usize| -> Vec<half::bf16> {
        to_bf16(
            &(0..n)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect::<Vec<_>>(),
        )
    };
    let k = rnd(cache);
    let v = rnd(cache);
    let rows: usize = q_lens.iter().sum();
    let q = rnd(rows * q_heads * d);
    Case {
        kv: PagedKv {
            k,
            v,
            kv_heads,
            d,
            page,
        },
        q,
        q_heads,
        seqs,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tiled_prefill_equals_naive_attention(
        seed in 0u64..1000,
        q_lens in proptest::collection::vec(1usize..40, 1..4),
        prefix_seed in proptest::collection::vec(0usize..50, 4),
        kv_heads in 1usize..3,
        group in 1usize..5,
        br in prop_oneof![Just(4usize), Just(8), Just(16)],
        bc in prop_oneof![Just(4usize), Just(8), Just(64)],
    ) {
        let prefixes: Vec<usize> = q_lens.iter().zip(&prefix_seed).map(|(_, &p)| p).collect();
        let c = case(seed, &q_lens, &prefixes, kv_heads, group);
        let qs = Queries { q: &c.q, stride: c.q_heads * 8, q_heads: c.q_heads };
        let scale = 1.0 / (8f32).sqrt();
        let want = naive(qs, &c.seqs, &c.kv, scale);
        let got = flash_prefill(qs, &c.seqs, &c.kv, scale, br, bc);
        prop_assert!(rel_l2(&got, &want) < 1e-2, "rel err {}", rel_l2(&got, &want));
    }

    #[test]
    fn split_kv_decode_equals_naive_attention(
        seed in 0u64..1000,
        contexts in proptest::collection::vec(1usize..200, 1..5),
        kv_heads in 1usize..3,
        group in 1usize..5,
        sms in 1usize..16,
    ) {
        let q_lens = vec![1; contexts.len()];
        let prefixes: Vec<usize> = contexts.iter().map(|c| c - 1).collect();
        let c = case(seed, &q_lens, &prefixes, kv_heads, group);
        let qs = Queries { q: &c.q, stride: c.q_heads * 8, q_heads: c.q_heads };
        let max_len = *contexts.iter().max().unwrap();
        let (splits, keys) = decode_splits(contexts.len(), kv_heads, max_len, sms, 32);
        prop_assert!(splits * keys >= max_len);
        let want = naive(qs, &c.seqs, &c.kv, 0.3);
        let got = split_kv_decode(qs, &c.seqs, &c.kv, 0.3, keys, splits);
        prop_assert!(rel_l2(&got, &want) < 1e-5, "rel err {}", rel_l2(&got, &want));
    }
}
