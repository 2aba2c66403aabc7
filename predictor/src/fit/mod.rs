//! Fitting operator-time models to profiles.
//!
//! A [`Regressor`] fits [`Samples`] into a [`Model`] (serialisable, so it can be saved and loaded).
//! Candidates: [`curve::CurveFitter`] (log-log interpolation of a 1-D profile, optionally smoothed
//! and quantised) and [`boost::BoostFitter`] (XGBoost on a log target with monotone constraints).
//! [`select`] picks one per operator by inner k-fold cross-validation; [`accuracy`] measures
//! held-out error with an outer k-fold; [`case`] fits every operator of one model on one device and
//! one node, deterministically.

pub mod accuracy;
#[cfg(feature = "xgboost")]
pub mod boost;
pub mod case;
pub mod curve;
pub mod folds;
pub mod grid;
pub mod select;
#[cfg(test)]
pub(crate) mod synthetic;

use serde::{Deserialize, Serialize};

/// Training rows: `dims` features per row (row-major in `x`) and the time in ms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    /// Features per row.
    pub dims: usize,
    /// Features, row-major (`len = dims × rows`).
    pub x: Vec<f64>,
    /// Target time per row, ms.
    pub y: Vec<f64>,
}

impl Samples {
    /// One-feature samples from `(x, y)` pairs.
    pub fn one_d(points: &[(f64, f64)]) -> Self {
        Samples {
            dims: 1,
            x: points.iter().map(|p| p.0).collect(),
            y: points.iter().map(|p| p.1).collect(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dims..(i + 1) * self.dims]
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Samples {
        let mut out = Samples {
            dims: self.dims,
            x: Vec::with_capacity(idx.len() * self.dims),
            y: Vec::with_capacity(idx.len()),
        };
        for &i in idx {
            out.x.extend_from_slice(self.row(i));
            out.y.push(self.y[i]);
        }
        out
    }
}

/// Why a fit or prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The data cannot be fitted (empty, non-positive times, ...).
    #[error("{0}")]
    Data(String),
    /// Wrong number of features.
    #[error("{0}")]
    Shape(String),
    /// XGBoost reported an error.
    #[error("XGBoost: {0}")]
    Boost(String),
}

/// Something that fits a model to samples: one candidate with fixed hyperparameters.
pub trait Regressor: Send + Sync {
    /// A short stable name including the hyperparameters (`lowess_h4_q`, `xgb_d3_e0.1_r300`).
    fn id(&self) -> String;
    /// Fits `samples`; deterministic.
    fn fit(&self, samples: &Samples) -> Result<Model, FitError>;
}

/// A fitted model (saved as JSON inside the fitted-case file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// A 1-D log-log curve.
    Curve(curve::CurveModel),
    /// Per-level curves of a 2-D grid profile.
    Grid(grid::GridModel),
    /// Gradient-boosted trees.
    #[cfg(feature = "xgboost")]
    Boosted(boost::BoostedModel),
}

impl Model {
    /// Checks the internal consistency of a model read from a file (so that a damaged file gives
    /// an error, not a panic at prediction time).
    pub fn validate(&self) -> Result<(), String> {
        let curve = |c: &curve::CurveModel| {
            if c.log_x.is_empty() || c.log_x.len() != c.log_y.len() {
                Err("a curve needs as many (at least one) log_x as log_y knots".to_string())
            } else if c.log_x.windows(2).any(|w| w[0] >= w[1]) {
                Err("curve knots are not increasing".to_string())
            } else {
                Ok(())
            }
        };
        match self {
            Model::Curve(c) => curve(c),
            Model::Grid(g) => {
                if g.levels.is_empty() || g.levels.len() != g.curves.len() || g.level_feature > 1 {
                    return Err("a grid model needs one curve per level, at least one".into());
                }
                g.curves.iter().try_for_each(curve)
            }
            #[cfg(feature = "xgboost")]
            Model::Boosted(_) => Ok(()),
        }
    }

    /// Predicted times (ms) of the rows of `x` (row-major, `dims` features each).
    pub fn predict(&self, x: &[f64], dims: usize) -> Result<Vec<f64>, FitError> {
        match self {
            Model::Curve(c) => {
                if dims != 1 {
                    return Err(FitError::Shape(format!(
                        "a curve takes one feature, got {dims}"
                    )));
                }
                Ok(x.iter().map(|v| c.predict_one(*v)).collect())
            }
            Model::Grid(g) => {
                if dims != 2 {
                    return Err(FitError::Shape(format!(
                        "a grid model takes two features, got {dims}"
                    )));
                }
                Ok(x.chunks(2).map(|r| g.predict_one(r)).collect())
            }
            #[cfg(feature = "xgboost")]
            Model::Boosted(b) => b.predict(x, dims),
        }
    }
}
