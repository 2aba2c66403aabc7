//! `requests.csv`: one row per request, in request-id order.

use std::fmt::Write as _;

use super::{fmt_int, fmt_s};
use crate::request::Request;

/// The header row.
pub const HEADER: &str = "request_id,replica_id,arrived_at_s,scheduled_at_s,first_token_at_s,completed_at_s,prefill_tokens,decode_tokens,cached_prefill_tokens,ttft_s,tbt_mean_s,tbt_max_s,tpot_s,e2e_s,e2e_normalized_s,scheduling_delay_s,execution_time_s,preemption_time_s,num_preemptions,num_restarts,computed_prefill_tokens,frontend_s";

/// The columns disaggregated runs add (after [`HEADER`]).
pub const DISAGG_HEADER: &str = ",decode_replica_id,ttft_queue_s,ttft_prefill_s,kv_wait_s,kv_transfer_s,first_decode_s,kv_transfer_bytes";

/// Appends the cells of [`DISAGG_HEADER`] for `r` (each starting with a comma; empty for a
/// request without a transfer, or a time it did not reach).
pub fn disagg_cells(l: &mut String, r: &Request) {
    l.push(',');
    if let Some(d) = r.decode_replica {
        let _ = write!(l, "{d}");
    }
    l.push(',');
    opt_s(l, r.scheduled_at_ns.map(|s| s - r.arrived_at_ns));
    l.push(',');
    opt_s(
        l,
        r.scheduled_at_ns
            .zip(r.first_token_at_ns)
            .map(|(s, f)| f - s),
    );
    // after the prefill: waiting for decode memory, the rest of the transfer, the first decode
    let ready = r
        .kv_transfer_start_ns
        .zip(r.first_token_at_ns)
        .map(|(s, f)| s.max(f));
    l.push(',');
    opt_s(l, ready.zip(r.first_token_at_ns).map(|(x, f)| x - f));
    l.push(',');
    opt_s(l, r.kv_transfer_end_ns.zip(ready).map(|(e, x)| e - x));
    l.push(',');
    opt_s(
        l,
        r.second_token_at_ns
            .zip(r.kv_transfer_end_ns)
            .map(|(t, e)| t - e),
    );
    l.push(',');
    if r.kv_transfer_end_ns.is_some() {
        let _ = write!(l, "{}", r.kv_transfer_bytes);
    }
}

fn opt_s(l: &mut String, ns: Option<u64>) {
    if let Some(ns) = ns {
        fmt_s(l, ns);
    }
}

/// Appends the row of `r` (unfinished requests have empty completion-derived cells).
pub fn row(l: &mut String, r: &Request) {
    fmt_int(l, r.id);
    l.push(',');
    fmt_int(l, r.replica);
    l.push(',');
    fmt_s(l, r.arrived_at_ns);
    l.push(',');
    opt_s(l, r.scheduled_at_ns);
    l.push(',');
    opt_s(l, r.first_token_at_ns);
    l.push(',');
    opt_s(l, r.completed_at_ns);
    for v in [r.prefill_tokens, r.decode_tokens, r.cached_prefill_tokens] {
        l.push(',');
        fmt_int(l, v);
    }
    l.push(',');
    opt_s(
        l,
        r.first_token_at_ns
            .map(|f| f + r.frontend_ns - r.arrived_at_ns),
    );
    l.push(',');
    if r.tbt_count > 0 && r.completed {
        let _ = write!(l, "{}", r.tbt_sum_ns as f64 / r.tbt_count as f64 * 1e-9);
        l.push(',');
        fmt_s(l, r.tbt_max_ns);
    } else {
        l.push(',');
    }
    l.push(',');
    if let (Some(first), Some(done)) = (r.first_token_at_ns, r.completed_at_ns) {
        if r.decode_tokens > 1 {
            let _ = write!(
                l,
                "{}",
                (done - first) as f64 * 1e-9 / (r.decode_tokens - 1) as f64
            );
        }
    }
    l.push(',');
    if let Some(done) = r.completed_at_ns {
        let e2e = done + r.frontend_ns - r.arrived_at_ns;
        fmt_s(l, e2e);
        let _ = write!(l, ",{},", e2e as f64 * 1e-9 / r.decode_tokens as f64);
    } else {
        l.push_str(",,");
    }
    opt_s(l, r.scheduled_at_ns.map(|s| s - r.arrived_at_ns));
    l.push(',');
    fmt_s(l, r.execution_ns);
    l.push(',');
    if let (Some(s), Some(done)) = (r.scheduled_at_ns, r.completed_at_ns) {
        fmt_s(l, (done - s).saturating_sub(r.execution_ns));
    }
    for v in [r.num_preemptions, r.num_restarts, r.computed_prefill_tokens] {
        l.push(',');
        fmt_int(l, v);
    }
    l.push(',');
    fmt_s(l, r.frontend_ns);
    l.push('\n');
}
