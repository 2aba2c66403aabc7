//! Two-feature profiles measured on a grid (attention: batch × KV length, KV length × chunk):
//! one log-log curve along one feature for each measured value ("level") of the other, and
//! log-log interpolation between the two nearest levels.
//!
//! Like [`super::curve`], this uses the profile as the model; it competes with XGBoost in the
//! inner cross-validation and wins only where its held-out error is at least as good.

use serde::{Deserialize, Serialize};

use super::curve::{CurveFitter, CurveModel, Smoothing};
use super::{FitError, Model, Regressor, Samples};

/// Fits a [`GridModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridFitter {
    /// Which feature (0 or 1) defines the levels; curves run along the other.
    pub level_feature: usize,
}

/// Per-level curves of a 2-feature profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridModel {
    /// Which feature defines the levels.
    pub level_feature: usize,
    /// The level values, increasing.
    pub levels: Vec<f64>,
    /// One curve per level, along the other feature.
    pub curves: Vec<CurveModel>,
}

impl Regressor for GridFitter {
    fn id(&self) -> String {
        format!("grid_levels_f{}", self.level_feature)
    }

    fn fit(&self, s: &Samples) -> Result<Model, FitError> {
        if s.dims != 2 || self.level_feature > 1 {
            return Err(FitError::Shape(format!(
                "{} takes two features, got {}",
                self.id(),
                s.dims
            )));
        }
        let lf = self.level_feature;
        let mut rows: Vec<(f64, f64, f64)> = (0..s.len())
            .map(|i| (s.row(i)[lf], s.row(i)[1 - lf], s.y[i]))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let along = CurveFitter {
            smoothing: Smoothing::None,
            half_window: 0,
            quantize: false,
            tile: None,
        };
        let (mut levels, mut curves) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < rows.len() {
            let mut j = i;
            while j < rows.len() && rows[j].0 == rows[i].0 {
                j += 1;
            }
            // x must be positive for a log-log curve: shift by one (KV length 0 is a level).
            let pts: Vec<(f64, f64)> = rows[i..j].iter().map(|r| (r.1 + 1.0, r.2)).collect();
            let Model::Curve(c) = along.fit(&Samples::one_d(&pts))? else {
                unreachable!("a curve fitter returns a curve")
            };
            levels.push(rows[i].0);
            curves.push(c);
            i = j;
        }
        Ok(Model::Grid(GridModel {
            level_feature: lf,
            levels,
            curves,
        }))
    }
}

impl GridModel {
    /// Predicted time (ms) at features `x` (two values).
    pub fn predict_one(&self, x: &[f64]) -> f64 {
        let (level, along) = (x[self.level_feature], x[1 - self.level_feature] + 1.0);
        let n = self.levels.len();
        let j = self.levels.partition_point(|l| *l <= level);
        if j == 0 {
            return self.curves[0].predict_one(along);
        }
        if j == n || self.levels[j - 1] == level {
            return self.curves[j - 1].predict_one(along);
        }
        let (l0, l1) = (self.levels[j - 1], self.levels[j]);
        let y0 = self.curves[j - 1].predict_one(along).ln();
        let y1 = self.curves[j].predict_one(along).ln();
        let (a, b, t) = (l0.ln_1p(), l1.ln_1p(), level.ln_1p());
        (y0 + (y1 - y0) * (t - a) / (b - a)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_and_between_levels() {
        let mut s = Samples {
            dims: 2,
            ..Default::default()
        };
        for b in [1.0, 4.0] {
            for kv in [63.0, 255.0] {
                s.x.extend_from_slice(&[b, kv]);
                s.y.push(0.001 * b * (kv + 1.0));
            }
        }
        let Model::Grid(m) = (GridFitter { level_feature: 0 }).fit(&s).unwrap() else {
            panic!()
        };
        assert!((m.predict_one(&[4.0, 255.0]) - 1.024).abs() < 1e-12);
        // between kv knots on a level: power law 1 in (kv + 1)
        assert!((m.predict_one(&[1.0, 127.0]) - 0.128).abs() < 1e-9);
        // between levels, log-log in (1 + b)
        let mid = m.predict_one(&[2.0, 63.0]);
        assert!(mid > 0.064 && mid < 0.256, "{mid}");
    }
}
