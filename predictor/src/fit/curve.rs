//! One-feature models in log-log space: piecewise-linear interpolation of the profile, optionally
//! after smoothing it (a robust local-linear smoother or a running median), and optionally
//! rounded to the profile's time quantum.
//!
//! Why: a dense 1-D profile (every 8 tokens, every 16 KiB) *is* the curve; what is left is
//! measurement noise (neighbouring rows differ by a few % at random, single rows drop by up to 40%),
//! and 0.5 µs quantisation of the medians. Interpolating raw rows carries the neighbours' noise
//! into every prediction; averaging a few neighbours robustly removes most of it.

use serde::{Deserialize, Serialize};

use super::{FitError, Model, Regressor, Samples};

/// How the profile is smoothed before interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Smoothing {
    /// None: plain log-log interpolation of the (duplicate-averaged) rows.
    None,
    /// Local linear regression over `2h+1` neighbours in log-log space, tricube distance weights,
    /// two bisquare robustness passes (LOWESS).
    Lowess,
    /// Median of `2h+1` neighbours' log times.
    Median,
}

/// Fits a [`CurveModel`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveFitter {
    /// Smoothing kind.
    pub smoothing: Smoothing,
    /// Neighbours on each side (`h`).
    pub half_window: usize,
    /// Round predictions to the profile's quantum (the largest of 0.5 µs, 1 µs that divides every
    /// median) when the profile has one.
    pub quantize: bool,
    /// Interpolate only between rows of the same tile of this many units (`ceil(x / tile)`),
    /// holding the nearest same-tile row flat; rows of other tiles are used only when a tile has
    /// none. GEMM kernels work on tiles of 16–256 tokens, so their time steps at tile boundaries
    /// instead of rising smoothly across them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
}

/// A fitted curve: knots in log-log space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveModel {
    /// ln(x) of the knots, strictly increasing.
    pub log_x: Vec<f64>,
    /// ln(time in ms) at the knots.
    pub log_y: Vec<f64>,
    /// Slope of ln(y) per ln(x) used beyond the last knot.
    pub tail_slope: f64,
    /// Predictions are rounded to a multiple of this many ms (when set).
    pub quantum_ms: Option<f64>,
    /// Tile width for same-tile interpolation (see [`CurveFitter::tile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
}

impl Regressor for CurveFitter {
    fn id(&self) -> String {
        let base = match self.smoothing {
            Smoothing::None => "loglog_interp".to_string(),
            Smoothing::Lowess => format!("lowess_h{}", self.half_window),
            Smoothing::Median => format!("median_h{}", self.half_window),
        };
        let base = match self.tile {
            Some(t) => format!("{base}_tile{t}"),
            None => base,
        };
        if self.quantize {
            format!("{base}_q")
        } else {
            base
        }
    }

    fn fit(&self, s: &Samples) -> Result<Model, FitError> {
        if s.dims != 1 {
            return Err(FitError::Shape(format!(
                "{} takes one feature, got {}",
                self.id(),
                s.dims
            )));
        }
        let (lx, ly) = aggregate(s)?;
        let smoothed = match self.smoothing {
            Smoothing::None => ly.clone(),
            Smoothing::Lowess => lowess(&lx, &ly, self.half_window),
            Smoothing::Median => running_median(&ly, self.half_window),
        };
        let quantum_ms = if self.quantize {
            detect_quantum(&s.y)
        } else {
            None
        };
        let tail_slope = tail_slope(&lx, &smoothed);
        Ok(Model::Curve(CurveModel {
            log_x: lx,
            log_y: smoothed,
            tail_slope,
            quantum_ms,
            tile: self.tile,
        }))
    }
}

/// Sorted unique ln(x) with the mean ln(y) of duplicates.
fn aggregate(s: &Samples) -> Result<(Vec<f64>, Vec<f64>), FitError> {
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(s.y.len());
    for (x, y) in s.x.iter().zip(&s.y) {
        if *x <= 0.0 || *y <= 0.0 {
            return Err(FitError::Data(format!(
                "log-log models need positive inputs and times; got x = {x}, time = {y} ms"
            )));
        }
        pts.push((x.ln(), y.ln()));
    }
    if pts.is_empty() {
        return Err(FitError::Data("no training rows".into()));
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut lx, mut ly) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < pts.len() {
        let mut j = i;
        let mut sum = 0.0;
        while j < pts.len() && pts[j].0 == pts[i].0 {
            sum += pts[j].1;
            j += 1;
        }
        lx.push(pts[i].0);
        ly.push(sum / (j - i) as f64);
        i = j;
    }
    Ok((lx, ly))
}

/// The window `[lo, hi]` of `2h+1` points around `i`, shifted inside `0..n`.
fn window(i: usize, h: usize, n: usize) -> (usize, usize) {
    let w = (2 * h + 1).min(n);
    let lo = i.saturating_sub(h).min(n - w);
    (lo, lo + w - 1)
}

fn lowess(lx: &[f64], ly: &[f64], h: usize) -> Vec<f64> {
    let n = lx.len();
    if h == 0 || n < 3 {
        return ly.to_vec();
    }
    let mut robust = vec![1.0; n];
    let mut fit = ly.to_vec();
    for pass in 0..3 {
        for i in 0..n {
            let (lo, hi) = window(i, h, n);
            let dmax = (lx[i] - lx[lo]).max(lx[hi] - lx[i]) * 1.0001 + 1e-12;
            let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for j in lo..=hi {
                let u = (lx[j] - lx[i]).abs() / dmax;
                let t = (1.0 - u * u * u).max(0.0);
                let w = t * t * t * robust[j];
                sw += w;
                sx += w * lx[j];
                sy += w * ly[j];
                sxx += w * lx[j] * lx[j];
                sxy += w * lx[j] * ly[j];
            }
            fit[i] = if sw <= 0.0 {
                ly[i]
            } else {
                let mx = sx / sw;
                let my = sy / sw;
                let var = sxx / sw - mx * mx;
                if var <= 1e-18 {
                    my
                } else {
                    let slope = (sxy / sw - mx * my) / var;
                    my + slope * (lx[i] - mx)
                }
            };
        }
        if pass == 2 {
            break;
        }
        let mut res: Vec<f64> = (0..n).map(|i| (ly[i] - fit[i]).abs()).collect();
        let mut sorted = res.clone();
        sorted.sort_by(f64::total_cmp);
        let mad = sorted[n / 2].max(0.005);
        for (r, w) in res.iter_mut().zip(robust.iter_mut()) {
            let u = *r / (6.0 * mad);
            *w = if u >= 1.0 { 0.0 } else { (1.0 - u * u).powi(2) };
        }
    }
    fit
}

fn running_median(ly: &[f64], h: usize) -> Vec<f64> {
    let n = ly.len();
    (0..n)
        .map(|i| {
            let (lo, hi) = window(i, h, n);
            let mut w: Vec<f64> = ly[lo..=hi].to_vec();
            w.sort_by(f64::total_cmp);
            let m = w.len();
            if m % 2 == 1 {
                w[m / 2]
            } else {
                (w[m / 2 - 1] + w[m / 2]) / 2.0
            }
        })
        .collect()
}

/// The quantum of the medians: 0.001 or 0.0005 ms when every value is a multiple of it.
fn detect_quantum(y: &[f64]) -> Option<f64> {
    [0.001, 0.0005].into_iter().find(|q| {
        y.iter().all(|v| {
            let k = v / q;
            (k - k.round()).abs() < 1e-6
        })
    })
}

fn tail_slope(lx: &[f64], ly: &[f64]) -> f64 {
    let n = lx.len();
    if n < 2 {
        return 0.0;
    }
    let m = (n / 10).clamp(1, n - 1);
    let dx = lx[n - 1] - lx[n - 1 - m];
    if dx <= 0.0 {
        return 0.0;
    }
    ((ly[n - 1] - ly[n - 1 - m]) / dx).clamp(0.0, 1.5)
}

impl CurveModel {
    /// Predicted time (ms) at `x`: interpolation between knots, flat below the first, a power law
    /// of slope `tail_slope` beyond the last.
    pub fn predict_one(&self, x: f64) -> f64 {
        let n = self.log_x.len();
        let l = x.max(f64::MIN_POSITIVE).ln();
        let (lo, hi) = match self.tile {
            Some(t) if x > 0.0 => {
                let t = t as f64;
                let k = (x / t).ceil();
                let a = ((k - 1.0) * t).max(0.0);
                let b = k * t;
                let eps = 1e-9;
                let lo = if a <= 0.0 {
                    0
                } else {
                    self.log_x.partition_point(|v| *v <= a.ln() + eps)
                };
                let hi = self.log_x.partition_point(|v| *v <= b.ln() + eps);
                if lo < hi {
                    (lo, hi)
                } else {
                    (0, n)
                }
            }
            _ => (0, n),
        };
        let ly = self.interp(l, lo, hi);
        let y = ly.exp();
        match self.quantum_ms {
            Some(q) => ((y / q).round() * q).max(q),
            None => y,
        }
    }

    /// ln(time) at ln(x) = `l` from the knots `lo..hi`: interpolated inside, flat below, and beyond
    /// the last knot flat (inside a tile) or along `tail_slope` (the whole curve).
    fn interp(&self, l: f64, lo: usize, hi: usize) -> f64 {
        let n = hi - lo;
        let (lx, ly) = (&self.log_x[lo..hi], &self.log_y[lo..hi]);
        let whole = lo == 0 && hi == self.log_x.len();
        if n == 1 || l <= lx[0] {
            ly[0]
        } else if l >= lx[n - 1] {
            ly[n - 1]
                + if whole {
                    self.tail_slope * (l - lx[n - 1])
                } else {
                    0.0
                }
        } else {
            let j = lx.partition_point(|v| *v <= l);
            let (x0, x1) = (lx[j - 1], lx[j]);
            let (y0, y1) = (ly[j - 1], ly[j]);
            y0 + (y1 - y0) * (l - x0) / (x1 - x0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(xy: &[(f64, f64)]) -> Samples {
        Samples {
            dims: 1,
            x: xy.iter().map(|p| p.0).collect(),
            y: xy.iter().map(|p| p.1).collect(),
        }
    }

    #[test]
    fn interpolation_is_exact_at_knots_and_loglinear_between() {
        let s = samples(&[(1.0, 1.0), (4.0, 4.0), (16.0, 4.0)]);
        let f = CurveFitter {
            smoothing: Smoothing::None,
            half_window: 0,
            quantize: false,
            tile: None,
        };
        let Model::Curve(m) = f.fit(&s).unwrap() else {
            panic!()
        };
        assert!((m.predict_one(4.0) - 4.0).abs() < 1e-12);
        assert!((m.predict_one(2.0) - 2.0).abs() < 1e-12); // power law x^1 between 1 and 4
        assert!((m.predict_one(0.5) - 1.0).abs() < 1e-12); // flat below
    }

    #[test]
    fn lowess_removes_a_single_spike() {
        let pts: Vec<(f64, f64)> = (1..=40)
            .map(|i| {
                let x = (i * 8) as f64;
                (x, if i == 20 { x * 0.6 } else { x * 0.01 })
            })
            .collect();
        let f = CurveFitter {
            smoothing: Smoothing::Lowess,
            half_window: 4,
            quantize: false,
            tile: None,
        };
        let Model::Curve(m) = f.fit(&samples(&pts)).unwrap() else {
            panic!()
        };
        let at = m.predict_one(160.0);
        assert!((at / 1.6 - 1.0).abs() < 0.02, "{at}");
    }

    #[test]
    fn quantum_rounding() {
        let s = samples(&[(1.0, 0.0015), (2.0, 0.002), (4.0, 0.0025)]);
        assert_eq!(detect_quantum(&s.y), Some(0.0005));
        assert_eq!(detect_quantum(&[0.0013]), None);
    }

    #[test]
    fn non_positive_data_is_an_error() {
        let f = CurveFitter {
            smoothing: Smoothing::None,
            half_window: 0,
            quantize: false,
            tile: None,
        };
        assert!(f.fit(&samples(&[(1.0, 0.0)])).is_err());
    }
}
