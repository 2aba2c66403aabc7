//! Prediction tables in Vidur's dump format (`<dir>/<op>.csv` or `.csv.gz`, times in ms per
//! layer): linear operators, `attn_kv_cache_save`, `all_reduce` and `send_recv` as
//! `num_tokens,prediction`; `attn_decode` as `batch_size,kv_cache_size,prediction`; `attn_prefill`
//! as `kv_cache_size,prefill_chunk_size_squared,prediction`. Reading them gives the `tables`
//! backend (our simulator on exactly Vidur's numbers); writing them exports our fitted tables.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::tabulated::{OpTables, Tabulated};
use super::OperatorTimes;
use crate::batch::BatchShape;
use crate::ops::Op;
use crate::profile::{CsvFile, ProfileError};
use crate::table::{Axis, Table1, Table2, TableBounds};

/// The dump file of `op` in `dir` (`.csv`, else `.csv.gz`), if present.
pub fn table_file(dir: &Path, op: Op) -> Option<PathBuf> {
    let plain = dir.join(format!("{}.csv", op.name()));
    if plain.is_file() {
        return Some(plain);
    }
    let gz = dir.join(format!("{}.csv.gz", op.name()));
    gz.is_file().then_some(gz)
}

fn read_1d(path: &Path) -> Result<Table1, ProfileError> {
    let csv = CsvFile::open(path)?;
    let (k, p) = (csv.column("num_tokens")?, csv.column("prediction")?);
    let mut m = BTreeMap::new();
    for r in csv.rows() {
        let key = r.u64(k)?;
        if m.insert(key, r.non_negative_f64(p)?).is_some() {
            return Err(ProfileError::bad(
                path,
                r.line,
                Some("num_tokens"),
                format!("num_tokens {key} appears twice"),
            ));
        }
    }
    Ok(Table1 {
        axis: Axis::new(m.keys().copied().collect()),
        values_ms: m.into_values().collect(),
    })
}

fn read_2d(path: &Path, c0: &str, c1: &str, squared: bool) -> Result<Table2, ProfileError> {
    let csv = CsvFile::open(path)?;
    let (a, b, p) = (csv.column(c0)?, csv.column(c1)?, csv.column("prediction")?);
    let mut m = BTreeMap::new();
    for r in csv.rows() {
        let ka = r.u64(a)?;
        let mut kb = r.u64(b)?;
        if squared {
            let root = (kb as f64).sqrt().round() as u64;
            if root * root != kb {
                return Err(ProfileError::bad(
                    path,
                    r.line,
                    Some(c1),
                    format!("{kb} is not the square of a chunk size"),
                ));
            }
            kb = root;
        }
        if m.insert((ka, kb), r.non_negative_f64(p)?).is_some() {
            return Err(ProfileError::bad(
                path,
                r.line,
                None,
                format!("key ({ka}, {kb}) appears twice"),
            ));
        }
    }
    let mut ax0: Vec<u64> = m.keys().map(|k| k.0).collect();
    ax0.dedup();
    let mut ax1: Vec<u64> = m.keys().map(|k| k.1).collect();
    ax1.sort_unstable();
    ax1.dedup();
    let mut values_ms = Vec::with_capacity(ax0.len() * ax1.len());
    for x in &ax0 {
        for y in &ax1 {
            match m.get(&(*x, *y)) {
                Some(v) => values_ms.push(*v),
                None => {
                    return Err(ProfileError::NoRows {
                        path: path.to_path_buf(),
                        why: format!(
                            "the table is not a full grid: no row for {c0} = {x}, {c1} = {}",
                            if squared { y * y } else { *y }
                        ),
                    })
                }
            }
        }
    }
    Ok(Table2 {
        axis0: Axis::new(ax0),
        axis1: Axis::new(ax1),
        values_ms,
    })
}

/// Reads every table present in `dir` (missing operators get no table).
pub fn read_tables(dir: &Path) -> Result<OpTables, ProfileError> {
    let mut t = OpTables::default();
    for op in Op::ALL {
        let Some(path) = table_file(dir, op) else {
            continue;
        };
        match op {
            Op::AttnDecode => {
                t.decode = Some(read_2d(&path, "batch_size", "kv_cache_size", false)?)
            }
            Op::AttnPrefill => {
                t.prefill = Some(read_2d(
                    &path,
                    "kv_cache_size",
                    "prefill_chunk_size_squared",
                    true,
                )?)
            }
            Op::CpuOverhead => {}
            _ => t.set(op, read_1d(&path)?),
        }
    }
    Ok(t)
}

fn io_err(path: &Path, e: std::io::Error) -> ProfileError {
    ProfileError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes the tables `backend` answers for `ops` into `dir` in Vidur's dump format; an operator
/// without a table is tabulated from the backend's roofline over `bounds`, so the dump is complete.
pub fn write_tables(
    backend: &Tabulated,
    ops: &[Op],
    bounds: TableBounds,
    dir: &Path,
) -> Result<Vec<PathBuf>, ProfileError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut written = Vec::new();
    let t = backend.tables();
    let r = backend.roofline();
    for &op in ops {
        let path = dir.join(format!("{}.csv", op.name()));
        let mut out = String::new();
        match op {
            Op::AttnDecode => {
                out.push_str("batch_size,kv_cache_size,prediction\n");
                let kv = bounds.kv_axis();
                for b in 1..=bounds.max_batch_size {
                    for k in &kv {
                        let v = match &t.decode {
                            Some(tb) => tb.get(b, *k),
                            None => None,
                        };
                        let v = v.unwrap_or_else(|| {
                            let s = BatchShape {
                                num_decodes: b as u32,
                                decode_kv_sum: b * k,
                                ..BatchShape::default()
                            };
                            r.layer_op_ms(op, &s)
                        });
                        out.push_str(&format!("{b},{k},{v}\n"));
                    }
                }
            }
            Op::AttnPrefill => {
                out.push_str("kv_cache_size,prefill_chunk_size_squared,prediction\n");
                for k in bounds.kv_axis() {
                    for c in 1..=bounds.max_prefill_chunk {
                        let v = t.prefill.as_ref().and_then(|tb| tb.get(k, c));
                        let v = v.unwrap_or_else(|| {
                            let mut s = BatchShape::new();
                            s.add_prefill(c, k);
                            r.layer_op_ms(op, &s)
                        });
                        out.push_str(&format!("{k},{},{v}\n", c * c));
                    }
                }
            }
            Op::CpuOverhead => continue,
            _ => {
                out.push_str("num_tokens,prediction\n");
                for n in 1..=bounds.max_tokens {
                    let v = t
                        .get(op)
                        .and_then(|tb| tb.get(n))
                        .unwrap_or_else(|| match op {
                            Op::AllReduce => r.all_reduce_ms(n),
                            Op::SendRecv => r.send_recv_ms(n),
                            _ => {
                                let mut s = BatchShape::new();
                                s.add_prefill(n, 0);
                                r.layer_op_ms(op, &s)
                            }
                        });
                    out.push_str(&format!("{n},{v}\n"));
                }
            }
        }
        let mut f = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
        f.write_all(out.as_bytes()).map_err(|e| io_err(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vidur_dumps_and_rejects_holes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("add.csv"),
            "num_tokens,prediction\n1,0.002\n2,0.0025\n",
        )
        .unwrap();
        std::fs::write(
            d.join("attn_prefill.csv"),
            "kv_cache_size,prefill_chunk_size_squared,prediction\n0,1,0.01\n0,4,0.02\n64,1,0.03\n64,4,0.04\n",
        )
        .unwrap();
        let t = read_tables(d).unwrap();
        assert_eq!(t.get(Op::Add).unwrap().get(2), Some(0.0025));
        assert_eq!(t.prefill.as_ref().unwrap().get(64, 2), Some(0.04));
        std::fs::write(
            d.join("attn_decode.csv"),
            "batch_size,kv_cache_size,prediction\n1,0,0.01\n2,64,0.02\n",
        )
        .unwrap();
        let e = read_tables(d).unwrap_err().to_string();
        assert!(
            e.contains("attn_decode.csv") && e.contains("not a full grid"),
            "{e}"
        );
        std::fs::write(
            d.join("attn_decode.csv"),
            "batch_size,kv_cache_size,prediction\n1,0,0.01\n1,64,x\n",
        )
        .unwrap();
        let e = read_tables(d).unwrap_err().to_string();
        assert!(
            e.contains("attn_decode.csv:3") && e.contains("prediction"),
            "{e}"
        );
        // a negative time (issue 18: it gave negative batch times)
        for bad in ["-0.01", "NaN"] {
            std::fs::write(
                d.join("attn_decode.csv"),
                format!("batch_size,kv_cache_size,prediction\n1,0,0.01\n1,64,{bad}\n"),
            )
            .unwrap();
            let e = read_tables(d).unwrap_err().to_string();
            assert!(
                e.contains("attn_decode.csv:3") && e.contains("prediction"),
                "{e}"
            );
        }
        std::fs::write(
            d.join("attn_decode.csv"),
            "batch_size,kv_cache_size,prediction\n1,0,0\n",
        )
        .unwrap();
        std::fs::write(d.join("add.csv"), "num_tokens,prediction\n1,-1e-9\n").unwrap();
        let e = read_tables(d).unwrap_err().to_string();
        assert!(e.contains("add.csv:2") && e.contains("negative"), "{e}");
    }
}
