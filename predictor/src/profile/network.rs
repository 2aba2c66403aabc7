//! `all_reduce.csv` and `send_recv.csv`: collective times of one node type (docs/design.md §3.4).
//!
//! Columns: an unnamed leading index column (ignored), `time_stats.<collective>.{min,max,mean,
//! median,std}`, `rank`, `num_workers`, `size` (bytes), `collective`, `devices_per_node`,
//! `max_devices_per_node`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CsvFile, ProfileError};

/// Which collective a file profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Collective {
    /// Tensor-parallel all-reduce.
    AllReduce,
    /// Pipeline send/receive.
    SendRecv,
}

impl Collective {
    /// Vidur's name (`all_reduce`, `send_recv`), also the file stem.
    pub fn name(self) -> &'static str {
        match self {
            Collective::AllReduce => "all_reduce",
            Collective::SendRecv => "send_recv",
        }
    }
}

/// One row of a network profile.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    /// 1-based line in the file.
    pub line: u64,
    /// GPUs taking part.
    pub num_workers: u32,
    /// GPUs per node used in that run.
    pub devices_per_node: u32,
    /// Message size, bytes.
    pub size_bytes: u64,
    /// Median time, ms.
    pub median_ms: f64,
}

/// A parsed network profile (one collective).
#[derive(Debug, Clone)]
pub struct NetworkProfile {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    /// The collective.
    pub collective: Collective,
    /// Rows of that collective, in file order.
    pub rows: Vec<NetworkRow>,
}

impl NetworkProfile {
    /// Reads `path`, keeping the rows of `collective`.
    pub fn read(path: &Path, collective: Collective) -> Result<Self, ProfileError> {
        Self::from_csv(&CsvFile::open(path)?, collective)
    }

    /// Parses an already-read CSV.
    pub fn from_csv(csv: &CsvFile, collective: Collective) -> Result<Self, ProfileError> {
        let median = csv.column(&format!("time_stats.{}.median", collective.name()))?;
        let workers = csv.column("num_workers")?;
        let size = csv.column("size")?;
        let coll = csv.column("collective")?;
        let dpn = csv.column("devices_per_node")?;
        let mut rows = Vec::new();
        for r in csv.rows() {
            if r.str(coll) != collective.name() {
                continue;
            }
            rows.push(NetworkRow {
                line: r.line,
                num_workers: r.u32(workers)?,
                devices_per_node: r.u32(dpn)?,
                size_bytes: r.u64(size)?,
                median_ms: r.f64(median)?,
            });
        }
        if rows.is_empty() {
            return Err(ProfileError::NoRows {
                path: csv.path.clone(),
                why: format!("no `{}` rows", collective.name()),
            });
        }
        Ok(NetworkProfile {
            path: csv.path.clone(),
            sha256: csv.sha256.clone(),
            collective,
            rows,
        })
    }

    /// The `(num_workers, devices_per_node)` groups in the file.
    pub fn groups(&self) -> Vec<(u32, u32)> {
        let s: BTreeSet<(u32, u32)> = self
            .rows
            .iter()
            .map(|r| (r.num_workers, r.devices_per_node))
            .collect();
        s.into_iter().collect()
    }

    /// `(size bytes, median ms)` of the rows Vidur selects (docs/design.md §3.5): for all-reduce over `workers`
    /// GPUs, `num_workers == devices_per_node == workers`; for send/recv, `devices_per_node ==
    /// devices_per_node` (1 across nodes, 2 within a node) whatever `num_workers`.
    pub fn samples(&self, workers_or_dpn: u32) -> Result<Vec<(u64, f64)>, ProfileError> {
        let out: Vec<(u64, f64)> = self
            .rows
            .iter()
            .filter(|r| match self.collective {
                Collective::AllReduce => {
                    r.num_workers == workers_or_dpn && r.devices_per_node == workers_or_dpn
                }
                Collective::SendRecv => r.devices_per_node == workers_or_dpn,
            })
            .map(|r| (r.size_bytes, r.median_ms))
            .collect();
        if out.is_empty() {
            let what = match self.collective {
                Collective::AllReduce => {
                    format!("num_workers = devices_per_node = {workers_or_dpn}")
                }
                Collective::SendRecv => format!("devices_per_node = {workers_or_dpn}"),
            };
            return Err(ProfileError::NoRows {
                path: self.path.clone(),
                why: format!(
                    "no {} rows with {what}; the file has (num_workers, devices_per_node) groups {:?}",
                    self.collective.name(),
                    self.groups()
                ),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reference_a100_dgx_files() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vidur/profiling/network/a100_dgx");
        let ar =
            NetworkProfile::read(&dir.join("all_reduce.csv.gz"), Collective::AllReduce).unwrap();
        assert_eq!(ar.rows.len(), 6958);
        assert_eq!(ar.samples(2).unwrap().len(), 994);
        assert_eq!(ar.samples(8).unwrap().len(), 994);
        assert!(ar.samples(3).unwrap_err().to_string().contains("(2, 1)"));
        let sr = NetworkProfile::read(&dir.join("send_recv.csv.gz"), Collective::SendRecv).unwrap();
        assert_eq!(sr.samples(1).unwrap().len(), 994);
        assert_eq!(sr.samples(1).unwrap()[0], (2048, 0.024));
    }
}
