//! Calibration files: the engine model's coefficients for one (engine version, GPU), with where
//! they came from. The shipped ones live under `data/calibration/<engine>-<version>/<device>.toml`
//! and are embedded at build time; `simulator calibrate` writes new ones.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::coeffs::EngineCoefficients;

include!(concat!(env!("OUT_DIR"), "/embedded_calibrations.rs"));

/// The engine version the shipped calibrations and the default configuration describe.
pub const DEFAULT_ENGINE_VERSION: &str = "vllm-0.15.1";

/// Where a calibration came from (section `[calibration]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationInfo {
    /// Engine and version, e.g. `vllm-0.15.1`.
    pub engine: String,
    /// GPU catalog name.
    pub device: String,
    /// The measurements it was fitted on.
    pub fitted_on: String,
    /// The command that produced it.
    pub command: String,
    /// Stages (experiment × load stage) in the fit.
    pub stages: u32,
    /// Mean |relative error| of mean E2E over those stages, after the fit.
    pub e2e_mean_abs_error: f64,
    /// Mean |relative error| of mean TTFT over those stages, after the fit.
    pub ttft_mean_abs_error: f64,
}

/// Engine behaviour of the calibrated version that is not a coefficient (section `[engine]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineBehaviour {
    /// The scheduler plans step n+1 while step n runs (vLLM's `--async-scheduling`): a request
    /// that arrives during a step waits for the step after next.
    pub async_scheduling: bool,
}

impl Default for EngineBehaviour {
    fn default() -> Self {
        EngineBehaviour {
            async_scheduling: true,
        }
    }
}

/// One calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Provenance.
    pub calibration: CalibrationInfo,
    /// Engine behaviour.
    #[serde(default)]
    pub engine: EngineBehaviour,
    /// The fitted coefficients.
    pub coefficients: EngineCoefficients,
}

/// Why a calibration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// Unreadable file.
    #[error("cannot read the calibration {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad TOML or a value out of range.
    #[error("calibration {path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl Calibration {
    /// Parses a calibration file's text (`path` names it in errors) and checks every value.
    pub fn parse(path: &str, text: &str) -> Result<Self, CalibrationError> {
        let c: Calibration = toml::from_str(text).map_err(|e| {
            let message = e.to_string();
            CalibrationError::Invalid {
                path: path.to_string(),
                why: format!(
                    "{}\n{}",
                    message.trim_end(),
                    super::coeffs::renamed_hint(&message).unwrap_or(
                        "a calibration file has [calibration] (engine, device, fitted_on, command, stages, e2e_mean_abs_error, ttft_mean_abs_error), an optional [engine] and [coefficients]; `simulator calibrate` writes one (docs/calibration.md)"
                    )
                ),
            }
        })?;
        c.coefficients
            .validate()
            .map_err(|(key, why)| CalibrationError::Invalid {
                path: path.to_string(),
                why: format!("coefficients.{key}: {why}"),
            })?;
        Ok(c)
    }

    /// Reads and checks a calibration file.
    pub fn read(path: &Path) -> Result<Self, CalibrationError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalibrationError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The file as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a calibration always serializes")
    }

    /// A short name: `vllm-0.15.1/h100`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.calibration.engine, self.calibration.device)
    }

    /// Every shipped calibration, in path order.
    pub fn builtin_all() -> Vec<Calibration> {
        EMBEDDED_CALIBRATIONS
            .iter()
            .map(|(rel, text)| {
                Calibration::parse(&format!("data/calibration/{rel}"), text).unwrap_or_else(|e| {
                    panic!("a shipped calibration is invalid (a build-time bug): {e}")
                })
            })
            .collect()
    }

    /// The shipped calibration of `engine` (e.g. `vllm-0.15.1`) for `device`, or, when that GPU
    /// has none, the H100 one of the same engine (coefficients are fractions of each GPU's own
    /// peaks, so they transfer to a first approximation); `None` when the engine has none.
    /// The flag is true for an exact match.
    pub fn builtin(engine: &str, device: &str) -> Option<(Calibration, bool)> {
        let all = Self::builtin_all();
        let of_engine = |d: &str| {
            all.iter()
                .find(|c| c.calibration.engine == engine && c.calibration.device == d)
                .cloned()
        };
        of_engine(device)
            .map(|c| (c, true))
            .or_else(|| of_engine("h100").map(|c| (c, false)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_missing_a_key_says_what_a_calibration_holds() {
        let e = Calibration::parse("start.toml", "[coefficients]\ngemm_bandwidth = 0.7\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("start.toml") && e.contains("missing field `calibration`"),
            "{e}"
        );
        assert!(
            e.contains("`simulator calibrate` writes one") && e.contains("stages"),
            "{e}"
        );
    }

    use super::*;

    #[test]
    fn files_round_trip_and_bad_values_name_the_key() {
        let c = Calibration {
            calibration: CalibrationInfo {
                engine: "vllm-0.15.1".into(),
                device: "h100".into(),
                fitted_on: "test".into(),
                command: "none".into(),
                stages: 3,
                e2e_mean_abs_error: 0.01,
                ttft_mean_abs_error: 0.1,
            },
            engine: EngineBehaviour::default(),
            coefficients: EngineCoefficients::default(),
        };
        let text = c.to_toml();
        assert_eq!(Calibration::parse("x.toml", &text).unwrap(), c);
        assert_eq!(c.name(), "vllm-0.15.1/h100");
        // a file written before `moe_bandwidth` was replaced: the error says how to convert it
        let old = text.replace("moe_bandwidth_ratio = ", "moe_bandwidth = ");
        let e = Calibration::parse("old.toml", &old)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("old.toml")
                && e.contains("moe_bandwidth_ratio = moe_bandwidth / gemm_bandwidth"),
            "{e}"
        );
        let bad = text.replace("gemm_bandwidth = 0.8", "gemm_bandwidth = -1.0");
        let e = Calibration::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(
            e.contains("x.toml") && e.contains("coefficients.gemm_bandwidth"),
            "{e}"
        );
        let e = Calibration::parse("x.toml", "[calibration]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml"), "{e}");
    }

    #[test]
    fn shipped_calibrations_parse() {
        for c in Calibration::builtin_all() {
            c.coefficients.validate().unwrap();
        }
    }
}
