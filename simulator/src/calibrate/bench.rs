//! Import of a `vllm bench serve --save-result` JSON (with `--save-detailed`, its per-request
//! lengths) as one experiment.
//!
//! The result records the model (`model_id`), the traffic (`request_rate`, `burstiness`,
//! `num_prompts`) and the latencies (`mean_ttft_ms`, `mean_e2el_ms`, and `p<N>_…` for the
//! percentiles asked with `--metric-percentiles`). It does not record the GPU, the layout or the
//! engine arguments: give them with `vllm bench serve --metadata gpu=h100 tp=2 max_num_seqs=256
//! …` (keys below), or with the options of `simulator calibrate`.

use clap::ValueEnum;
use predictor::exec::engine::SamplingChoice;
use serde_json::Value;

use super::measurements::{
    BenchDefaults, EngineArgs, Experiment, MeasuredStage, MeasuredStageLoad, MeasuredWorkload,
};

/// Metadata keys read from a bench result (all optional).
pub const METADATA_KEYS: [&str; 7] = [
    "gpu",
    "tp",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "max_model_len",
    "quantization",
];

fn num(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        // metadata values are strings
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The experiment a bench result describes; `stem` names it.
pub fn import_bench(v: &Value, stem: &str, d: &BenchDefaults) -> Result<Experiment, String> {
    let model = text(v, "model_id")
        .ok_or("a vllm bench result needs `model_id`")?
        .to_string();
    let gpu = text(v, "gpu")
        .map(str::to_string)
        .or_else(|| d.gpu.clone())
        .ok_or("the bench result does not say which GPU ran it: pass --device to simulator calibrate, or record it with `vllm bench serve --metadata gpu=h100`")?;
    if !matches!(v.get("max_concurrency"), None | Some(Value::Null)) {
        return Err("the bench run limited concurrency (`max_concurrency`), a closed loop the open-loop simulation does not reproduce; calibrate from runs without --max-concurrency".into());
    }
    let rate = match v.get("request_rate") {
        Some(Value::String(s)) if s == "inf" => {
            return Err("`request_rate` is inf (every request at once): calibrate from runs with a finite --request-rate".into())
        }
        _ => num(v, "request_rate").ok_or("a vllm bench result needs `request_rate`")?,
    };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "`request_rate` is {rate}: it must be a positive number"
        ));
    }
    let completed = num(v, "completed").ok_or("a vllm bench result needs `completed`")?;
    let prompts = num(v, "num_prompts").unwrap_or(completed);
    if completed < 1.0 {
        return Err("`completed` is 0: the run finished no request".into());
    }
    let lengths = match (v.get("input_lens"), v.get("output_lens")) {
        (Some(Value::Array(i)), Some(Value::Array(o))) if !i.is_empty() && i.len() == o.len() => i
            .iter()
            .zip(o)
            .map(|(a, b)| {
                let a = a.as_u64().filter(|&x| x > 0 && x <= u64::from(u32::MAX));
                let b = b.as_u64().filter(|&x| x > 0 && x <= u64::from(u32::MAX));
                match (a, b) {
                    (Some(a), Some(b)) => Ok([a as u32, b as u32]),
                    _ => Err("`input_lens`/`output_lens` hold a value that is not a positive token count".to_string()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            let input = num(v, "total_input_tokens").ok_or("a vllm bench result needs `total_input_tokens` (or `input_lens` with --save-detailed)")?;
            let output = num(v, "total_output_tokens").ok_or("a vllm bench result needs `total_output_tokens` (or `output_lens` with --save-detailed)")?;
            vec![[
                (input / completed).round().max(1.0) as u32,
                (output / completed).round().max(1.0) as u32,
            ]]
        }
    };
    let ms = |key: &str| num(v, key).filter(|x| x.is_finite() && *x > 0.0);
    let stage = MeasuredStage {
        e2e_mean: ms("mean_e2el_ms")
            .ok_or("a vllm bench result needs `mean_e2el_ms` (vLLM ≥ 0.6 records it)")?,
        e2e_p90: ms("p90_e2el_ms"),
        e2e_p99: ms("p99_e2el_ms"),
        ttft_mean: ms("mean_ttft_ms").ok_or("a vllm bench result needs `mean_ttft_ms`")?,
        ttft_p90: ms("p90_ttft_ms"),
        ttft_p99: ms("p99_ttft_ms"),
        itl_mean: ms("mean_itl_ms"),
    };
    let u = |key: &str, default: u32| -> Result<u32, String> {
        match num(v, key) {
            None => Ok(default),
            Some(x) if x >= 1.0 && x <= f64::from(u32::MAX) && x.fract() == 0.0 => Ok(x as u32),
            Some(x) => Err(format!(
                "metadata `{key}` is {x}: give a positive whole number"
            )),
        }
    };
    let quantized = text(v, "quantization").is_some_and(|q| q.eq_ignore_ascii_case("fp8"));
    // `vllm bench serve` asks for greedy decoding (temperature 0) unless given sampling options:
    // the sampler filters nothing unless the metadata says otherwise.
    let sampling = match text(v, "sampling") {
        None => SamplingChoice::Plain,
        Some(s) => SamplingChoice::from_str(s, false)
            .map_err(|_| format!("metadata `sampling` is {s:?}: give plain, filtered or auto"))?,
    };
    Ok(Experiment {
        id: stem.to_string(),
        model,
        gpu,
        precision: if quantized { "FP8" } else { "FP16" }.into(),
        tp: u("tp", d.tp)?,
        dp: 1,
        engine: EngineArgs {
            name: "vllm".into(),
            version: text(v, "version").unwrap_or("unknown").to_string(),
            max_num_seqs: u("max_num_seqs", d.max_num_seqs)?,
            max_num_batched_tokens: u("max_num_batched_tokens", d.max_num_batched_tokens)?,
            gpu_memory_utilization: num(v, "gpu_memory_utilization")
                .unwrap_or(d.gpu_memory_utilization),
            kv_cpu_offload: None,
            chunked_prefill: true,
            prefix_caching: true,
            block_size: 16,
            max_model_len: u("max_model_len", d.max_model_len)?,
            sampling,
        },
        kv_blocks_total_gpu: None,
        workload: MeasuredWorkload {
            arrivals: "vllm bench serve".into(),
            stages: vec![MeasuredStageLoad {
                duration: prompts / rate,
                rate,
            }],
            shared_prefix: None,
            lengths: Some(lengths),
            burstiness: num(v, "burstiness").filter(|b| *b != 1.0),
        },
        workload_source: "vllm bench serve result".into(),
        measured_ms: [("stage_0".to_string(), stage)].into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result as `vllm bench serve --save-result --save-detailed --metric-percentiles 50,90,99
    /// --metadata gpu=h100 tp=1` writes it (fields trimmed to the ones read, plus a few others).
    const FIXTURE: &str = r#"{
        "date": "20261201-120000", "endpoint_type": "openai", "backend": "vllm",
        "label": null, "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "tokenizer_id": "meta-llama/Llama-3.1-8B-Instruct", "num_prompts": 4,
        "gpu": "h100", "tp": "1", "max_num_seqs": "128",
        "request_rate": 2.0, "burstiness": 1.0, "max_concurrency": null,
        "duration": 2.5, "completed": 4, "total_input_tokens": 2048,
        "total_output_tokens": 512, "request_throughput": 1.6,
        "mean_ttft_ms": 25.0, "median_ttft_ms": 24.0, "std_ttft_ms": 2.0,
        "p50_ttft_ms": 24.0, "p90_ttft_ms": 28.0, "p99_ttft_ms": 30.0,
        "mean_tpot_ms": 7.5, "mean_itl_ms": 7.5,
        "mean_e2el_ms": 980.0, "median_e2el_ms": 975.0, "p90_e2el_ms": 1000.0, "p99_e2el_ms": 1010.0,
        "input_lens": [512, 512, 500, 524], "output_lens": [128, 128, 128, 128],
        "ttfts": [0.025, 0.024, 0.026, 0.025], "itls": [[], [], [], []],
        "generated_texts": ["", "", "", ""], "errors": ["", "", "", ""]
    }"#;

    #[test]
    fn a_documented_bench_result_imports() {
        let v: Value = serde_json::from_str(FIXTURE).unwrap();
        let e = import_bench(&v, "run1", &BenchDefaults::default()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.model, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(
            (e.gpu.as_str(), e.tp, e.engine.max_num_seqs),
            ("h100", 1, 128)
        );
        assert_eq!(e.workload.stages[0].rate, 2.0);
        assert_eq!(e.workload.stages[0].duration, 2.0);
        assert_eq!(e.workload.lengths.as_ref().unwrap()[2], [500, 128]);
        assert_eq!(e.workload.burstiness, None);
        let s = e.stages()[0].1;
        assert_eq!(
            (s.ttft_mean, s.ttft_p90, s.e2e_mean, s.e2e_p90),
            (25.0, Some(28.0), 980.0, Some(1000.0))
        );
        // Greedy unless the metadata says how the requests were sampled.
        assert_eq!(e.engine.sampling, SamplingChoice::Plain);
        let mut v = v;
        for (given, want) in [
            ("filtered", SamplingChoice::Filtered),
            ("auto", SamplingChoice::Auto),
        ] {
            v["sampling"] = given.into();
            let e = import_bench(&v, "run1", &BenchDefaults::default()).unwrap();
            assert_eq!(e.engine.sampling, want);
        }
        v["sampling"] = "nucleus".into();
        let e = import_bench(&v, "run1", &BenchDefaults::default()).unwrap_err();
        assert!(e.contains("sampling") && e.contains("filtered"), "{e}");
    }

    #[test]
    fn missing_facts_are_errors_saying_how_to_give_them() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v.as_object_mut().unwrap().remove("gpu");
        let e = import_bench(&v, "r", &BenchDefaults::default()).unwrap_err();
        assert!(
            e.contains("--device") && e.contains("--metadata gpu="),
            "{e}"
        );
        let with_gpu = BenchDefaults {
            gpu: Some("a100".into()),
            ..Default::default()
        };
        assert_eq!(import_bench(&v, "r", &with_gpu).unwrap().gpu, "a100");
        v["request_rate"] = Value::String("inf".into());
        assert!(import_bench(&v, "r", &with_gpu)
            .unwrap_err()
            .contains("inf"));
        v["request_rate"] = 2.0.into();
        v["max_concurrency"] = 8.into();
        assert!(import_bench(&v, "r", &with_gpu)
            .unwrap_err()
            .contains("max_concurrency"));
        v["max_concurrency"] = Value::Null;
        v.as_object_mut().unwrap().remove("mean_e2el_ms");
        assert!(import_bench(&v, "r", &with_gpu)
            .unwrap_err()
            .contains("mean_e2el_ms"));
    }
}
