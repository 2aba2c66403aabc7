//! `profiler` command line: `plan` (no GPU), `mlp | attention | collectives | all` (sweeps that
//! write Vidur's CSV layout), `check` (kernels against CPU references, ceilings) and
//! `compile-kernels` (NVRTC only, no GPU). Every option is documented in `docs/profiler.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use predictor::Catalog;
use profiler::gpu::run::{self, RunOptions};
use profiler::plan::{GridKind, Plan, PlanConfig, Suite};

#[derive(Parser)]
#[command(
    name = "profiler",
    version,
    about = "Times LLM-inference operators on NVIDIA GPUs and writes Vidur-compatible profiles"
)]
struct Cli {
    /// Extra directory holding CUDA libraries (repeatable); searched before $PROFILER_CUDA_LIB_DIRS,
    /// Python's site-packages/nvidia/*/lib and /usr/local/cuda/lib64.
    #[arg(long = "cuda-lib-dir", global = true, value_name = "DIR")]
    cuda_lib_dirs: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the sweep (operators, shapes, point counts, estimated GPU time); needs no GPU.
    Plan(PlanArgs),
    /// Time the per-token operators (mlp.csv, lm_head.csv).
    Mlp(SweepArgs),
    /// Time attention and the KV-cache write (attention.csv).
    Attention(SweepArgs),
    /// Time NCCL all-reduce and send/recv (all_reduce.csv, send_recv.csv); needs 2 or more GPUs.
    Collectives(SweepArgs),
    /// All of the above.
    All(SweepArgs),
    /// Check every kernel against its CPU reference and measure the device's ceilings.
    Check(CheckArgs),
    /// Compile every kernel with NVRTC for the given architectures (no GPU needed).
    CompileKernels(CompileArgs),
}

#[derive(Args, Clone)]
struct PlanArgs {
    /// Catalog model name (`meta-llama/Meta-Llama-3-8B` or `Meta-Llama-3-8B`) or a config.json path.
    #[arg(long)]
    model: String,
    /// Tensor-parallel degrees, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    tp: Vec<u32>,
    /// The small smoke-test grid instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Cap on tokens per batch (vLLM's max_num_batched_tokens).
    #[arg(long, default_value_t = 16384)]
    max_tokens: u64,
    /// Longest sequence to profile (default: the model's max_position_embeddings).
    #[arg(long)]
    max_model_len: Option<u64>,
    /// Cap on a decode batch's KV cache over all layers on one GPU, GB.
    #[arg(long, default_value_t = 40.0)]
    kv_budget_gb: f64,
    /// Catalog device for the estimate (plan) or the output path (sweeps; default: from the GPU name).
    #[arg(long)]
    device: Option<String>,
    /// Catalog node whose GPU count and links the collectives use (default: the device's DGX node).
    #[arg(long)]
    node: Option<String>,
    /// GPUs for collectives in `plan` (default: the node's GPUs; sweeps use the visible GPUs).
    #[arg(long)]
    gpus: Option<u32>,
}

#[derive(Args, Clone)]
struct SweepArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Output directory (Vidur's layout is created under it).
    #[arg(long)]
    out: PathBuf,
    /// GPU ordinal for the compute sweeps.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Launch timing blocks directly instead of capturing them in CUDA graphs.
    #[arg(long)]
    no_graphs: bool,
    /// Seed of inputs and page tables.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args, Clone)]
struct CheckArgs {
    /// GPU ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Write check.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Launch timing blocks directly instead of capturing them in CUDA graphs.
    #[arg(long)]
    no_graphs: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args, Clone)]
struct CompileArgs {
    /// Architectures, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sm_80,sm_86,sm_90")]
    arch: Vec<String>,
    /// Write `<arch>.ptx`, `<arch>.cubin` and `<arch>.log` here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run_cli(cli);
    profiler::libs::remove_link_dir();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("profiler: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn plan_config(a: &PlanArgs, suites: BTreeSet<Suite>, gpus: u32) -> Result<PlanConfig> {
    let catalog = Catalog::builtin();
    let model = catalog.model(&a.model)?;
    if a.kv_budget_gb <= 0.0 || a.kv_budget_gb.is_nan() {
        bail!("--kv-budget-gb must be positive (got {})", a.kv_budget_gb);
    }
    if a.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    Ok(PlanConfig {
        max_model_len: a
            .max_model_len
            .unwrap_or(model.max_position_embeddings as u64),
        model,
        tps: a.tp.clone(),
        grid: if a.quick {
            GridKind::Quick
        } else {
            GridKind::Full
        },
        max_tokens: a.max_tokens,
        kv_budget_bytes: (a.kv_budget_gb * 1e9) as u64,
        gpus,
        suites,
    })
}

fn all_suites() -> BTreeSet<Suite> {
    [Suite::Mlp, Suite::Attention, Suite::Collectives].into()
}

fn run_cli(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Plan(a) => {
            print_plan(&a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CompileKernels(a) => {
            prepare_libraries(&cli.cuda_lib_dirs)?;
            compile_kernels(&a)
        }
        Command::Check(a) => {
            prepare_libraries(&cli.cuda_lib_dirs)?;
            let session = run::open(a.gpu)?;
            let opt = RunOptions {
                gpu: a.gpu,
                device: None,
                node: None,
                graphs: !a.no_graphs,
                seed: a.seed,
                max_model_len: 8192,
                command_line: std::env::args().collect(),
            };
            let report = run::run_check(&session, &opt)?;
            if let Some(dir) = &a.out {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let p = dir.join("check.json");
                let text = serde_json::to_string_pretty(&serde_json::json!({
                    "gpu": session.gpu.info,
                    "libraries": run::library_metadata(),
                    "report": report,
                }))?;
                std::fs::write(&p, text + "\n")
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if report.all_pass() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "profiler: some kernels disagree with their CPU reference (see FAIL above)"
                );
                Ok(ExitCode::from(1))
            }
        }
        Command::Mlp(a) => sweep(&cli.cuda_lib_dirs, a, [Suite::Mlp].into()),
        Command::Attention(a) => sweep(&cli.cuda_lib_dirs, a, [Suite::Attention].into()),
        Command::Collectives(a) => sweep(&cli.cuda_lib_dirs, a, [Suite::Collectives].into()),
        Command::All(a) => sweep(&cli.cuda_lib_dirs, a, all_suites()),
    }
}

/// Finds the CUDA libraries and re-executes with them on the loader path (once).
fn prepare_libraries(dirs: &[PathBuf]) -> Result<()> {
    profiler::libs::reexec_with_library_path(dirs)
        .context("re-executing the profiler with the CUDA library path")
}

fn sweep(dirs: &[PathBuf], a: SweepArgs, suites: BTreeSet<Suite>) -> Result<ExitCode> {
    // validate the model, TP degrees and kernel support before touching the GPU
    let pre = Plan::new(&plan_config(&a.plan, suites.clone(), 1)?)?;
    if suites.contains(&Suite::Attention) {
        for s in &pre.ranks {
            if let Err(why) = s.attention_supported() {
                bail!("{why}");
            }
        }
    }
    prepare_libraries(dirs)?;
    let session = run::open(a.gpu)?;
    let gpus = session.gpu.info.device_count as u32;
    if suites == BTreeSet::from([Suite::Collectives]) && gpus < 2 {
        bail!(
            "collectives need at least 2 GPUs and this machine has {gpus}; NCCL cannot time a link on one GPU (`profiler check` runs a 1-rank all-reduce as a plumbing test)"
        );
    }
    let cfg = plan_config(&a.plan, suites.clone(), gpus)?;
    let plan = Plan::new(&cfg)?;
    let opt = RunOptions {
        gpu: a.gpu,
        device: a.plan.device.clone(),
        node: a.plan.node.clone(),
        graphs: !a.no_graphs,
        seed: a.seed,
        max_model_len: cfg.max_model_len,
        command_line: std::env::args().collect(),
    };
    let files = run::sweep(&session, &cfg.model, &plan, &suites, &a.out, &opt)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn compile_kernels(a: &CompileArgs) -> Result<ExitCode> {
    match profiler::kernels::nvrtc_version() {
        Some((maj, min)) => println!("NVRTC {maj}.{min}"),
        None => bail!("{}", profiler::kernels::CompileError::Missing),
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = a
            .arch
            .iter()
            .map(|arch| s.spawn(move || (arch.clone(), profiler::kernels::compile(arch))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("compile thread"))
            .collect()
    });
    let mut failed = 0;
    for (arch, r) in results {
        match r {
            Ok(c) => {
                let entries = profiler::kernels::entry_points(&c.ptx);
                let missing: Vec<&str> = profiler::kernels::KERNEL_NAMES
                    .iter()
                    .copied()
                    .filter(|k| !entries.iter().any(|e| e == k))
                    .collect();
                if !missing.is_empty() {
                    failed += 1;
                    println!("{arch}: FAIL, entry points missing from the PTX: {missing:?}");
                    continue;
                }
                println!(
                    "{arch}: ok, {} kernels, PTX {} bytes, CUBIN {} bytes",
                    entries.len(),
                    c.ptx.len(),
                    c.cubin.len()
                );
                for (k, regs, spill) in c.register_report() {
                    println!("  {k:<22} {regs:>4} registers, {spill} bytes spilled");
                }
                if let Some(dir) = &a.out {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    std::fs::write(dir.join(format!("{arch}.ptx")), &c.ptx)?;
                    std::fs::write(dir.join(format!("{arch}.cubin")), &c.cubin)?;
                    std::fs::write(dir.join(format!("{arch}.log")), &c.log)?;
                }
            }
            Err(e) => {
                failed += 1;
                println!("{arch}: FAIL\n{e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} architecture(s) failed to compile");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(a: &PlanArgs) -> Result<()> {
    let catalog = Catalog::builtin();
    let device = catalog.device(a.device.as_deref().unwrap_or("h100"))?;
    let node = match &a.node {
        Some(n) => Some(catalog.node(n)?),
        None => catalog.default_node_for(&device.name),
    };
    let gpus = a
        .gpus
        .or(node.as_ref().map(|n| n.devices_per_node))
        .unwrap_or(1);
    let cfg = plan_config(a, all_suites(), gpus)?;
    let plan = Plan::new(&cfg)?;
    let grid = if a.quick { "quick" } else { "full" };
    println!(
        "{} on {} ({} grid, max_tokens {}, max_model_len {}, {} GPU(s) for collectives{})",
        cfg.model.name,
        device.display_name,
        grid,
        cfg.max_tokens,
        cfg.max_model_len,
        gpus,
        node.as_ref()
            .map(|n| format!(", node {}", n.name))
            .unwrap_or_default()
    );
    println!("\nGEMM shapes per rank (N x K; M = tokens):");
    println!(
        "{:>3} {:>14} {:>14} {:>14} {:>14} {:>14}  heads q/kv",
        "tp", "qkv", "o", "gate_up", "down", "lm_head"
    );
    for s in &plan.ranks {
        let f = |g: profiler::shapes::GemmShape| format!("{}x{}", g.n, g.k);
        println!(
            "{:>3} {:>14} {:>14} {:>14} {:>14} {:>14}  {}/{}",
            s.tp,
            f(s.qkv),
            f(s.out),
            f(s.gate_up),
            f(s.down),
            f(s.lm_head),
            s.q_heads,
            s.kv_heads
        );
    }
    println!("\nOperators: mlp.csv {:?}; lm_head.csv; attention.csv attn_kv_cache_save + attn_prefill | attn_decode (NVRTC paged kernels); all_reduce.csv, send_recv.csv (NCCL)",
        profiler::plan::MlpOp::ALL.iter().map(|o| o.vidur_name()).collect::<Vec<_>>());
    println!("\nPoints per TP:");
    println!(
        "{:>3} {:>10} {:>8} {:>8} {:>7} {:>13}",
        "tp", "mlp rows", "lm_head", "prefill", "decode", "measurements"
    );
    let measurements = plan.measurements();
    for s in &plan.ranks {
        let n_m = plan.mlp.iter().filter(|p| p.0 == s.tp).count();
        let n_l = plan.lm_head.iter().filter(|p| p.0 == s.tp).count();
        let n_p = plan
            .attention
            .iter()
            .filter(|p| p.tp == s.tp && p.is_prefill)
            .count();
        let n_d = plan
            .attention
            .iter()
            .filter(|p| p.tp == s.tp && !p.is_prefill)
            .count();
        println!(
            "{:>3} {:>10} {:>8} {:>8} {:>7} {:>13}",
            s.tp,
            n_m,
            n_l,
            n_p,
            n_d,
            n_m * 10 + n_l + 2 * (n_p + n_d)
        );
    }
    for s in &plan.ranks {
        if let Err(why) = s.attention_supported() {
            println!("note: TP {}: {why}", s.tp);
        }
    }
    let workers: BTreeSet<u32> = plan.collectives.iter().map(|c| c.num_workers).collect();
    println!(
        "collectives: {} points over {:?} GPUs{}",
        plan.collectives.len(),
        workers,
        if plan.collectives.is_empty() {
            " (none: needs 2 or more GPUs)"
        } else {
            ""
        }
    );
    if !plan.sparse.is_empty() {
        let mut by_op: std::collections::BTreeMap<&str, (usize, BTreeSet<u32>)> =
            Default::default();
        for p in &plan.sparse {
            let e = by_op.entry(p.op.name()).or_default();
            e.0 += 1;
            e.1.insert(p.tp);
        }
        println!("\nMoE / MLA operators (planned; the sweeps do not time them yet, so profiled runs answer them with the roofline):");
        for (op, (n, tps)) in &by_op {
            let what = match *op {
                "moe_experts" => "per (TP, EP, touched experts, rows per expert)",
                "all_to_all" => "per (EP group, tokens)",
                "mla_decode" => "per (TP, batch, context)",
                _ => "per (TP, tokens)",
            };
            let over = if *op == "all_to_all" { "GPUs" } else { "TP" };
            println!("  {op:<20} {n:>5} points {what}, {over} {tps:?}");
        }
        println!(
            "  {} points; estimated GPU time {:.1} s once kernels exist",
            plan.sparse.len(),
            plan.sparse_estimate_s(&device, node.as_ref())
        );
    }
    let e = plan.estimate(&device, node.as_ref());
    println!(
        "\nTotal: {} measurements; estimated GPU time {:.1} s, with host overhead {:.1} s ({:.1} min); plus start-up (context, library loading, NVRTC) of about 10-30 s",
        measurements.len(),
        e.gpu_s,
        e.total_s(),
        e.total_s() / 60.0
    );
    Ok(())
}
