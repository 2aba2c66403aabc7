//! The table-driven backend behind both `profiled` (tables from our fitted models) and `tables`
//! (tables another tool computed, in Vidur's dump format): every lookup uses Vidur's exact keys
//! (docs/design.md §4.1) and is an array index.
//!
//! An operator without a table is answered by the roofline (and listed in
//! [`BackendInfo::fallbacks`]). A key outside a table's grid never fails: the time at the nearest
//! grid point is scaled by the roofline's ratio between the asked shape and that grid point, and
//! the lookup is counted in [`OperatorTimes::out_of_grid_lookups`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::roofline::Roofline;
use super::{BackendInfo, BackendKind, OperatorTimes};
use crate::batch::BatchShape;
use crate::ops::Op;
use crate::table::{Table1, Table2};

/// The tables of one replica layout (one TP degree), per operator.
#[derive(Debug, Clone, Default)]
pub struct OpTables {
    /// 1-D tables over tokens: the token operators, `attn_kv_cache_save`, `all_reduce`, `send_recv`
    /// (indexed by [`Op::index`]).
    pub one_d: [Option<Table1>; Op::COUNT],
    /// `attn_decode` over (batch size, KV length).
    pub decode: Option<Table2>,
    /// `attn_prefill` over (KV length, chunk size).
    pub prefill: Option<Table2>,
}

impl OpTables {
    /// The 1-D table of `op`.
    pub fn get(&self, op: Op) -> Option<&Table1> {
        self.one_d[op.index()].as_ref()
    }

    /// Sets the 1-D table of `op`.
    pub fn set(&mut self, op: Op, t: Table1) {
        self.one_d[op.index()] = Some(t);
    }

    /// True when `op` has a table.
    pub fn has(&self, op: Op) -> bool {
        match op {
            Op::AttnDecode => self.decode.is_some(),
            Op::AttnPrefill => self.prefill.is_some(),
            _ => self.one_d[op.index()].is_some(),
        }
    }
}

/// Operator times from dense tables, with the roofline for what the tables lack.
pub struct Tabulated {
    tables: OpTables,
    roofline: Roofline,
    kind: BackendKind,
    source: String,
    needed: Vec<Op>,
    out_of_grid: AtomicU64,
}

/// A batch of `tokens` tokens (one prefill chunk) for 1-D roofline ratios.
fn tokens_batch(tokens: u64) -> BatchShape {
    let mut b = BatchShape::new();
    b.add_prefill(tokens, 0);
    b
}

impl Tabulated {
    /// A backend over `tables`, answering `needed` operators (those the stage formula will ask
    /// for), with `roofline` for missing tables and out-of-grid keys.
    pub fn new(
        tables: OpTables,
        roofline: Roofline,
        kind: BackendKind,
        source: String,
        needed: Vec<Op>,
    ) -> Self {
        Tabulated {
            tables,
            roofline,
            kind,
            source,
            needed,
            out_of_grid: AtomicU64::new(0),
        }
    }

    /// The tables.
    pub fn tables(&self) -> &OpTables {
        &self.tables
    }

    /// The roofline used for fallbacks.
    pub fn roofline(&self) -> &Roofline {
        &self.roofline
    }

    fn miss(&self) {
        self.out_of_grid.fetch_add(1, Ordering::Relaxed);
    }

    /// 1-D lookup at `key` tokens; `roof(t)` is the roofline time at `t` tokens.
    #[inline]
    fn one_d(&self, op: Op, key: u64, roof: impl Fn(u64) -> f64) -> f64 {
        let Some(t) = self.tables.get(op) else {
            return roof(key);
        };
        if let Some(v) = t.get(key) {
            return v;
        }
        self.miss();
        let edge = t.axis.clamp(key);
        let v = t.get(edge).unwrap_or(0.0);
        scale(v, roof(key), roof(edge))
    }
}

/// `v × num / den`, guarding a zero roofline.
fn scale(v: f64, num: f64, den: f64) -> f64 {
    if den > 0.0 {
        v * num / den
    } else {
        v
    }
}

impl OperatorTimes for Tabulated {
    fn layer_op_ms(&self, op: Op, batch: &BatchShape) -> f64 {
        let r = &self.roofline;
        match op {
            Op::AttnDecode => {
                let Some((b, kv)) = batch.vidur_decode_key() else {
                    return 0.0;
                };
                let Some(t) = &self.tables.decode else {
                    return r.layer_op_ms(op, batch);
                };
                if let Some(v) = t.get(b, kv) {
                    return v;
                }
                self.miss();
                let (b0, kv0) = t.clamp(b, kv);
                let shape = |n: u64, kv: u64| BatchShape {
                    num_decodes: n.min(u32::MAX as u64) as u32,
                    decode_kv_sum: n * kv,
                    ..BatchShape::default()
                };
                scale(
                    t.get(b0, kv0).unwrap_or(0.0),
                    r.layer_op_ms(op, &shape(b, kv)),
                    r.layer_op_ms(op, &shape(b0, kv0)),
                )
            }
            Op::AttnPrefill => {
                let Some((kv, c)) = batch.vidur_prefill_key() else {
                    return 0.0;
                };
                let Some(t) = &self.tables.prefill else {
                    return r.layer_op_ms(op, batch);
                };
                if let Some(v) = t.get(kv, c) {
                    return v;
                }
                self.miss();
                let (kv0, c0) = t.clamp(kv, c);
                let shape = |kv: u64, c: u64| {
                    let mut s = BatchShape::new();
                    s.add_prefill(c, kv);
                    s
                };
                scale(
                    t.get(kv0, c0).unwrap_or(0.0),
                    r.layer_op_ms(op, &shape(kv, c)),
                    r.layer_op_ms(op, &shape(kv0, c0)),
                )
            }
            // Vidur: KV-cache save at the exact token count, the rest at ceil8(tokens).
            Op::AttnKvCacheSave => self.one_d(op, batch.total_tokens(), |t| {
                r.layer_op_ms(op, &tokens_batch(t))
            }),
            Op::MoeGate | Op::MoeExperts | Op::MoeSharedExperts | Op::AllToAll => {
                self.roofline.layer_op_ms(op, batch)
            }
            Op::AllReduce | Op::SendRecv | Op::CpuOverhead | Op::LmHead | Op::LaunchOverhead => 0.0,
            _ => self.one_d(op, crate::batch::ceil8(batch.total_tokens()), |t| {
                r.layer_op_ms(op, &tokens_batch(t))
            }),
        }
    }

    fn all_reduce_ms(&self, tokens: u64) -> f64 {
        let r = &self.roofline;
        self.one_d(Op::AllReduce, tokens, |t| r.all_reduce_ms(t))
    }

    fn send_recv_ms(&self, tokens: u64) -> f64 {
        let r = &self.roofline;
        self.one_d(Op::SendRecv, tokens, |t| r.send_recv_ms(t))
    }

    fn out_of_grid_lookups(&self) -> u64 {
        self.out_of_grid.load(Ordering::Relaxed)
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: self.kind,
            source: self.source.clone(),
            fallbacks: self
                .needed
                .iter()
                .filter(|op| !self.tables.has(**op))
                .map(|op| (*op, BackendKind::Roofline))
                .collect(),
        }
    }
}
