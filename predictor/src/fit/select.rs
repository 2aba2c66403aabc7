//! Choosing a model per operator: every candidate is scored by inner k-fold cross-validation on the
//! training rows, the best score wins, and ties go to the simpler candidate (candidates are listed
//! simplest first, XGBoost last). The winner is refitted on all training rows.

use serde::{Deserialize, Serialize};

use super::curve::{CurveFitter, Smoothing};
use super::folds::{ape_pct, complement, kfold, quantile};
use super::{FitError, Model, Regressor, Samples};

/// How candidates are scored on their inner held-out APEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Mean APE.
    Mean,
    /// 95th-percentile APE.
    P95,
    /// Mean of the median, the mean and the 95th percentile (balances the bulk and the tail).
    Blend,
}

impl Criterion {
    /// The score of held-out APEs (lower is better).
    pub fn score(self, apes: &[f64]) -> f64 {
        let mean = apes.iter().sum::<f64>() / apes.len().max(1) as f64;
        match self {
            Criterion::Mean => mean,
            Criterion::P95 => quantile(apes, 0.95),
            Criterion::Blend => (quantile(apes, 0.5) + mean + quantile(apes, 0.95)) / 3.0,
        }
    }
}

/// Settings of the model search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Inner folds used to score candidates.
    pub inner_folds: usize,
    /// Seed of the inner shuffles.
    pub seed: u64,
    /// Scoring rule.
    pub criterion: Criterion,
    /// Offer XGBoost for the 1-D operators too (it always fits 2-D attention).
    pub boost_1d: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            inner_folds: 5,
            seed: 0,
            criterion: Criterion::Blend,
            boost_1d: true,
        }
    }
}

/// The candidates for a 1-D profile (token count or message size), simplest first.
pub fn one_d_candidates(cfg: &SearchConfig) -> Vec<Box<dyn Regressor>> {
    let mut v: Vec<Box<dyn Regressor>> = Vec::new();
    for quantize in [false, true] {
        for tile in [None, Some(16), Some(32), Some(64), Some(128), Some(256)] {
            v.push(Box::new(CurveFitter {
                smoothing: Smoothing::None,
                half_window: 0,
                quantize,
                tile,
            }));
        }
        for h in [1, 2] {
            v.push(Box::new(CurveFitter {
                smoothing: Smoothing::Median,
                half_window: h,
                quantize,
                tile: None,
            }));
        }
        for h in [2, 3, 5, 8] {
            v.push(Box::new(CurveFitter {
                smoothing: Smoothing::Lowess,
                half_window: h,
                quantize,
                tile: None,
            }));
        }
    }
    #[cfg(feature = "xgboost")]
    if cfg.boost_1d {
        // A small grid: on these dense 1-D profiles XGBoost rarely wins (see docs/predictor.md),
        // and each configuration costs about 1 s per case.
        for max_depth in [3, 6] {
            v.push(Box::new(super::boost::BoostFitter {
                max_depth,
                eta: 0.15,
                rounds: 150,
                min_child_weight: 1.0,
                monotone: true,
            }));
        }
    }
    #[cfg(not(feature = "xgboost"))]
    let _ = cfg;
    v
}

/// The candidates for 2-D attention (features interact): per-level log-log curves of the grid
/// along either feature, and XGBoost over a small grid.
pub fn two_d_candidates(_cfg: &SearchConfig) -> Vec<Box<dyn Regressor>> {
    #[allow(unused_mut)]
    let mut v: Vec<Box<dyn Regressor>> = vec![
        Box::new(super::grid::GridFitter { level_feature: 0 }),
        Box::new(super::grid::GridFitter { level_feature: 1 }),
    ];
    #[cfg(feature = "xgboost")]
    for (max_depth, rounds) in [(6, 300), (8, 500)] {
        v.push(Box::new(super::boost::BoostFitter {
            max_depth,
            eta: 0.1,
            rounds,
            min_child_weight: 1.0,
            monotone: true,
        }));
    }
    v
}

/// Held-out predictions of `fitter` for every row of `s`, from `k`-fold CV with `seed`.
pub fn cv_predictions(
    fitter: &dyn Regressor,
    s: &Samples,
    k: usize,
    seed: u64,
) -> Result<Vec<f64>, FitError> {
    let mut pred = vec![f64::NAN; s.len()];
    for held in kfold(s.len(), k, seed) {
        let train = complement(s.len(), &held);
        let m = fitter.fit(&s.subset(&train))?;
        let test = s.subset(&held);
        let p = m.predict(&test.x, s.dims)?;
        for (i, v) in held.iter().zip(p) {
            pred[*i] = v;
        }
    }
    Ok(pred)
}

/// The outcome of a search: the refitted winner and every candidate's score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    /// The winner's id.
    pub chosen: String,
    /// `(candidate id, inner-CV score)` in candidate order.
    pub scores: Vec<(String, f64)>,
    /// The winner refitted on all rows.
    pub model: Model,
}

/// Scores `candidates` on `s` and refits the best.
pub fn select(
    candidates: &[Box<dyn Regressor>],
    s: &Samples,
    cfg: &SearchConfig,
) -> Result<Choice, FitError> {
    if candidates.is_empty() {
        return Err(FitError::Data(
            "no candidate models (build with the `xgboost` feature for attention)".into(),
        ));
    }
    let mut scores = Vec::with_capacity(candidates.len());
    let mut best: Option<(usize, f64)> = None;
    let k = cfg.inner_folds.min(s.len());
    for (i, c) in candidates.iter().enumerate() {
        let score = if k >= 2 {
            let pred = cv_predictions(c.as_ref(), s, k, cfg.seed)?;
            let apes: Vec<f64> = pred
                .iter()
                .zip(&s.y)
                .map(|(p, t)| ape_pct(*p, *t))
                .collect();
            cfg.criterion.score(&apes)
        } else {
            0.0
        };
        scores.push((c.id(), score));
        if best.is_none_or(|(_, b)| score < b - 1e-9) {
            best = Some((i, score));
        }
    }
    let (bi, _) = best.expect("non-empty");
    let model = candidates[bi].fit(s)?;
    Ok(Choice {
        chosen: candidates[bi].id(),
        scores,
        model,
    })
}
