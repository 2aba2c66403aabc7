//! Tables of measured against simulated latencies, per experiment and stage (Markdown and CSV).

use std::fmt::Write as _;

use super::experiment::SimStage;
use super::measurements::MeasuredStage;

/// One experiment stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Experiment id.
    pub id: String,
    /// Model family.
    pub family: String,
    /// Stage index.
    pub stage: usize,
    /// The measured stage is overloaded (left out of the means).
    pub overloaded: bool,
    /// Measured, ms.
    pub measured: MeasuredStage,
    /// Simulated, ms (`None` when the simulation failed).
    pub simulated: Option<SimStage>,
    /// Why the simulation failed.
    pub error: Option<String>,
    /// KV blocks: (the engine's, ours).
    pub kv_blocks: (Option<u64>, Option<u64>),
}

impl Row {
    /// Relative errors (simulated / measured − 1) of mean E2E and mean TTFT.
    pub fn errors(&self) -> Option<(f64, f64)> {
        self.simulated.map(|s| {
            (
                s.e2e_mean / self.measured.e2e_mean - 1.0,
                s.ttft_mean / self.measured.ttft_mean - 1.0,
            )
        })
    }
}

/// A table of rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The rows, in experiment then stage order.
    pub rows: Vec<Row>,
}

fn pct(x: f64) -> String {
    format!("{:+.1} %", x * 100.0)
}

impl Table {
    /// Mean |relative error| of mean E2E and of mean TTFT over the non-overloaded stages, and
    /// their count (failed simulations count as 100 %).
    pub fn mean_abs_errors(&self) -> (f64, f64, usize) {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| !r.overloaded).collect();
        let n = rows.len();
        if n == 0 {
            return (0.0, 0.0, 0);
        }
        let (mut e, mut t) = (0.0, 0.0);
        for r in rows {
            let (de, dt) = r.errors().unwrap_or((1.0, 1.0));
            e += de.abs();
            t += dt.abs();
        }
        (e / n as f64, t / n as f64, n)
    }

    /// The table as Markdown, under `title`.
    pub fn markdown(&self, title: &str) -> String {
        let (e, t, n) = self.mean_abs_errors();
        let mut s = format!(
            "# {title}\n\nMean |error| over {n} non-overloaded stages: E2E {:.1} %, TTFT {:.1} %.\n\n",
            e * 100.0,
            t * 100.0
        );
        s.push_str("| experiment | stage | E2E measured ms | E2E simulated ms | E2E error | TTFT measured ms | TTFT simulated ms | TTFT error | KV blocks engine / ours |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let kv = match r.kv_blocks {
                (Some(m), Some(o)) => format!("{m} / {o} ({})", pct(o as f64 / m as f64 - 1.0)),
                (None, Some(o)) => format!("– / {o}"),
                _ => "–".into(),
            };
            let stage = if r.overloaded {
                format!("{} (overloaded)", r.stage)
            } else {
                r.stage.to_string()
            };
            match (r.simulated, r.errors()) {
                (Some(sim), Some((de, dt))) => {
                    let _ = writeln!(
                        s,
                        "| {} | {stage} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {} | {kv} |",
                        r.id,
                        r.measured.e2e_mean,
                        sim.e2e_mean,
                        pct(de),
                        r.measured.ttft_mean,
                        sim.ttft_mean,
                        pct(dt)
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "| {} | {stage} | {:.0} | failed: {} | | {:.1} | | | {kv} |",
                        r.id,
                        r.measured.e2e_mean,
                        r.error.as_deref().unwrap_or("?"),
                        r.measured.ttft_mean
                    );
                }
            }
        }
        s
    }

    /// The table as CSV.
    pub fn csv(&self) -> String {
        let mut s = String::from("experiment,family,stage,overloaded,e2e_measured_ms,e2e_simulated_ms,e2e_p90_measured_ms,e2e_p90_simulated_ms,ttft_measured_ms,ttft_simulated_ms,ttft_p90_measured_ms,ttft_p90_simulated_ms,kv_blocks_engine,kv_blocks_simulated,error\n");
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        for r in &self.rows {
            let sim = r.simulated;
            let _ = writeln!(
                s,
                "{},{},{},{},{:.3},{},{},{},{:.3},{},{},{},{},{},\"{}\"",
                r.id,
                r.family,
                r.stage,
                r.overloaded,
                r.measured.e2e_mean,
                opt(sim.map(|x| x.e2e_mean)),
                opt(r.measured.e2e_p90),
                opt(sim.map(|x| x.e2e_p90)),
                r.measured.ttft_mean,
                opt(sim.map(|x| x.ttft_mean)),
                opt(r.measured.ttft_p90),
                opt(sim.map(|x| x.ttft_p90)),
                r.kv_blocks.0.map(|v| v.to_string()).unwrap_or_default(),
                r.kv_blocks.1.map(|v| v.to_string()).unwrap_or_default(),
                r.error.as_deref().unwrap_or("").replace('"', "'")
            );
        }
        s
    }
}

/// One knob sensitivity: two experiments of the same model, GPU and workload that differ in one
/// engine setting, with the measured and simulated change of each stage's mean E2E and TTFT.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    /// The knob and its two values, e.g. `max_num_batched_tokens 2048 → 1024`.
    pub knob: String,
    /// The two experiments (base, changed).
    pub ids: (String, String),
    /// Stage index.
    pub stage: usize,
    /// Measured relative change of mean E2E and mean TTFT.
    pub measured: (f64, f64),
    /// Simulated relative change of mean E2E and mean TTFT.
    pub simulated: Option<(f64, f64)>,
}

/// The knobs whose single changes [`sensitivities`] looks for.
fn knob_values(e: &super::measurements::Experiment) -> [(&'static str, String); 4] {
    [
        (
            "max_num_batched_tokens",
            e.engine.max_num_batched_tokens.to_string(),
        ),
        (
            "gpu_memory_utilization",
            e.engine.gpu_memory_utilization.to_string(),
        ),
        ("tp", e.tp.to_string()),
        (
            "kv_cpu_offload",
            e.engine.kv_cpu_offload.unwrap_or(false).to_string(),
        ),
    ]
}

/// Every pair of experiments in `table` (with their definitions in `exps`) that differ in exactly
/// one knob, with the same model, GPU, workload and other settings.
pub fn sensitivities(exps: &[super::fit::Prepared], table: &Table) -> Vec<Sensitivity> {
    let row = |id: &str, stage: usize| table.rows.iter().find(|r| r.id == id && r.stage == stage);
    let same_rest = |a: &super::measurements::Experiment, b: &super::measurements::Experiment| {
        a.model == b.model
            && a.gpu == b.gpu
            && a.dp == b.dp
            && a.workload == b.workload
            && a.engine.max_num_seqs == b.engine.max_num_seqs
    };
    let mut out = Vec::new();
    for (i, a) in exps.iter().enumerate() {
        for b in &exps[i + 1..] {
            let (a, b) = (&a.exp, &b.exp);
            if !same_rest(a, b) {
                continue;
            }
            let (ka, kb) = (knob_values(a), knob_values(b));
            let diff: Vec<usize> = (0..ka.len()).filter(|&k| ka[k].1 != kb[k].1).collect();
            let [k] = diff[..] else {
                continue;
            };
            for stage in 0..a.stages().len().min(b.stages().len()) {
                let (Some(ra), Some(rb)) = (row(&a.id, stage), row(&b.id, stage)) else {
                    continue;
                };
                if ra.overloaded || rb.overloaded {
                    continue;
                }
                let ch = |x: f64, y: f64| y / x - 1.0;
                out.push(Sensitivity {
                    knob: format!("{} {} → {}", ka[k].0, ka[k].1, kb[k].1),
                    ids: (a.id.clone(), b.id.clone()),
                    stage,
                    measured: (
                        ch(ra.measured.e2e_mean, rb.measured.e2e_mean),
                        ch(ra.measured.ttft_mean, rb.measured.ttft_mean),
                    ),
                    simulated: ra.simulated.zip(rb.simulated).map(|(sa, sb)| {
                        (ch(sa.e2e_mean, sb.e2e_mean), ch(sa.ttft_mean, sb.ttft_mean))
                    }),
                });
            }
        }
    }
    out
}

/// The sensitivities as a Markdown table.
pub fn sensitivities_markdown(rows: &[Sensitivity]) -> String {
    let mut s = String::from("# Knob sensitivities: measured and simulated change\n\nPairs of experiments of the same model, GPU and workload that differ in one setting.\n\n| knob | experiments | stage | E2E measured | E2E simulated | TTFT measured | TTFT simulated |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        let (se, st) = r
            .simulated
            .map(|(e, t)| (pct(e), pct(t)))
            .unwrap_or_else(|| ("failed".into(), "failed".into()));
        let _ = writeln!(
            s,
            "| {} | {} → {} | {} | {} | {se} | {} | {st} |",
            r.knob,
            r.ids.0,
            r.ids.1,
            r.stage,
            pct(r.measured.0),
            pct(r.measured.1)
        );
    }
    s
}
