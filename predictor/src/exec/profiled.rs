//! The profiled backend: fit the profiles of a model on a device (and of its node's network), then
//! tabulate the fitted models over the prediction grids ([`crate::table`]).

use std::path::PathBuf;

use super::tabulated::{OpTables, Tabulated};
use super::BackendKind;
use crate::catalog::{ModelSpec, NodeSpec};
use crate::fit::case::{fit_case_cached, CaseError, CaseInputs, FittedCase, OpKey};
use crate::fit::select::SearchConfig;
use crate::fit::FitError;
use crate::ops::Op;
use crate::parallel::Parallelism;
use crate::profile::ProfileLayout;
use crate::setup::ExecSetup;
use crate::table::{Axis, Table1, Table2, TableBounds};

/// The operators the stage formula asks a backend for, for `model` split as `par`.
pub fn needed_ops(model: &ModelSpec, par: Parallelism) -> Vec<Op> {
    let mut v: Vec<Op> = Op::TOKEN_OPS
        .into_iter()
        .filter(|op| *op != Op::PostAttentionLayernorm || model.post_attn_norm)
        .collect();
    v.extend([Op::AttnKvCacheSave, Op::AttnPrefill, Op::AttnDecode]);
    if par.tp > 1 {
        v.push(Op::AllReduce);
    }
    if par.pp > 1 {
        v.push(Op::SendRecv);
    }
    if model.moe.is_some() {
        v.extend([Op::MoeGate, Op::MoeExperts]);
        if model.moe.as_ref().is_some_and(|m| m.num_shared_experts > 0) {
            v.push(Op::MoeSharedExperts);
        }
        if par.ep > 1 {
            v.push(Op::AllToAll);
        }
    }
    v
}

/// The send/recv group Vidur uses: devices per node 1 when the replica spans nodes, else 2.
pub fn send_recv_devices_per_node(node: &NodeSpec, par: Parallelism) -> u32 {
    if par.world_size() > node.devices_per_node {
        1
    } else {
        2
    }
}

fn table1(
    fitted: &FittedCase,
    key: OpKey,
    axis: &Axis,
    x_of: impl Fn(u64) -> f64,
) -> Result<Option<Table1>, FitError> {
    let Some(f) = fitted.get(key) else {
        return Ok(None);
    };
    let xs: Vec<f64> = axis.keys().iter().map(|k| x_of(*k)).collect();
    let values_ms = f.model.predict(&xs, 1)?;
    Ok(Some(Table1 {
        axis: axis.clone(),
        values_ms,
    }))
}

fn table2(
    fitted: &FittedCase,
    key: OpKey,
    axis0: Axis,
    axis1: Axis,
) -> Result<Option<Table2>, FitError> {
    let Some(f) = fitted.get(key) else {
        return Ok(None);
    };
    let mut xs = Vec::with_capacity(axis0.len() * axis1.len() * 2);
    for a in axis0.keys() {
        for b in axis1.keys() {
            xs.extend_from_slice(&[*a as f64, *b as f64]);
        }
    }
    let values_ms = f.model.predict(&xs, 2)?;
    Ok(Some(Table2 {
        axis0,
        axis1,
        values_ms,
    }))
}

/// Tabulates the fitted models of `fitted` for `model` split as `par` on `node`, over `bounds`.
/// Operators without a fitted model get no table.
pub fn tables_from_fit(
    fitted: &FittedCase,
    model: &ModelSpec,
    node: &NodeSpec,
    par: Parallelism,
    bounds: TableBounds,
) -> Result<OpTables, FitError> {
    bounds.validate().map_err(FitError::Data)?;
    let tp = par.tp;
    let key = |op: Op| OpKey {
        op,
        tp,
        devices_per_node: None,
    };
    let tokens = Axis::range(1, bounds.max_tokens, 1);
    let mut t = OpTables::default();
    for op in needed_ops(model, par) {
        let table = match op {
            Op::AttnPrefill => {
                t.prefill = table2(
                    fitted,
                    key(op),
                    Axis::new(bounds.kv_axis()),
                    Axis::range(1, bounds.max_prefill_chunk, 1),
                )?;
                continue;
            }
            Op::AttnDecode => {
                t.decode = table2(
                    fitted,
                    key(op),
                    Axis::range(1, bounds.max_batch_size, 1),
                    Axis::new(bounds.kv_axis()),
                )?;
                continue;
            }
            // Network models are fitted on message bytes: tokens × hidden size × 2 bytes.
            Op::AllReduce => table1(fitted, key(op), &tokens, |n| {
                (n * model.hidden_size as u64 * 2) as f64
            })?,
            Op::SendRecv => table1(
                fitted,
                OpKey {
                    op,
                    tp: 2,
                    devices_per_node: Some(send_recv_devices_per_node(node, par)),
                },
                &tokens,
                |n| (n * model.hidden_size as u64 * 2) as f64,
            )?,
            _ => table1(fitted, key(op), &tokens, |n| n as f64)?,
        };
        if let Some(table) = table {
            t.set(op, table);
        }
    }
    Ok(t)
}

/// Builds the profiled backend for `setup` from the first of its `profiles_dirs` holding
/// `compute/<device>/<org>/<model>/mlp.csv` (network profiles from any of them), fitting (or
/// reusing the cached fit) and tabulating. `Ok(None)` when no compute profile exists.
pub fn build_profiled(
    setup: &ExecSetup,
    bounds: TableBounds,
) -> Result<Option<Tabulated>, CaseError> {
    let device = &setup.device.name;
    let Some(layout) = ProfileLayout::find_compute(&setup.profiles_dirs, device, &setup.model.name)
    else {
        return Ok(None);
    };
    let par = setup.parallelism;
    let inputs = CaseInputs::load(
        std::slice::from_ref(&layout.root)
            .iter()
            .chain(setup.profiles_dirs.iter())
            .cloned()
            .collect::<Vec<PathBuf>>()
            .as_slice(),
        &setup.model,
        device,
        Some(&setup.node),
        Some(&[par.tp]),
    )?;
    let fitted = fit_case_cached(
        &inputs,
        &SearchConfig::default(),
        setup.cache_dir.as_deref(),
    )?;
    let tables = tables_from_fit(&fitted, &setup.model, &setup.node, par, bounds).map_err(|e| {
        CaseError::Fit {
            what: "prediction tables".into(),
            source: e,
        }
    })?;
    let source = format!(
        "profiles {}{} ({} fitted models)",
        layout.compute_dir(device, &setup.model.name).display(),
        inputs
            .all_reduce
            .as_ref()
            .or(inputs.send_recv.as_ref())
            .map(|n| format!(" and {}", n.path.parent().unwrap_or(&n.path).display()))
            .unwrap_or_default(),
        fitted.ops.len()
    );
    let roofline = setup.roofline_backend();
    Ok(Some(Tabulated::new(
        tables,
        roofline,
        BackendKind::Profiled,
        source,
        needed_ops(&setup.model, par),
    )))
}
