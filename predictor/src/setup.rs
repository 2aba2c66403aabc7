//! Building the execution model the simulator uses: the one entry point that picks a backend
//! (profiled when a profile exists for the model and device, the roofline otherwise, or prediction
//! tables given by path) and says which one answered.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{DeviceSpec, ModelSpec, NodeSpec};
use crate::exec::roofline::{Roofline, RooflineEfficiency};
use crate::exec::{ExecParams, ExecutionModel, StageModel};
use crate::parallel::Parallelism;

/// Which backend to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Profiled if `profiles_dir` holds a profile of this model on this device, else the roofline.
    #[default]
    Auto,
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
pub fn build_execution_model(setup: &ExecSetup) -> Result<Arc<dyn ExecutionModel>, SetupError> {
    match setup.backend {
        BackendChoice::Auto | BackendChoice::Roofline => Ok(Arc::new(roofline_model(setup))),
        BackendChoice::Profiled => Err(SetupError::Missing(
            "the profiled backend is not available yet".into(),
        )),
        BackendChoice::Tables => Err(SetupError::Missing(
            "the tables backend is not available yet".into(),
        )),
    }
}

/// The roofline execution model for `setup`.
pub fn roofline_model(setup: &ExecSetup) -> StageModel<Roofline> {
    let r = Roofline::new(
        &setup.model,
        &setup.device,
        &setup.node,
        setup.parallelism,
        setup.roofline,
    );
    StageModel::new(r, &setup.model, setup.parallelism, setup.params)
}
