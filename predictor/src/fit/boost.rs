//! Gradient-boosted trees through XGBoost (`xgb`), the general learner: trained on ln(time) with
//! features ln(1 + x), a monotone non-decreasing constraint on every feature (more tokens, a longer
//! KV cache or a bigger batch never take less time), the `hist` method, one thread and a fixed
//! seed, so the same data gives byte-identical models.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use xgb::{parameters::BoosterParameters, Booster, DMatrix};

use super::{FitError, Model, Regressor, Samples};

/// XGBoost hyperparameters of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostFitter {
    /// Tree depth.
    pub max_depth: u32,
    /// Learning rate.
    pub eta: f64,
    /// Boosting rounds.
    pub rounds: u32,
    /// Minimum hessian (rows) per leaf.
    pub min_child_weight: f64,
    /// Monotone non-decreasing in every feature.
    pub monotone: bool,
}

/// A fitted booster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoostedModel {
    /// Features per row.
    pub dims: usize,
    /// The hyperparameters it was trained with.
    pub params: BoostFitter,
    /// XGBoost's own JSON model (loads in Python's xgboost too); the target is ln(ms) and the
    /// features are ln(1 + x).
    pub xgboost_json: String,
    #[serde(skip)]
    loaded: Arc<Mutex<Option<BoosterCell>>>,
}

struct BoosterCell(Booster);

impl std::fmt::Debug for BoosterCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Booster")
    }
}

fn xe(e: xgb::XGBError) -> FitError {
    FitError::Boost(e.to_string())
}

fn matrix(x: &[f64], dims: usize) -> Result<DMatrix, FitError> {
    let rows = x.len() / dims.max(1);
    let data: Vec<f32> = x.iter().map(|v| (v.max(0.0)).ln_1p() as f32).collect();
    DMatrix::from_dense(&data, rows).map_err(xe)
}

impl Regressor for BoostFitter {
    fn id(&self) -> String {
        format!(
            "xgb_d{}_e{}_r{}{}",
            self.max_depth,
            self.eta,
            self.rounds,
            if self.monotone { "_mono" } else { "" }
        )
    }

    fn fit(&self, s: &Samples) -> Result<Model, FitError> {
        if s.is_empty() {
            return Err(FitError::Data("no training rows".into()));
        }
        if s.y.iter().any(|y| *y <= 0.0) {
            return Err(FitError::Data(
                "a log-target model needs positive times".into(),
            ));
        }
        let mut dtrain = matrix(&s.x, s.dims)?;
        let labels: Vec<f32> = s.y.iter().map(|y| y.ln() as f32).collect();
        dtrain.set_labels(&labels).map_err(xe)?;
        let mut b = Booster::new_with_cached_dmats(&BoosterParameters::default(), &[&dtrain])
            .map_err(xe)?;
        let mono = format!(
            "({})",
            vec![if self.monotone { "1" } else { "0" }; s.dims].join(",")
        );
        for (k, v) in [
            ("booster", "gbtree".to_string()),
            ("objective", "reg:squarederror".to_string()),
            ("tree_method", "hist".to_string()),
            ("max_bin", "256".to_string()),
            ("max_depth", self.max_depth.to_string()),
            ("eta", self.eta.to_string()),
            ("min_child_weight", self.min_child_weight.to_string()),
            ("lambda", "1".to_string()),
            ("subsample", "1".to_string()),
            ("monotone_constraints", mono),
            ("seed", "0".to_string()),
            ("nthread", "1".to_string()),
            ("verbosity", "0".to_string()),
        ] {
            b.set_param(k, &v).map_err(xe)?;
        }
        for i in 0..self.rounds {
            b.update(&dtrain, i as i32).map_err(xe)?;
        }
        let json = b.save_buffer(false).map_err(xe)?;
        let xgboost_json = String::from_utf8(json)
            .map_err(|e| FitError::Boost(format!("model JSON is not UTF-8: {e}")))?;
        Ok(Model::Boosted(BoostedModel {
            dims: s.dims,
            params: *self,
            xgboost_json,
            loaded: Arc::new(Mutex::new(Some(BoosterCell(b)))),
        }))
    }
}

impl BoostedModel {
    /// Predicted times (ms) of the rows of `x`.
    pub fn predict(&self, x: &[f64], dims: usize) -> Result<Vec<f64>, FitError> {
        if dims != self.dims {
            return Err(FitError::Shape(format!(
                "model takes {} features, got {dims}",
                self.dims
            )));
        }
        if x.is_empty() {
            return Ok(Vec::new());
        }
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| FitError::Boost("booster lock poisoned".into()))?;
        if guard.is_none() {
            let mut b = Booster::load_buffer(self.xgboost_json.as_bytes()).map_err(xe)?;
            b.set_param("nthread", "1").map_err(xe)?;
            *guard = Some(BoosterCell(b));
        }
        let b = &guard.as_ref().expect("loaded above").0;
        let m = matrix(x, dims)?;
        let out = b.predict(&m).map_err(xe)?;
        Ok(out.into_iter().map(|v| (v as f64).exp()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_2d_monotone_surface_and_reloads_identically() {
        let mut s = Samples {
            dims: 2,
            ..Default::default()
        };
        for a in 1..=20 {
            for b in 1..=20 {
                s.x.extend_from_slice(&[a as f64 * 64.0, b as f64]);
                s.y.push(0.01 * a as f64 * b as f64 + 0.005);
            }
        }
        let f = BoostFitter {
            max_depth: 4,
            eta: 0.1,
            rounds: 200,
            min_child_weight: 1.0,
            monotone: true,
        };
        let Model::Boosted(m) = f.fit(&s).unwrap() else {
            panic!()
        };
        let p = m.predict(&[640.0, 10.0], 2).unwrap()[0];
        assert!((p / 1.005 - 1.0).abs() < 0.1, "{p}");
        let again = f.fit(&s).unwrap();
        let Model::Boosted(m2) = again else { panic!() };
        assert_eq!(m.xgboost_json, m2.xgboost_json);
        let reloaded: BoostedModel =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(reloaded.predict(&[640.0, 10.0], 2).unwrap()[0], p);
    }
}
