//! A small synthetic profile directory for tests (compiled only for tests).

use crate::ops::Op;

/// Writes a small synthetic profile directory for Llama-2-7b on a100 (TP 1 and 2) and the
/// a100_dgx network, with a little deterministic noise. Returns the temp dir.
pub(crate) fn synthetic_profiles(with_attention: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("compute/a100/meta-llama/Llama-2-7b-hf");
    std::fs::create_dir_all(&comp).unwrap();
    let mut mlp = String::new();
    let ops = Op::TOKEN_OPS;
    for op in ops {
        mlp += &format!("time_stats.{}.median,", op.name());
    }
    mlp += "n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers\n";
    let mut i = 0u64;
    for tp in [1u32, 2] {
        let mut n = 1u64;
        while n <= 512 {
            for (k, _) in ops.iter().enumerate() {
                i += 1;
                let noise = 1.0 + ((i * 7919) % 13) as f64 * 0.002;
                let t = (0.004 + 0.0004 * (k as f64 + 1.0) * n as f64 / tp as f64) * noise;
                mlp += &format!("{:.4},", t);
            }
            mlp += &format!("32,32,4096,11008,32768,True,{n},{tp}\n");
            n = if n < 8 { n * 2 } else { n + 8 };
        }
    }
    std::fs::write(comp.join("mlp.csv"), mlp).unwrap();
    if with_attention {
        let mut a = String::from("time_stats.attn_prefill.median,time_stats.attn_decode.median,time_stats.attn_kv_cache_save.median,n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,prefill_chunk_size,kv_cache_size,is_prefill\n");
        for tp in [1u32, 2] {
            for b in 1..=8u64 {
                for kv in (64..=1024).step_by(64) {
                    let t = 0.01 + 0.00002 * (b * kv) as f64 / tp as f64;
                    a += &format!("0.0,{t:.5},0.003,4096,32,32,16,{tp},4096,{b},0,{kv},False\n");
                }
            }
            for c in (64..=1024u64).step_by(64) {
                for kv in (0..=1024u64).step_by(128) {
                    let t = 0.02 + 1e-7 * (c * (c + kv)) as f64 / tp as f64;
                    a += &format!("{t:.5},0.0,0.004,4096,32,32,16,{tp},4096,1,{c},{kv},True\n");
                }
            }
        }
        std::fs::write(comp.join("attention.csv"), a).unwrap();
    }
    let net = dir.path().join("network/a100_dgx");
    std::fs::create_dir_all(&net).unwrap();
    for coll in ["all_reduce", "send_recv"] {
        let mut s = format!(
            ",time_stats.{coll}.median,rank,num_workers,size,collective,devices_per_node\n"
        );
        let mut row = 0;
        let groups: &[(u32, u32)] = if coll == "all_reduce" {
            &[(2, 2)]
        } else {
            &[(2, 1), (2, 2)]
        };
        for &(w, d) in groups {
            let mut size = 2048u64;
            while size <= 64 << 20 {
                let t = 0.01 + size as f64 / 1e8 / d as f64;
                s += &format!("{row},{t:.5},0,{w},{size},{coll},{d}\n");
                row += 1;
                size = size * 5 / 4 + 2048;
            }
        }
        std::fs::write(net.join(format!("{coll}.csv")), s).unwrap();
    }
    dir
}
