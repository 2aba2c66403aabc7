//! `predictor`: fit operator models to profiles (with held-out accuracy and prediction tables), and
//! predict the time of one batch on one pipeline stage. Options are documented in
//! `docs/predictor.md`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use predictor::exec::profiled::{needed_ops, tables_from_fit};
use predictor::exec::roofline::Roofline;
use predictor::exec::tables::write_tables;
use predictor::exec::tabulated::Tabulated;
use predictor::fit::accuracy::accuracy;
use predictor::fit::case::{fit_case, CaseInputs, FittedCase};
use predictor::fit::select::SearchConfig;
use predictor::precision::{DType, KvCacheDType, Quantization};
use predictor::setup::{build_execution_model, BackendChoice, ExecSetup};
use predictor::table::TableBounds;
use predictor::{BackendKind, BatchShape, Catalog, Parallelism, Precision, PrecisionConfig};

#[derive(Parser)]
#[command(
    name = "predictor",
    version,
    about = "Fit operator-time models to profiles and predict batch times"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fit every operator of a model on a device (and its node's network), report held-out
    /// accuracy and write the models and prediction tables.
    // negative numbers reach the value parsers, which name the flag
    #[command(allow_negative_numbers = true)]
    Fit(FitArgs),
    /// Print the per-operator time of one batch on one pipeline stage.
    #[command(allow_negative_numbers = true)]
    Predict(PredictArgs),
}

#[derive(Args)]
struct CatalogArgs {
    /// Directory of extra catalog TOML files (models/, devices/, nodes/) over the built-in catalog.
    #[arg(long)]
    catalog: Option<PathBuf>,
}

impl CatalogArgs {
    fn load(&self) -> Result<Catalog> {
        Ok(match &self.catalog {
            Some(d) => Catalog::with_overrides(d)?,
            None => Catalog::builtin(),
        })
    }
}

#[derive(Args)]
struct FitArgs {
    /// Profiles directory in Vidur's layout (compute/<device>/<org>/<model>/, network/<node>/).
    #[arg(long)]
    profiles: PathBuf,
    /// Device catalog name (a100, h100, ...).
    #[arg(long)]
    device: String,
    /// Model catalog name or path of a Hugging Face config.json.
    #[arg(long)]
    model: String,
    /// Node catalog name whose network profiles to fit (default: the device's DGX node).
    #[arg(long)]
    node: Option<String>,
    /// TP degrees to fit, comma-separated (default: every TP in mlp.csv that suits the model).
    #[arg(long, value_delimiter = ',')]
    tp: Option<Vec<u32>>,
    /// Output directory: models.json, xgboost/*.json, accuracy.json.
    #[arg(long)]
    out: PathBuf,
    /// Where to write prediction tables in Vidur's dump format, one subdirectory per TP
    /// (default: <out>/tables).
    #[arg(long)]
    export_tables: Option<PathBuf>,
    /// Do not fit the node's network profiles (compute operators only).
    #[arg(long)]
    skip_network: bool,
    /// Skip the held-out accuracy (cross-validation) step.
    #[arg(long)]
    no_accuracy: bool,
    /// Outer cross-validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed of the cross-validation shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest token count (and KV length) of the prediction tables.
    #[arg(long, default_value_t = 4096)]
    max_tokens: u64,
    /// Largest decode batch of the prediction tables.
    #[arg(long, default_value_t = 128)]
    max_batch_size: u64,
    /// Largest prefill chunk of the prediction tables.
    #[arg(long, default_value_t = 4096)]
    max_prefill_chunk: u64,
    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// Profiled when a profile exists, else the engine model.
    Auto,
    /// The engine model of vLLM V1 with the shipped calibration.
    Engine,
    /// Fitted from profiles.
    Profiled,
    /// Vidur's formula over the roofline.
    Roofline,
    /// Prediction tables.
    Tables,
}

#[derive(Args)]
struct PredictArgs {
    /// Model catalog name or path of a Hugging Face config.json.
    #[arg(long)]
    model: String,
    /// Device catalog name.
    #[arg(long)]
    device: String,
    /// Node catalog name (default: the device's DGX node).
    #[arg(long)]
    node: Option<String>,
    /// Tensor-parallel degree.
    #[arg(long, default_value_t = 1)]
    tp: u32,
    /// Pipeline stages.
    #[arg(long, default_value_t = 1)]
    pp: u32,
    /// Pipeline stage to time (0-based).
    #[arg(long, default_value_t = 0)]
    stage: u32,
    /// Expert-parallel degree of MoE layers, dividing --tp (vLLM: --enable-expert-parallel).
    #[arg(long, default_value_t = 1)]
    ep: u32,
    /// Activation and 16-bit weight type, as vLLM's --dtype.
    #[arg(long, value_enum, default_value_t = DType::Auto)]
    dtype: DType,
    /// Weight quantization, as vLLM's --quantization (auto: as the checkpoint is published).
    #[arg(long, value_enum, default_value_t = Quantization::Auto)]
    quantization: Quantization,
    /// KV-cache element type, as vLLM's --kv-cache-dtype.
    #[arg(long, value_enum, default_value_t = KvCacheDType::Auto)]
    kv_cache_dtype: KvCacheDType,
    /// Prefill chunk sizes, one per request, comma-separated.
    #[arg(long, value_delimiter = ',')]
    prefill: Vec<u64>,
    /// Tokens already cached for each prefill chunk (default 0 for all).
    #[arg(long, value_delimiter = ',')]
    prefill_kv: Vec<u64>,
    /// Number of decoding requests.
    #[arg(long, default_value_t = 0)]
    decode: u32,
    /// Context length of each decoding request.
    #[arg(long, default_value_t = 0)]
    kv: u64,
    /// Profiles directories in Vidur's layout, searched in order (repeatable).
    #[arg(long)]
    profiles: Vec<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Prediction tables in Vidur's dump format (for --backend tables).
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Cache directory for fitted models.
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArgs,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Fit(a) => run_fit(a),
        Cmd::Predict(a) => run_predict(a),
    };
    if let Err(e) = r {
        eprintln!("error: {}", predictor::errtext::error_text(e.as_ref()));
        std::process::exit(1);
    }
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn run_fit(a: FitArgs) -> Result<()> {
    let cat = a.catalog.load()?;
    let model = cat.model(&a.model)?;
    let device = cat.device(&a.device)?;
    let node = match &a.node {
        Some(n) => cat.node(n)?,
        None => cat.default_node_for(&device.name).with_context(|| {
            format!(
                "no node of device {} in the catalog; give --node",
                device.name
            )
        })?,
    };
    if !a.profiles.is_dir() {
        bail!("profiles directory {} does not exist", a.profiles.display());
    }
    let dirs = [a.profiles.clone()];
    let mut inputs = CaseInputs::load(&dirs, &model, &device.name, Some(&node), a.tp.as_deref())?;
    if a.skip_network {
        inputs.all_reduce = None;
        inputs.send_recv = None;
    }
    check_fit_inputs(&inputs, &a, &device.name, &model.name, &node.name)?;
    let cfg = SearchConfig::default();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;

    let t0 = Instant::now();
    let fitted = fit_case(&inputs, &cfg)?;
    let fit_s = t0.elapsed().as_secs_f64();
    fitted.save(&a.out.join("models.json"))?;
    write_boosters(&fitted, &a.out)?;

    let t1 = Instant::now();
    let bounds = TableBounds {
        max_tokens: a.max_tokens,
        max_batch_size: a.max_batch_size,
        max_prefill_chunk: a.max_prefill_chunk,
    };
    let tables_root = a
        .export_tables
        .clone()
        .unwrap_or_else(|| a.out.join("tables"));
    for &tp in &inputs.tps {
        // A two-stage layout, so that the send/recv table is written too.
        let par = Parallelism::new(tp, 2);
        let tables = tables_from_fit(&fitted, &model, &node, par, bounds)?;
        let r = Roofline::new(&model, &device, &node, par, Default::default());
        let backend = Tabulated::new(
            tables,
            r,
            BackendKind::Profiled,
            String::new(),
            needed_ops(&model, par),
        );
        let dir = tables_root.join(format!("tp{tp}"));
        write_tables(&backend, &needed_ops(&model, par), bounds, &dir)?;
    }
    let tab_s = t1.elapsed().as_secs_f64();

    println!(
        "fitted {} models for {} on {} (node {}) in {:.2} s; tables in {:.2} s -> {}",
        fitted.ops.len(),
        model.name,
        device.name,
        node.name,
        fit_s,
        tab_s,
        tables_root.display()
    );
    for o in &fitted.ops {
        println!("  {:<45} {}", o.key.to_string(), o.chosen);
    }
    if !a.no_accuracy {
        let t2 = Instant::now();
        let rep = accuracy(&inputs.datasets()?, &cfg, a.folds, a.seed)?;
        write_json(&a.out.join("accuracy.json"), &rep)?;
        println!(
            "held-out accuracy ({}-fold, seed {}, {:.2} s):",
            a.folds,
            a.seed,
            t2.elapsed().as_secs_f64()
        );
        print!("{}", rep.table());
    }
    Ok(())
}

/// `predictor fit` names its model and device, so a missing compute profile is an error (not a
/// fit of the network alone with the rest left to the roofline); a missing attention or network
/// profile is said.
fn check_fit_inputs(
    inputs: &CaseInputs,
    a: &FitArgs,
    device: &str,
    model: &str,
    node: &str,
) -> Result<()> {
    if inputs.mlp.is_none() {
        let compute = a.profiles.join("compute").join(device);
        let mut found = Vec::new();
        for org in std::fs::read_dir(&compute).into_iter().flatten().flatten() {
            for m in std::fs::read_dir(org.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if m.path().join("mlp.csv").is_file() {
                    found.push(format!(
                        "{}/{}",
                        org.file_name().to_string_lossy(),
                        m.file_name().to_string_lossy()
                    ));
                }
            }
        }
        found.sort();
        bail!(
            "{} has no compute profile of {model} on {device} (no {}); profile it first (docs/profiling-a-new-gpu.md) or check --model and --device ({})",
            a.profiles.display(),
            compute.join(model).join("mlp.csv").display(),
            if found.is_empty() {
                format!("no model has an mlp.csv under {}", compute.display())
            } else {
                format!("profiled on {device}: {}", found.join(", "))
            }
        );
    }
    if inputs.attention.is_none() {
        println!("note: no attention.csv beside mlp.csv: the attention operators are not fitted (the simulator uses the roofline for them)");
    }
    if !a.skip_network && inputs.all_reduce.is_none() && inputs.send_recv.is_none() {
        println!("note: no network profile of node {node} in {}: the collectives are not fitted (the simulator uses the roofline for them); --skip-network silences this", a.profiles.display());
    }
    Ok(())
}

/// Writes each XGBoost model as its own JSON file (loadable by Python's xgboost).
#[cfg(feature = "xgboost")]
fn write_boosters(fitted: &FittedCase, out: &Path) -> Result<()> {
    use predictor::fit::Model;
    for o in &fitted.ops {
        if let Model::Boosted(b) = &o.model {
            let dir = out.join("xgboost");
            std::fs::create_dir_all(&dir)?;
            let name = match o.key.devices_per_node {
                Some(d) => format!("{}_tp{}_dpn{d}.json", o.key.op, o.key.tp),
                None => format!("{}_tp{}.json", o.key.op, o.key.tp),
            };
            std::fs::write(dir.join(name), &b.xgboost_json)?;
        }
    }
    Ok(())
}

/// Without XGBoost there are no boosted models to write.
#[cfg(not(feature = "xgboost"))]
fn write_boosters(_fitted: &FittedCase, _out: &Path) -> Result<()> {
    Ok(())
}

fn run_predict(a: PredictArgs) -> Result<()> {
    let cat = a.catalog.load()?;
    let model = cat.model(&a.model)?;
    let device = cat.device(&a.device)?;
    let node = match &a.node {
        Some(n) => cat.node(n)?,
        None => cat.default_node_for(&device.name).with_context(|| {
            format!(
                "no node of device {} in the catalog; give --node",
                device.name
            )
        })?,
    };
    let par = Parallelism::new(a.tp, a.pp).with_ep(a.ep);
    par.validate(&model, Some(&node))?;
    let precision = Precision::resolve(
        &model,
        &device,
        &PrecisionConfig {
            dtype: a.dtype,
            quantization: a.quantization,
            kv_cache_dtype: a.kv_cache_dtype,
        },
    )?;
    if a.stage >= a.pp {
        bail!(
            "--stage {} is not a stage of a {}-stage pipeline (0..{})",
            a.stage,
            a.pp,
            a.pp
        );
    }
    if !a.prefill_kv.is_empty() && a.prefill_kv.len() != a.prefill.len() {
        bail!(
            "--prefill-kv has {} values but --prefill has {}; give one per prefill chunk",
            a.prefill_kv.len(),
            a.prefill.len()
        );
    }
    let mut batch = BatchShape::new();
    for (i, c) in a.prefill.iter().enumerate() {
        batch.add_prefill(*c, a.prefill_kv.get(i).copied().unwrap_or(0));
    }
    for _ in 0..a.decode {
        batch.add_decode(a.kv);
    }
    if batch.is_empty() {
        bail!("the batch is empty: give --prefill and/or --decode");
    }
    let mut setup = ExecSetup::new(model.clone(), device.clone(), node.clone(), par);
    setup.precision = precision;
    setup.backend = match a.backend {
        BackendArg::Auto => BackendChoice::Auto,
        BackendArg::Engine => BackendChoice::Engine,
        BackendArg::Profiled => BackendChoice::Profiled,
        BackendArg::Roofline => BackendChoice::Roofline,
        BackendArg::Tables => BackendChoice::Tables,
    };
    if let Some((cal, exact)) = predictor::exec::engine::Calibration::builtin(
        predictor::exec::engine::calibration::DEFAULT_ENGINE_VERSION,
        &device.name,
    ) {
        setup.engine_coefficients = cal.coefficients;
        setup.calibration = if exact {
            format!("calibration {}", cal.name())
        } else {
            format!("calibration {} applied to {}", cal.name(), device.name)
        };
    }
    setup.profiles_dirs = a.profiles.clone();
    setup.tables_dir = a.tables.clone();
    setup.cache_dir = a.cache.clone();
    let exec = build_execution_model(&setup)?;
    let info = exec.info();
    let t = exec.stage_time(&batch, a.stage);
    println!(
        "{} on {} ({}), TP {} PP {} EP {}, {}, stage {}: {} prefill chunk(s) ({} tokens), {} decode(s) at context {}",
        model.name,
        device.name,
        node.name,
        a.tp,
        a.pp,
        a.ep,
        precision.label(),
        a.stage,
        batch.num_prefills,
        batch.prefill_tokens,
        batch.num_decodes,
        a.kv
    );
    println!("backend: {} ({})", info.kind, info.source);
    let answering = match info.kind {
        BackendKind::Engine => "the engine model",
        _ => "the roofline",
    };
    if matches!(info.kind, BackendKind::Roofline | BackendKind::Engine) && !setup.has_profile() {
        if a.profiles.is_empty() {
            println!("  no profile directory given (--profiles), so {answering} answers");
        } else {
            println!(
                "  no profile of {} on {} in the given directories, so {answering} answers",
                model.name, device.name
            );
        }
    }
    for (op, k) in &info.fallbacks {
        println!("  {op}: answered by the {k} backend");
    }
    println!("{:<26} {:>12}", "operator", "ms (stage)");
    for (op, ms) in t.ops_ms.iter() {
        if ms != 0.0 || needed_ops(&model, par).contains(&op) {
            println!("{:<26} {:>12.6}", op.name(), ms);
        }
    }
    println!("{:<26} {:>12.6}", "total", t.total_ms());
    println!("out-of-grid lookups: {}", exec.out_of_grid_lookups());
    Ok(())
}
