//! Output files: Vidur's CSV layout and the run metadata.

pub mod vidur_csv;

use std::path::{Path, PathBuf};

/// `DIR/compute/<device>/<org>/<model>/` for a catalog device and a model name such as
/// `meta-llama/Meta-Llama-3-8B` (Vidur's layout).
pub fn compute_dir(out: &Path, device: &str, model_name: &str) -> PathBuf {
    let mut p = out.join("compute").join(device);
    for part in model_name.split('/') {
        p.push(part);
    }
    p
}

/// `DIR/network/<node>/` (Vidur's layout).
pub fn network_dir(out: &Path, node: &str) -> PathBuf {
    out.join("network").join(node)
}

/// The UTC date and time of `unix_s` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_timestamp(unix_s: u64) -> String {
    let days = (unix_s / 86400) as i64;
    let secs = unix_s % 86400;
    // civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vidur_layout_paths() {
        let p = compute_dir(Path::new("/o"), "h100", "meta-llama/Meta-Llama-3-8B");
        assert_eq!(
            p,
            PathBuf::from("/o/compute/h100/meta-llama/Meta-Llama-3-8B")
        );
        assert_eq!(
            network_dir(Path::new("/o"), "h100_dgx"),
            PathBuf::from("/o/network/h100_dgx")
        );
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
