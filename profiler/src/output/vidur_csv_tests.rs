use super::*;
use predictor::Catalog;
use std::path::PathBuf;

/// A profile of Vidur's committed (gzipped) under `data/vidur/profiling/`.
fn reference(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/vidur/profiling")
        .join(format!("{rel}.gz"));
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// The first line of a gzipped CSV, as published.
fn header_line(path: &PathBuf) -> String {
    let file = std::fs::File::open(path).unwrap();
    let mut text = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(flate2::read::GzDecoder::new(file)),
        &mut text,
    )
    .unwrap();
    text.trim_end_matches(['\n', '\r']).to_string()
}

fn written_header(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn stats(base: f64) -> TimeStats {
    TimeStats::from_samples(&[base, base * 1.5, base * 0.75, 1.0 / 3.0 * base]).unwrap()
}

#[test]
fn mlp_header_is_byte_identical_to_vidurs_published_files() {
    let mut buf = Vec::new();
    let m = Catalog::builtin()
        .model("meta-llama/Meta-Llama-3-8B")
        .unwrap();
    write_mlp(&mut buf, &m, &[]).unwrap();
    for f in [
        "compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv",
        "compute/h100/meta-llama/Llama-2-70b-hf/mlp.csv",
    ] {
        assert_eq!(written_header(&buf), header_line(&reference(f)), "{f}");
    }
}

#[test]
fn collective_headers_are_byte_identical_to_vidurs_published_files() {
    for (send_recv, f) in [
        (false, "network/h100_dgx/all_reduce.csv"),
        (true, "network/h100_dgx/send_recv.csv"),
        (false, "network/a100_pairwise_nvlink/all_reduce.csv"),
    ] {
        let mut buf = Vec::new();
        write_collective(&mut buf, send_recv, &[]).unwrap();
        assert_eq!(written_header(&buf), header_line(&reference(f)), "{f}");
    }
}

#[test]
fn attention_header_is_vidurs_vintage_b_column_list() {
    // Vidur's attention.csv files are not available (Git LFS); this is the 36-column list of
    // vintage B as described in docs/design.md §3.3.
    let want = "time_stats.attn_input_reshape.min,time_stats.attn_input_reshape.max,time_stats.attn_input_reshape.mean,time_stats.attn_input_reshape.median,time_stats.attn_input_reshape.std,\
time_stats.attn_kv_cache_save.min,time_stats.attn_kv_cache_save.max,time_stats.attn_kv_cache_save.mean,time_stats.attn_kv_cache_save.median,time_stats.attn_kv_cache_save.std,\
time_stats.attn_prefill.min,time_stats.attn_prefill.max,time_stats.attn_prefill.mean,time_stats.attn_prefill.median,time_stats.attn_prefill.std,\
time_stats.attn_decode.min,time_stats.attn_decode.max,time_stats.attn_decode.mean,time_stats.attn_decode.median,time_stats.attn_decode.std,\
time_stats.attn_output_reshape.min,time_stats.attn_output_reshape.max,time_stats.attn_output_reshape.mean,time_stats.attn_output_reshape.median,time_stats.attn_output_reshape.std,\
n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,prefill_chunk_size,kv_cache_size,is_prefill,attention_backend";
    assert_eq!(attention_header().join(","), want);
    assert_eq!(attention_header().len(), 36);
}

#[test]
fn mlp_rows_read_back_with_the_same_numbers_and_keys() {
    let m = Catalog::builtin()
        .model("meta-llama/Meta-Llama-3-8B")
        .unwrap();
    let rows: Vec<MlpRow> = [(1u32, 1u64), (2, 4096)]
        .iter()
        .map(|&(tp, n)| MlpRow {
            tp,
            num_tokens: n,
            stats: std::array::from_fn(|i| stats(0.001 * (i as f64 + 1.0) * n as f64)),
        })
        .collect();
    let mut buf = Vec::new();
    write_mlp(&mut buf, &m, &rows).unwrap();
    let mut rd = csv::Reader::from_reader(buf.as_slice());
    let header = rd.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let recs: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 2);
    for (r, rec) in rows.iter().zip(&recs) {
        for (i, op) in MlpOp::ALL.iter().enumerate() {
            for (j, s) in STATS.iter().enumerate() {
                let v: f64 = rec[col(&format!("time_stats.{}.{s}", op.vidur_name()))]
                    .parse()
                    .unwrap();
                assert_eq!(v, r.stats[i].columns()[j]);
            }
        }
        assert_eq!(&rec[col("num_tokens")], r.num_tokens.to_string());
        assert_eq!(&rec[col("num_tensor_parallel_workers")], r.tp.to_string());
        assert_eq!(&rec[col("use_gated_mlp")], "True");
        assert_eq!(&rec[col("n_expanded_embd")], "14336");
        assert_eq!(&rec[col("vocab_size")], "128256");
    }
}

#[test]
fn attention_rows_put_the_time_under_prefill_or_decode_and_zero_elsewhere() {
    let m = Catalog::builtin()
        .model("meta-llama/Meta-Llama-3-8B")
        .unwrap();
    let p = AttentionPoint {
        tp: 2,
        is_prefill: false,
        batch_size: 64,
        prefill_chunk_size: 0,
        kv_cache_size: 1024,
    };
    let rows = [AttentionRow {
        point: p,
        kv_save: stats(0.003),
        attention: stats(0.2),
        backend: "nvrtc_fa2".into(),
    }];
    let mut buf = Vec::new();
    write_attention(&mut buf, &m, 8192, &rows).unwrap();
    let mut rd = csv::Reader::from_reader(buf.as_slice());
    let header = rd.headers().unwrap().clone();
    let rec = rd.records().next().unwrap().unwrap();
    let get = |name: &str| rec[header.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(
        get("time_stats.attn_decode.median"),
        stats(0.2).median_ms.to_string()
    );
    assert_eq!(get("time_stats.attn_prefill.median"), "0");
    assert_eq!(get("time_stats.attn_input_reshape.max"), "0");
    assert_eq!(get("is_prefill"), "False");
    assert_eq!(get("block_size"), "16");
    assert_eq!(get("batch_size"), "64");
    assert_eq!(get("kv_cache_size"), "1024");
    assert_eq!(get("num_tensor_parallel_workers"), "2");
    assert_eq!(get("max_model_len"), "8192");
}

#[test]
fn collective_rows_carry_the_pandas_index_and_filter_by_collective() {
    let row = |send_recv, size| CollectiveRow {
        point: CollectivePoint {
            send_recv,
            num_workers: 2,
            size_bytes: size,
        },
        stats: stats(0.02),
        devices_per_node: 2,
        max_devices_per_node: 8,
    };
    let rows = [row(false, 1024), row(true, 1024), row(false, 2048)];
    let mut buf = Vec::new();
    write_collective(&mut buf, false, &rows).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("0,"), "{}", lines[1]);
    assert!(lines[2].starts_with("1,"), "{}", lines[2]);
    assert!(
        lines[2].ends_with(",0,2,2048,all_reduce,2,8"),
        "{}",
        lines[2]
    );
}
