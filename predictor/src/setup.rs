//! Building the execution model the simulator uses: the one entry point that picks a backend
//! (profiled when a profile exists for the model and device, the calibrated engine model
//! otherwise; the roofline or prediction tables when asked) and says which one answered.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{DeviceSpec, ModelSpec, NodeSpec};
use crate::exec::engine::{EngineCoefficients, EngineModel, EngineSettings};
use crate::exec::profiled::{build_profiled, needed_ops};
use crate::exec::roofline::{Roofline, RooflineEfficiency};
use crate::exec::tables::read_tables;
use crate::exec::tabulated::Tabulated;
use crate::exec::{BackendKind, ExecParams, ExecutionModel, StageModel};
use crate::parallel::Parallelism;
use crate::precision::Precision;
use crate::profile::ProfileLayout;
use crate::table::TableBounds;

/// Which backend to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Profiled if `profiles_dir` holds a profile of this model on this device, else the engine
    /// model.
    #[default]
    Auto,
    /// The engine model with its calibrated coefficients.
    Engine,
    /// Profiled; an error if no profile is found.
    Profiled,
    /// The roofline, whatever profiles exist.
    Roofline,
    /// Prediction tables in Vidur's dump format, from `tables_dir`.
    Tables,
}

/// Everything needed to build an execution model for one replica layout.
#[derive(Debug, Clone)]
pub struct ExecSetup {
    /// The model.
    pub model: ModelSpec,
    /// The GPU.
    pub device: DeviceSpec,
    /// The node the replica's GPUs sit in.
    pub node: NodeSpec,
    /// TP × PP.
    pub parallelism: Parallelism,
    /// Formula knobs.
    pub params: ExecParams,
    /// Roofline efficiencies (also used where the profiled backend falls back to the roofline).
    pub roofline: RooflineEfficiency,
    /// Backend choice.
    pub backend: BackendChoice,
    /// Directories in Vidur's layout (`compute/<device>/<org>/<model>/mlp.csv`, `network/<node>/...`),
    /// searched in order.
    pub profiles_dirs: Vec<PathBuf>,
    /// Directory of prediction tables (for [`BackendChoice::Tables`]).
    pub tables_dir: Option<PathBuf>,
    /// Where fitted models are cached (keyed by the data's hash); `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Bounds of the profiled backend's prediction tables (Vidur's defaults).
    pub table_bounds: TableBounds,
    /// Weight, activation and KV-cache precision.
    pub precision: Precision,
    /// The engine model's settings.
    pub engine: EngineSettings,
    /// The engine model's coefficients.
    pub engine_coefficients: EngineCoefficients,
    /// What the coefficients are (a calibration's name and file), for the user.
    pub calibration: String,
}

impl ExecSetup {
    /// A set-up with Vidur's formula defaults, the default roofline, backend `Auto`, no profile
    /// directories, no tables and no cache; set the public fields to change them.
    pub fn new(
        model: ModelSpec,
        device: DeviceSpec,
        node: NodeSpec,
        parallelism: Parallelism,
    ) -> Self {
        ExecSetup {
            model,
            device,
            node,
            parallelism,
            params: ExecParams::default(),
            roofline: RooflineEfficiency::default(),
            backend: BackendChoice::Auto,
            profiles_dirs: Vec::new(),
            tables_dir: None,
            cache_dir: None,
            table_bounds: TableBounds::default(),
            precision: Precision::BF16,
            engine: EngineSettings::default(),
            engine_coefficients: EngineCoefficients::default(),
            calibration: "default coefficients (uncalibrated)".into(),
        }
    }

    /// The backend `build_execution_model` will use: `Auto` resolved.
    pub fn resolved_backend(&self) -> BackendChoice {
        match self.backend {
            BackendChoice::Auto if self.has_profile() => BackendChoice::Profiled,
            BackendChoice::Auto => BackendChoice::Engine,
            ref b => b.clone(),
        }
    }

    /// The roofline backend of this set-up (the model itself, or the fallback of the table backends).
    pub fn roofline_backend(&self) -> Roofline {
        Roofline::new(
            &self.model,
            &self.device,
            &self.node,
            self.parallelism,
            self.roofline,
        )
        .with_precision(&self.precision)
    }

    /// True when one of `profiles_dirs` holds `compute/<device>/<org>/<model>/mlp.csv`.
    pub fn has_profile(&self) -> bool {
        ProfileLayout::find_compute(&self.profiles_dirs, &self.device.name, &self.model.name)
            .is_some()
    }
}

/// Errors while building an execution model.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A backend was asked for but its data is missing.
    #[error("{0}")]
    Missing(String),
    /// Anything else (reading or fitting profiles).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Builds the execution model for `setup`.
///
/// `Auto` uses the profiled backend when one of `profiles_dirs` holds
/// `compute/<device>/<org>/<model>/mlp.csv` for this model and device, else the engine model.
pub fn build_execution_model(setup: &ExecSetup) -> Result<Arc<dyn ExecutionModel>, SetupError> {
    match setup.resolved_backend() {
        BackendChoice::Roofline => Ok(Arc::new(roofline_model(setup))),
        BackendChoice::Auto | BackendChoice::Engine => Ok(Arc::new(engine_model(setup))),
        BackendChoice::Profiled => Ok(Arc::new(profiled_model(setup)?)),
        BackendChoice::Tables => Ok(Arc::new(tables_model(setup)?)),
    }
}

/// The engine model for `setup`.
pub fn engine_model(setup: &ExecSetup) -> EngineModel {
    EngineModel::new(
        &setup.model,
        &setup.device,
        &setup.node,
        setup.parallelism,
        setup.precision,
        setup.engine,
        setup.engine_coefficients,
        &setup.calibration,
    )
}

/// The profiled execution model for `setup` (an error when no profile exists).
pub fn profiled_model(setup: &ExecSetup) -> Result<StageModel<Tabulated>, SetupError> {
    let backend = build_profiled(setup, setup.table_bounds)
        .map_err(|e| SetupError::Other(e.into()))?
        .ok_or_else(|| {
            SetupError::Missing(format!(
                "no profile of {} on {}: none of [{}] has compute/{}/{}/mlp.csv; profile it, or use the roofline backend",
                setup.model.name,
                setup.device.name,
                setup
                    .profiles_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                setup.device.name,
                setup.model.name
            ))
        })?;
    Ok(StageModel::new(
        backend,
        &setup.model,
        setup.parallelism,
        setup.params,
    ))
}

/// The tables execution model: prediction tables in Vidur's dump format from `tables_dir`.
pub fn tables_model(setup: &ExecSetup) -> Result<StageModel<Tabulated>, SetupError> {
    let dir = setup.tables_dir.as_ref().ok_or_else(|| {
        SetupError::Missing(
            "the tables backend needs a directory of prediction tables (<dir>/<op>.csv)".into(),
        )
    })?;
    if !dir.is_dir() {
        return Err(SetupError::Missing(format!(
            "prediction-table directory {} does not exist",
            dir.display()
        )));
    }
    let tables = read_tables(dir).map_err(|e| SetupError::Other(e.into()))?;
    let r = setup.roofline_backend();
    let backend = Tabulated::new(
        tables,
        r,
        BackendKind::Tables,
        format!("prediction tables in {}", dir.display()),
        needed_ops(&setup.model, setup.parallelism),
    );
    Ok(StageModel::new(
        backend,
        &setup.model,
        setup.parallelism,
        setup.params,
    ))
}

/// The roofline execution model for `setup`.
pub fn roofline_model(setup: &ExecSetup) -> StageModel<Roofline> {
    let r = setup.roofline_backend();
    StageModel::new(r, &setup.model, setup.parallelism, setup.params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchShape;
    use crate::catalog::Catalog;
    use crate::exec::tables::write_tables;
    use crate::fit::synthetic::synthetic_profiles;
    use crate::ops::Op;

    fn setup(tp: u32, pp: u32) -> ExecSetup {
        let cat = Catalog::builtin();
        ExecSetup::new(
            cat.model("meta-llama/Llama-2-7b-hf").unwrap(),
            cat.device("a100").unwrap(),
            cat.node("a100_dgx").unwrap(),
            Parallelism::new(tp, pp),
        )
    }

    fn batch() -> BatchShape {
        let mut b = BatchShape::new();
        b.add_prefill(100, 0);
        b.add_prefill(60, 64);
        b.add_decode(500);
        b.add_decode(700);
        b
    }

    #[test]
    fn auto_picks_profiled_when_a_profile_exists_else_the_engine_model() {
        let dir = synthetic_profiles(true);
        let small = TableBounds {
            max_tokens: 1024,
            max_batch_size: 16,
            max_prefill_chunk: 1024,
        };
        let mut s = setup(2, 2);
        s.table_bounds = small;
        assert_eq!(
            build_execution_model(&s).unwrap().info().kind,
            BackendKind::Engine
        );
        assert!(matches!(
            build_execution_model(&ExecSetup {
                backend: BackendChoice::Profiled,
                ..s.clone()
            }),
            Err(SetupError::Missing(_))
        ));
        s.profiles_dirs = vec![dir.path().to_path_buf()];
        let m = build_execution_model(&s).unwrap();
        let info = m.info();
        assert_eq!(info.kind, BackendKind::Profiled);
        assert!(info.fallbacks.is_empty(), "{:?}", info.fallbacks);
        let t = m.stage_time(&batch(), 0);
        assert!(t.ops_ms.get(Op::AllReduce) > 0.0 && t.ops_ms.get(Op::SendRecv) > 0.0);
        assert_eq!(m.out_of_grid_lookups(), 0);
        // Beyond the grid: answered (scaled by the roofline) and counted, never a crash.
        let mut big = BatchShape::new();
        big.add_prefill(3000, 0);
        for _ in 0..40 {
            big.add_decode(2000);
        }
        let tb = m.stage_time(&big, 0);
        assert!(tb.total_ms() > t.total_ms());
        assert!(m.out_of_grid_lookups() > 0);
    }

    #[test]
    fn profiles_without_attention_fall_back_to_the_roofline_for_it() {
        let dir = synthetic_profiles(false);
        let mut s = setup(1, 1);
        s.profiles_dirs = vec![dir.path().to_path_buf()];
        s.table_bounds.max_tokens = 512;
        let info = build_execution_model(&s).unwrap().info();
        assert_eq!(info.kind, BackendKind::Profiled);
        let ops: Vec<Op> = info.fallbacks.iter().map(|f| f.0).collect();
        assert_eq!(
            ops,
            vec![Op::AttnKvCacheSave, Op::AttnPrefill, Op::AttnDecode]
        );
    }

    #[test]
    fn vidur_profiles_of_an_moe_model_leave_its_moe_operators_to_the_roofline() {
        // Vidur's profile format has no MoE operators: a profile of an MoE model (here the
        // synthetic Llama-2-7b profile, the model given top-2-of-8 experts of the same width)
        // answers the dense operators, and the router and experts fall back to the roofline.
        let dir = synthetic_profiles(true);
        let mut s = setup(2, 1);
        s.model.moe = Some(crate::catalog::MoeSpec {
            num_experts: 8,
            experts_per_token: 2,
            expert_intermediate_size: s.model.intermediate_size,
            num_shared_experts: 0,
            shared_expert_intermediate_size: 0,
            first_dense_layers: 0,
            layer_step: 1,
        });
        s.profiles_dirs = vec![dir.path().to_path_buf()];
        s.table_bounds = TableBounds {
            max_tokens: 512,
            max_batch_size: 8,
            max_prefill_chunk: 512,
        };
        let m = build_execution_model(&s).unwrap();
        let info = m.info();
        assert_eq!(info.kind, BackendKind::Profiled);
        for op in [Op::MoeGate, Op::MoeExperts] {
            assert!(
                info.fallbacks
                    .iter()
                    .any(|(o, k)| *o == op && *k == BackendKind::Roofline),
                "{op} not reported as a roofline fallback: {:?}",
                info.fallbacks
            );
        }
        // The fallback answers with the roofline's time.
        let t = m.stage_time(&batch(), 0);
        let r = roofline_model(&ExecSetup {
            backend: BackendChoice::Roofline,
            ..s.clone()
        })
        .stage_time(&batch(), 0);
        let (p, q) = (t.ops_ms.get(Op::MoeExperts), r.ops_ms.get(Op::MoeExperts));
        assert!(p > 0.0 && (p - q).abs() <= 1e-9 * q, "{p} vs {q}");
    }

    #[test]
    fn exported_tables_reload_as_the_tables_backend_with_the_same_answers() {
        let dir = synthetic_profiles(true);
        let mut s = setup(2, 2);
        s.profiles_dirs = vec![dir.path().to_path_buf()];
        s.table_bounds = TableBounds {
            max_tokens: 512,
            max_batch_size: 8,
            max_prefill_chunk: 512,
        };
        let prof = profiled_model(&s).unwrap();
        let out = tempfile::tempdir().unwrap();
        let ops = needed_ops(&s.model, s.parallelism);
        write_tables(prof.backend(), &ops, s.table_bounds, out.path()).unwrap();
        s.backend = BackendChoice::Tables;
        s.tables_dir = Some(out.path().to_path_buf());
        let tab = build_execution_model(&s).unwrap();
        assert_eq!(tab.info().kind, BackendKind::Tables);
        let (a, b) = (prof.stage_time(&batch(), 0), tab.stage_time(&batch(), 0));
        for op in Op::ALL {
            let (x, y) = (a.ops_ms.get(op), b.ops_ms.get(op));
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{op}: {x} vs {y}"
            );
        }
        s.tables_dir = Some(out.path().join("missing"));
        let e = build_execution_model(&s).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
