//! Scale-out: `--shard I/N` searches the configurations whose index is I modulo N and writes
//! `shard.json`; [`merge`] joins the shard files of one space into the rows of the whole search.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SearchError;
use super::results::{FullRow, Header};

/// Name of a shard's output file.
pub const SHARD_FILE: &str = "shard.json";

/// `I/N`: this process searches the configurations with `index % count == index_of_shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(s: &str) -> Result<Shard, SearchError> {
        let err = || SearchError::Shard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// True when configuration `i` belongs to this shard.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

/// The content of `shard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// What was searched.
    pub header: Header,
    /// Which slice.
    pub shard: Shard,
    /// Its rows, by index.
    pub rows: Vec<FullRow>,
}

/// Writes `dir/shard.json`.
pub fn write(dir: &Path, f: &ShardFile) -> Result<PathBuf, SearchError> {
    std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    let path = dir.join(SHARD_FILE);
    let text = serde_json::to_string(f).expect("shard serializes") + "\n";
    std::fs::write(&path, text).map_err(|e| SearchError::io(&path, e))?;
    Ok(path)
}

fn read(dir: &Path) -> Result<ShardFile, SearchError> {
    let path = if dir.is_dir() {
        dir.join(SHARD_FILE)
    } else {
        dir.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SearchError::io(
            &path,
            format!("{e} (pass the --out directories of `simulator search --shard I/N`)"),
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| SearchError::io(&path, format!("not a shard file: {e}")))
}

/// Checks one shard file on its own: its `I/N` and every row's index and configuration (a file
/// edited by hand or truncated is refused rather than merged into wrong outputs).
fn check(dir: &Path, s: &ShardFile) -> Result<(), SearchError> {
    let bad =
        |why: String| SearchError::Merge(format!("{}: {why}; re-run that shard", dir.display()));
    let Shard { index, count } = s.shard;
    if count == 0 || index >= count {
        return Err(bad(format!(
            "its shard is {index}/{count}, but I/N needs 0 ≤ I < N"
        )));
    }
    let n = s.header.num_configurations;
    for f in &s.rows {
        let i = f.row.index;
        if i >= n || !s.shard.owns(i) {
            return Err(bad(format!(
                "row {i} does not belong to shard {index}/{count} of a space of {n} configurations"
            )));
        }
        match (&f.row.capacity_qps, &f.run_config) {
            (Some(_), None) => {
                return Err(bad(format!(
                    "row {i} has a capacity but no run_config (the configuration at that capacity)"
                )))
            }
            (None, Some(_)) => {
                return Err(bad(format!("row {i} has a run_config but no capacity")))
            }
            (_, Some(cfg)) => cfg
                .validate_values()
                .map_err(|e| bad(format!("row {i}'s run_config: {e}")))?,
            _ => {}
        }
    }
    Ok(())
}

/// Reads the shards in `dirs` and returns the header and every row, by index. The shards must
/// come from one space and cover it exactly once.
pub fn merge(dirs: &[PathBuf]) -> Result<(Header, Vec<FullRow>), SearchError> {
    let mut shards = Vec::new();
    for d in dirs {
        let s = read(d)?;
        check(d, &s)?;
        shards.push((d, s));
    }
    let Some((first_dir, first)) = shards.first() else {
        return Err(SearchError::Merge("no shard directory given".into()));
    };
    let header = first.header.clone();
    let count = first.shard.count;
    let mut seen = vec![None::<&PathBuf>; count];
    for (d, s) in &shards {
        if s.header != header {
            return Err(SearchError::Merge(format!(
                "{} and {} come from different spaces (configurations, seed, search knobs or SLOs differ)",
                first_dir.display(),
                d.display()
            )));
        }
        if s.shard.count != count {
            return Err(SearchError::Merge(format!(
                "{} is shard {}/{} but {} is one of {count}",
                d.display(),
                s.shard.index,
                s.shard.count,
                first_dir.display()
            )));
        }
        if let Some(other) = seen[s.shard.index] {
            return Err(SearchError::Merge(format!(
                "shard {}/{count} given twice: {} and {}",
                s.shard.index,
                other.display(),
                d.display()
            )));
        }
        seen[s.shard.index] = Some(d);
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| seen[*i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(SearchError::Merge(format!(
            "missing shard(s) {}",
            missing.join(", ")
        )));
    }
    let mut rows: Vec<FullRow> = shards.into_iter().flat_map(|(_, s)| s.rows).collect();
    rows.sort_by_key(|r| r.row.index);
    if rows.len() != header.num_configurations
        || rows.iter().enumerate().any(|(i, r)| r.row.index != i)
    {
        return Err(SearchError::Merge(format!(
            "the shards hold {} rows for a space of {} configurations",
            rows.len(),
            header.num_configurations
        )));
    }
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        let s = Shard::parse("2/3").unwrap();
        assert!(s.owns(5) && !s.owns(4));
    }
}
