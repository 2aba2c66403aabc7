//! Running a sweep end to end on a GPU: open the device, compile the kernels, walk the plan with a
//! progress bar, write Vidur's files and `metadata.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use predictor::{Catalog, ModelSpec, NodeSpec};
use serde_json::json;

use super::check;
use super::device::{require_library, Gpu, GpuError, GpuInfo, GpuResult, Kernels};
use super::gemm::{self, Lt};
use super::sweep::{progress_bar, Bench};
use crate::output::{self, vidur_csv};
use crate::plan::{Ceilings, Plan, Suite};

/// The `attention_backend` value of our rows.
pub const ATTENTION_BACKEND: &str = "nvrtc_fa2";

/// Options of a GPU run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// GPU ordinal for compute sweeps.
    pub gpu: usize,
    /// Catalog device name for the output path (default: guessed from the GPU name).
    pub device: Option<String>,
    /// Catalog node for collectives (default: the device's DGX node).
    pub node: Option<String>,
    /// Capture timing blocks in CUDA graphs.
    pub graphs: bool,
    /// Seed of inputs and page tables.
    pub seed: u64,
    /// Longest sequence, for `attention.csv`'s `max_model_len` and the rotary table.
    pub max_model_len: u64,
    /// The command line, for the metadata.
    pub command_line: Vec<String>,
}

/// The opened GPU with everything a sweep needs.
pub struct Session {
    /// The GPU.
    pub gpu: Gpu,
    /// The kernels.
    pub kernels: Kernels,
    /// cuBLASLt.
    pub lt: Lt,
}

/// Probes the driver and libraries, opens the GPU and compiles the kernels.
pub fn open(ordinal: usize) -> GpuResult<Session> {
    super::device::probe()?;
    // SAFETY: probes only dlopen.
    let (lt_ok, nvrtc_ok) = unsafe {
        (
            cudarc::cublaslt::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    require_library("cuBLASLt", "libcublasLt.so.13", "nvidia-cublas", lt_ok)?;
    require_library("NVRTC", "libnvrtc.so.13", "nvidia-cuda-nvrtc", nvrtc_ok)?;
    let gpu = Gpu::open(ordinal)?;
    let kernels = gpu.load_kernels()?;
    let lt = Lt::new(&gpu)?;
    Ok(Session { gpu, kernels, lt })
}

fn device_name(info: &GpuInfo, opt: &RunOptions) -> String {
    opt.device.clone().unwrap_or_else(|| info.catalog_name())
}

fn node_for(catalog: &Catalog, device: &str, opt: &RunOptions) -> Option<NodeSpec> {
    match &opt.node {
        Some(n) => catalog.node(n).ok(),
        None => catalog.default_node_for(device),
    }
}

/// Library versions and paths, for the metadata.
pub fn library_metadata() -> serde_json::Value {
    let paths: serde_json::Map<String, serde_json::Value> = crate::libs::resolved()
        .into_iter()
        .map(|(what, p)| {
            (
                what,
                json!(p
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "system loader path".into())),
            )
        })
        .collect();
    #[cfg(feature = "nccl")]
    let nccl = super::collectives::version();
    #[cfg(not(feature = "nccl"))]
    let nccl: Option<i32> = None;
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string));
    json!({
        "driver": driver,
        "cuda_bindings": "cudarc 0.19.10, cuda-13000, dynamic-loading",
        "cublaslt_version": gemm::version(),
        "nvrtc_version": crate::kernels::nvrtc_version().map(|(a, b)| format!("{a}.{b}")),
        "nccl_version": nccl,
        "cublas_version": "the cuBLASLt version (cuBLAS and cuBLASLt ship together)",
        "cudnn": "not used (the cuDNN SDPA path is not implemented; attention is the NVRTC kernels); its resolved path, if any, is under paths",
        "paths": paths,
    })
}

fn now_utc() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    output::utc_timestamp(s)
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> GpuError {
    GpuError::Unsupported(format!("cannot write {}: {e}", path.display()))
}

fn create(path: &Path) -> GpuResult<std::fs::File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
    }
    std::fs::File::create(path).map_err(|e| io_err(path, e))
}

/// Runs the plan's suites and writes the files under `out`; returns the paths written.
pub fn sweep(
    session: &Session,
    model: &ModelSpec,
    plan: &Plan,
    suites: &BTreeSet<Suite>,
    out: &Path,
    opt: &RunOptions,
) -> GpuResult<Vec<PathBuf>> {
    let catalog = Catalog::builtin();
    let info = &session.gpu.info;
    let device = device_name(info, opt);
    let spec = catalog
        .device(&device)
        .or_else(|_| catalog.device("h100"))
        .map_err(|e| GpuError::Unsupported(e.to_string()))?;
    let node = node_for(&catalog, &device, opt);
    let total = plan.measurements().len() as u64;
    let mut bench = Bench {
        gpu: &session.gpu,
        kernels: &session.kernels,
        lt: &session.lt,
        ceilings: Ceilings::from_device(&spec),
        graphs: opt.graphs,
        seed: opt.seed,
        progress: progress_bar(total),
        modes: BTreeSet::new(),
    };
    let started = std::time::Instant::now();
    let mut written = Vec::new();
    let cdir = output::compute_dir(out, &device, &model.name);
    if suites.contains(&Suite::Mlp) {
        let mut rows = Vec::new();
        let mut lm = Vec::new();
        for s in &plan.ranks {
            let tokens: Vec<u64> = plan
                .mlp
                .iter()
                .filter(|p| p.0 == s.tp)
                .map(|p| p.1)
                .collect();
            rows.extend(bench.mlp(s, &tokens, opt.max_model_len)?);
            let sampled: Vec<u64> = plan
                .lm_head
                .iter()
                .filter(|p| p.0 == s.tp)
                .map(|p| p.1)
                .collect();
            lm.extend(
                bench
                    .lm_head(s, &sampled)?
                    .into_iter()
                    .map(|(b, st)| (s.tp, b, st)),
            );
        }
        let p = cdir.join("mlp.csv");
        vidur_csv::write_mlp(create(&p)?, model, &rows).map_err(|e| io_err(&p, e))?;
        written.push(p);
        let p = cdir.join("lm_head.csv");
        vidur_csv::write_lm_head(create(&p)?, model, &lm).map_err(|e| io_err(&p, e))?;
        written.push(p);
    }
    if suites.contains(&Suite::Attention) {
        let mut rows = Vec::new();
        for s in &plan.ranks {
            let pts: Vec<_> = plan
                .attention
                .iter()
                .filter(|p| p.tp == s.tp)
                .copied()
                .collect();
            rows.extend(bench.attention(s, &pts, ATTENTION_BACKEND)?);
        }
        let p = cdir.join("attention.csv");
        vidur_csv::write_attention(create(&p)?, model, opt.max_model_len, &rows)
            .map_err(|e| io_err(&p, e))?;
        written.push(p);
    }
    let mut collective_note = serde_json::Value::Null;
    if suites.contains(&Suite::Collectives) {
        if plan.collectives.is_empty() {
            collective_note = json!(format!(
                "skipped: {} GPU(s) visible; NCCL needs at least 2 GPUs to measure a link",
                info.device_count
            ));
            bench.progress.println(format!(
                "collectives: {}",
                collective_note.as_str().unwrap_or("")
            ));
        } else {
            written.extend(collectives(&mut bench, plan, node.as_ref(), &device, out)?);
        }
    }
    bench.progress.finish_with_message("done");
    let meta = json!({
        "date_utc": now_utc(),
        "command_line": opt.command_line,
        "gpu": info,
        "catalog_device": device,
        "node": node.as_ref().map(|n| n.name.clone()),
        "model": model.name,
        "tensor_parallel_degrees": plan.ranks.iter().map(|s| s.tp).collect::<Vec<_>>(),
        "measurements": total,
        "wall_time_s": started.elapsed().as_secs_f64(),
        "libraries": library_metadata(),
        "timing": {
            "modes_used": bench.modes.iter().collect::<Vec<_>>(),
            "rule": "warm-up 2 block replays; samples = clamp(ceil(5 ms / (inner*t)), 5, 30) replays of a block of inner = clamp(ceil(20 us / t), 1, 64) calls captured in one CUDA graph; sample = block time / inner",
            "l2_policy": "weights rotated over copies >= 3x L2 (at most 16); attention rotates over disjoint KV pages (at most 8 sets); activations stay L2-warm as in a forward pass",
            "inputs": "pseudo-random non-zero bf16",
            "seed": opt.seed,
        },
        "attention_backend": ATTENTION_BACKEND,
        "kernel_registers": session.kernels.registers,
        "collectives": collective_note,
        "max_model_len": opt.max_model_len,
        "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    let p = out.join("metadata.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| io_err(&p, e))?;
    std::fs::write(&p, text + "\n").map_err(|e| io_err(&p, e))?;
    written.push(p);
    Ok(written)
}

#[cfg(feature = "nccl")]
fn collectives(
    bench: &mut Bench,
    plan: &Plan,
    node: Option<&NodeSpec>,
    device: &str,
    out: &Path,
) -> GpuResult<Vec<PathBuf>> {
    use crate::output::vidur_csv::CollectiveRow;
    let node_name = node
        .map(|n| n.name.clone())
        .unwrap_or_else(|| format!("{device}_node"));
    let max_dev = bench.gpu.info.device_count as u32;
    let mut rows = Vec::new();
    let ceilings = bench.ceilings;
    let est = |p: &crate::plan::CollectivePoint| {
        ceilings.estimate_s(
            &crate::plan::Work::Collective {
                bytes: p.size_bytes as f64,
                workers: p.num_workers,
                point_to_point: p.send_recv,
            },
            node,
        )
    };
    let workers: BTreeSet<u32> = plan.collectives.iter().map(|c| c.num_workers).collect();
    let pb = bench.progress.clone();
    let tick = move || pb.inc(1);
    for n in workers {
        let pts: Vec<_> = plan
            .collectives
            .iter()
            .filter(|c| c.num_workers == n)
            .copied()
            .collect();
        let stats = super::collectives::measure(n, &pts, &est, bench.graphs, &tick)?;
        bench.gpu.bind()?;
        for (p, s) in pts.into_iter().zip(stats) {
            rows.push(CollectiveRow {
                point: p,
                stats: s,
                devices_per_node: p.num_workers,
                max_devices_per_node: max_dev,
            });
        }
    }
    let dir = output::network_dir(out, &node_name);
    let mut written = Vec::new();
    for send_recv in [false, true] {
        let name = if send_recv {
            "send_recv.csv"
        } else {
            "all_reduce.csv"
        };
        let p = dir.join(name);
        vidur_csv::write_collective(create(&p)?, send_recv, &rows).map_err(|e| io_err(&p, e))?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(not(feature = "nccl"))]
fn collectives(
    _bench: &mut Bench,
    _plan: &Plan,
    _node: Option<&NodeSpec>,
    _device: &str,
    _out: &Path,
) -> GpuResult<Vec<PathBuf>> {
    Err(GpuError::Unsupported(
        "this profiler was built without the `nccl` feature; rebuild with default features to measure collectives".into(),
    ))
}

/// Runs `profiler check`; prints the tables and returns the report.
pub fn run_check(session: &Session, opt: &RunOptions) -> GpuResult<check::CheckReport> {
    let catalog = Catalog::builtin();
    let info = &session.gpu.info;
    let device = device_name(info, opt);
    let spec = catalog
        .device(&device)
        .or_else(|_| catalog.device("h100"))
        .map_err(|e| GpuError::Unsupported(e.to_string()))?;
    let kernels = check::correctness(&session.gpu, &session.kernels, &session.lt, opt.seed)?;
    println!(
        "== kernels against the CPU reference (relative L2 error, tolerance {})",
        check::TOLERANCE
    );
    for k in &kernels {
        println!(
            "{:<6} {:>10.3e}  {}",
            if k.pass { "ok" } else { "FAIL" },
            k.rel_l2_error,
            k.name
        );
    }
    #[cfg(feature = "nccl")]
    {
        match super::collectives::one_rank_all_reduce(&session.gpu) {
            Ok(d) => println!(
                "{:<6} {:>10.3e}  nccl 1-rank all_reduce (max abs difference)",
                if d == 0.0 { "ok" } else { "FAIL" },
                d
            ),
            Err(e) => println!("skip   nccl 1-rank all_reduce: {e}"),
        }
    }
    let model = catalog
        .model("meta-llama/Meta-Llama-3-8B")
        .map_err(|e| GpuError::Unsupported(e.to_string()))?;
    let mut bench = Bench {
        gpu: &session.gpu,
        kernels: &session.kernels,
        lt: &session.lt,
        ceilings: Ceilings::from_device(&spec),
        graphs: opt.graphs,
        seed: opt.seed,
        progress: indicatif::ProgressBar::hidden(),
        modes: BTreeSet::new(),
    };
    let (copy, gemm, rates) = super::ceilings::rates(&mut bench, &model)?;
    println!(
        "== ceilings on {}: device copy {:.0} GB/s (read + write), bf16 GEMM 8192^3 {:.0} TFLOP/s",
        info.name, copy, gemm
    );
    println!("== Llama-3-8B TP1 operators (fraction of the measured ceiling)");
    for r in &rates {
        let rate = match (r.tflops, r.gb_per_s) {
            (Some(t), _) => format!("{t:8.1} TFLOP/s"),
            (_, Some(g)) => format!("{g:8.0} GB/s   "),
            _ => String::new(),
        };
        println!(
            "{:<44} {:>9.4} ms {rate} {:>5.0} %",
            r.name,
            r.median_ms,
            100.0 * r.fraction_of_ceiling
        );
    }
    Ok(check::CheckReport {
        kernels,
        copy_gb_per_s: copy,
        gemm_tflops: gemm,
        rates,
    })
}
