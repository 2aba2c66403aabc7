//! Where profile files live in a directory of Vidur's layout:
//! `compute/<device>/<org>/<model>/{mlp,attention}.csv` and `network/<node>/{all_reduce,send_recv}.csv`
//! (each also accepted as `.csv.gz`).

use std::path::PathBuf;

use super::Collective;

/// One profiles directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileLayout {
    /// The directory (holding `compute/` and/or `network/`).
    pub root: PathBuf,
}

fn existing(base: PathBuf) -> Option<PathBuf> {
    if base.is_file() {
        return Some(base);
    }
    let mut gz = base.into_os_string();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    gz.is_file().then_some(gz)
}

impl ProfileLayout {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProfileLayout { root: root.into() }
    }

    /// The directory of `model` (catalog name `org/model`) on `device`.
    pub fn compute_dir(&self, device: &str, model: &str) -> PathBuf {
        self.root.join("compute").join(device).join(model)
    }

    /// `mlp.csv` (or `.csv.gz`) of `model` on `device`, if present.
    pub fn mlp(&self, device: &str, model: &str) -> Option<PathBuf> {
        existing(self.compute_dir(device, model).join("mlp.csv"))
    }

    /// `attention.csv` (or `.csv.gz`) of `model` on `device`, if present.
    pub fn attention(&self, device: &str, model: &str) -> Option<PathBuf> {
        existing(self.compute_dir(device, model).join("attention.csv"))
    }

    /// The network profile of `collective` for the node directory `node_dir`, if present.
    pub fn network(&self, node_dir: &str, collective: Collective) -> Option<PathBuf> {
        existing(
            self.root
                .join("network")
                .join(node_dir)
                .join(format!("{}.csv", collective.name())),
        )
    }

    /// The first of `dirs` holding `mlp.csv` for `model` on `device`.
    pub fn find_compute(dirs: &[PathBuf], device: &str, model: &str) -> Option<ProfileLayout> {
        dirs.iter()
            .map(|d| ProfileLayout::new(d.clone()))
            .find(|l| l.mlp(device, model).is_some())
    }

    /// The first network profile of `collective` for `node_dir` among `dirs`.
    pub fn find_network(
        dirs: &[PathBuf],
        node_dir: &str,
        collective: Collective,
    ) -> Option<PathBuf> {
        dirs.iter()
            .find_map(|d| ProfileLayout::new(d.clone()).network(node_dir, collective))
    }
}
