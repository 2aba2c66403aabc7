//! The self-contained `report.html`: inline CSS and SVG, no scripts, no network.

use std::fmt::Write as _;

use serde_json::Value;

use super::plots::{Figure, Scale};
use super::read::OP_NAMES;

/// Everything the page shows.
pub struct Page<'a> {
    /// Run directory name (its last path component).
    pub run_name: &'a str,
    /// `config.toml` text, if present.
    pub config: Option<&'a str>,
    /// Parsed `summary.json`, if present.
    pub summary: Option<&'a Value>,
    /// Notes about missing files or columns.
    pub notes: &'a [String],
    /// Figures with their SVG text.
    pub figures: &'a [(Figure, String)],
    /// Milliseconds per operator over all replicas and stages, if `batches.csv` had them.
    pub op_totals_ms: Option<[f64; 15]>,
}

/// The style sheet of every page (report, compare, sweep).
pub const CSS: &str = "
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:28px;margin:8px 0 4px}h2{font-size:21px;margin:36px 0 10px;border-bottom:2px solid #dde1e6;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 8px}
p.sub{color:#555;margin:0 0 16px}
nav a{margin-right:14px}
table{border-collapse:collapse;margin:6px 0 14px;font-size:14px}
th,td{border:1px solid #d0d5db;padding:4px 10px;text-align:right}
th{background:#eef1f4}td.k,th.k{text-align:left}
tbody tr:nth-child(even){background:#fafbfc}
.notes{background:#fff8e1;border:1px solid #f0c36d;padding:8px 16px;border-radius:4px}
figure{margin:18px 0 30px}figure svg{width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{font-size:14px;color:#444;margin-top:4px}
pre{background:#f3f4f6;border:1px solid #d0d5db;padding:12px;overflow-x:auto;font-size:13px}
.verdict{border:2px solid;border-radius:6px;padding:8px 16px;margin:10px 0 14px}
.verdict h3{margin:4px 0 6px}.verdict ul{margin:4px 0}
.verdict.ok{background:#eaf6ec;border-color:#4caf50}
.verdict.overloaded{background:#fdecea;border-color:#d32f2f}
.verdict.not_judged{background:#f3f4f6;border-color:#9aa0a6}
p.what{font-size:15px;margin:4px 0}
table.glance td{text-align:left}
td code{white-space:nowrap}
td.best{font-weight:bold;background:#eaf6ec}
.scale{margin:6px 0 4px;font-size:15px}.scale label{margin:0 14px 0 4px}
#scale-log:checked ~ .figs figure.lin{display:none}
#scale-lin:checked ~ .figs figure.log{display:none}
";

/// Settings of `config.toml` shown at the top of the summary: (dotted key, label).
const DEPLOYMENT_KEYS: [(&str, &str); 10] = [
    ("replica.model", "model"),
    ("replica.device", "device"),
    ("replica.node", "node"),
    ("replica.tp", "tensor-parallel degree"),
    ("replica.pp", "pipeline stages"),
    ("cluster.num_replicas", "replicas"),
    ("cluster.router", "router"),
    ("scheduler.name", "scheduler"),
    ("predictor.backend", "execution backend asked for"),
    ("seed", "seed"),
];

/// The deployment settings found in `config.toml` text, as (label, value); `Err` when the text is
/// not valid TOML.
pub fn deployment_rows(config: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = config
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut rows = Vec::new();
    for (key, label) in DEPLOYMENT_KEYS {
        let mut v: Option<&toml::Value> = None;
        let mut t = Some(&table);
        for part in key.split('.') {
            v = t.and_then(|t| t.get(part));
            t = v.and_then(toml::Value::as_table);
        }
        let text = match v {
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Table(_)) | None => continue,
            Some(other) => other.to_string(),
        };
        rows.push((label.to_string(), text));
    }
    Ok(rows)
}

/// The start of a page: doctype, head with the style sheet, `<main>`, the title and a subtitle.
pub fn page_start(title: &str, sub: &str) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n\
         <p class=\"sub\">{}</p>\n",
        esc(title),
        esc(title),
        esc(sub)
    );
    h
}

/// The end of a page.
pub const PAGE_END: &str = "</main>\n</body>\n</html>\n";

/// The figures, each with its caption; CDFs drawn twice (linear and log latency axis) get a
/// switch between the two (CSS only: the page has no scripts).
pub fn figures_html(h: &mut String, figures: &[(Figure, String)]) {
    if figures.iter().any(|(f, _)| f.scale != Scale::Only) {
        h.push_str(
            "<input type=\"radio\" name=\"scale\" id=\"scale-lin\" checked>\
             <label for=\"scale-lin\">linear latency axis</label>\
             <input type=\"radio\" name=\"scale\" id=\"scale-log\">\
             <label for=\"scale-log\">log latency axis (the tail spreads out)</label>\n",
        );
    }
    h.push_str("<div class=\"figs\">\n");
    for (f, svg) in figures {
        let class = match f.scale {
            Scale::Only => "",
            Scale::Linear => " class=\"lin\"",
            Scale::Log => " class=\"log\"",
        };
        let _ = write!(
            h,
            "<figure id=\"{}\"{class}>\n{}\n<figcaption>{} <span>(also <code>plots/{}.svg</code> and <code>.png</code>)</span></figcaption>\n</figure>\n",
            esc(&f.chart.name),
            strip_xml_header(svg),
            esc(&f.caption),
            esc(&f.chart.name)
        );
    }
    h.push_str("</div>\n");
}

/// Renders the page.
pub fn render(page: &Page<'_>) -> String {
    let title = format!("servesim report: {}", page.run_name);
    let mut h = page_start(
        &title,
        "Simulated serving run. Everything on this page comes from the files of the run \
         directory (summary.json, requests.csv, itl_histogram.csv, batches.csv, timeseries.csv, config.toml).",
    );
    h.push_str("<nav><a href=\"#glance\">At a glance</a><a href=\"#summary\">Details</a><a href=\"#plots\">Plots</a><a href=\"#config\">Configuration</a></nav>\n");
    if !page.notes.is_empty() {
        h.push_str("<div class=\"notes\"><h3>Notes</h3><ul>\n");
        for n in page.notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul></div>\n");
    }
    let cfg = page
        .config
        .and_then(|c| crate::config::SimConfig::from_toml(c).ok());
    glance(&mut h, cfg.as_ref(), page.summary);
    h.push_str("<h2 id=\"summary\">Details</h2>\n");
    if let Some(Ok(rows)) = page.config.map(deployment_rows) {
        if !rows.is_empty() {
            h.push_str("<h3>Deployment</h3>\n");
            kv_table(&mut h, &rows);
        }
    }
    match page.summary {
        Some(s) => summary(&mut h, s),
        None => h.push_str("<p>No summary.json in the run directory.</p>\n"),
    }
    if let Some(ops) = page.op_totals_ms {
        op_table(&mut h, &ops);
    }
    h.push_str("<h2 id=\"plots\">Plots</h2>\n");
    if page.figures.is_empty() {
        h.push_str("<p>No data to plot.</p>\n");
    }
    figures_html(&mut h, page.figures);
    h.push_str("<h2 id=\"config\">Configuration</h2>\n");
    match page.config {
        Some(c) => {
            h.push_str("<p>The fully resolved configuration (<code>config.toml</code>; <code>simulator run --config config.toml</code> reproduces the run):</p>\n");
            let _ = writeln!(h, "<pre>{}</pre>", esc(c));
        }
        None => h.push_str("<p>No config.toml in the run directory.</p>\n"),
    }
    h.push_str(PAGE_END);
    h
}

/// Milliseconds with 3–4 significant digits, from seconds.
fn ms(v_s: f64) -> String {
    num(v_s * 1e3)
}

/// The load verdict as a coloured box: `status`, its reasons and notes (from `summary.json`'s
/// `load`).
pub fn verdict_html(h: &mut String, load: &Value, served: Option<(f64, Option<f64>)>) {
    let status = load
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("not_judged");
    let title = match status {
        "ok" => "Kept up with the offered load",
        "overloaded" => "Overloaded: the deployment did not keep up with the offered load",
        _ => "Load not judged",
    };
    let _ = write!(h, "<div class=\"verdict {}\"><h3>{title}</h3>", esc(status));
    if let Some((done, Some(offered))) = served {
        let _ = write!(
            h,
            "<p class=\"what\">Served {} req/s of the {} req/s offered ({:.0} %).</p>",
            num(done),
            num(offered),
            100.0 * done / offered.max(1e-12)
        );
    }
    let list = |h: &mut String, key: &str| {
        let items: Vec<&str> = load
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !items.is_empty() {
            if key == "notes" {
                h.push_str("<p class=\"what\">Also worth knowing:</p>");
            }
            h.push_str("<ul>");
            for r in items {
                let _ = write!(h, "<li>{}</li>", esc(r));
            }
            h.push_str("</ul>");
        }
    };
    list(h, "reasons");
    list(h, "notes");
    h.push_str("</div>\n");
}

/// The first screen: what was simulated, under which load, whether it kept up, and the numbers a
/// user came for.
fn glance(h: &mut String, cfg: Option<&crate::config::SimConfig>, s: Option<&Value>) {
    h.push_str("<h2 id=\"glance\">At a glance</h2>\n");
    if let Some(c) = cfg {
        let _ = writeln!(
            h,
            "<p class=\"what\"><b>Deployment:</b> {}.</p>",
            esc(&crate::describe::headline(c))
        );
    }
    let Some(s) = s else {
        h.push_str("<p>No summary.json: nothing to show.</p>\n");
        return;
    };
    let facts = s.get("workload").and_then(|w| {
        serde_json::from_value::<crate::metrics::load::WorkloadFacts>(w.clone()).ok()
    });
    match (cfg, &facts) {
        (Some(c), Some(w)) => {
            let _ = writeln!(
                h,
                "<p class=\"what\"><b>Workload:</b> {}.</p>",
                esc(&crate::describe::workload(c, w))
            );
        }
        (Some(c), None) => {
            let _ = writeln!(
                h,
                "<p class=\"what\"><b>Workload:</b> {}.</p>",
                esc(&crate::describe::arrivals(c))
            );
        }
        _ => {}
    }
    let f = |path: &[&str]| {
        let mut v = s;
        for k in path {
            v = v.get(k)?;
        }
        v.as_f64()
    };
    let done = f(&["throughput", "requests_per_s"]).unwrap_or(0.0);
    let offered = facts.as_ref().and_then(|w| w.offered_rate_per_s);
    if let Some(load) = s.get("load") {
        verdict_html(h, load, Some((done, offered)));
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "throughput".into(),
        format!(
            "{} req/s, {} output tokens/s, {} total tokens/s",
            num(done),
            num(f(&["throughput", "output_tokens_per_s"]).unwrap_or(0.0)),
            num(f(&["throughput", "total_tokens_per_s"]).unwrap_or(0.0))
        ),
    ));
    for (key, label) in [
        ("ttft_s", "TTFT (time to first token)"),
        ("tpot_s", "TPOT (time per output token)"),
        ("tbt_s", "ITL (every gap between tokens)"),
        ("e2e_s", "E2E (end-to-end latency)"),
    ] {
        if let (Some(p50), Some(p99)) = (f(&["latency", key, "p50"]), f(&["latency", key, "p99"])) {
            rows.push((
                label.into(),
                format!(
                    "p50 {} ms, p99 {} ms (mean {} ms)",
                    ms(p50),
                    ms(p99),
                    ms(f(&["latency", key, "mean"]).unwrap_or(0.0))
                ),
            ));
        }
    }
    if let (Some(att), Some(good)) = (
        f(&["slo", "attainment"]),
        f(&["slo", "goodput_requests_per_s"]),
    ) {
        rows.push((
            "SLOs".into(),
            format!(
                "met by {:.1} % of requests; goodput {} req/s",
                att * 100.0,
                num(good)
            ),
        ));
    }
    if let Some(Value::Array(reps)) = s.get("replicas") {
        let peak = reps
            .iter()
            .filter_map(|r| r.get("kv_usage_max")?.as_f64())
            .fold(0.0, f64::max);
        let busy: Vec<f64> = reps
            .iter()
            .filter_map(|r| r.get("busy_fraction")?.as_f64())
            .collect();
        rows.push((
            "KV cache and GPUs".into(),
            format!(
                "KV peak {:.1} % of the blocks; busy {:.0} % of the time (mean over {} replica{})",
                peak * 100.0,
                100.0 * busy.iter().sum::<f64>() / busy.len().max(1) as f64,
                reps.len(),
                if reps.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    if let Some(p) = f(&["preemptions", "total"]).filter(|&p| p > 0.0) {
        rows.push(("preemptions".into(), num(p)));
    }
    if let Some(c) = f(&["cost", "usd_per_million_output_tokens"]) {
        rows.push((
            "cost".into(),
            format!(
                "${:.2} per million output tokens (${:.2}/h)",
                c,
                f(&["cost", "usd_per_hour"]).unwrap_or(0.0)
            ),
        ));
    }
    kv_table_labelled(h, ("", ""), &rows);
}

fn strip_xml_header(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A number for a table: integers as such, others with 4 significant digits.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let a = v.abs();
        let digits = if a >= 1000.0 {
            1
        } else if a >= 1.0 {
            (3 - a.log10().floor() as i32).max(0) as usize
        } else if a > 0.0 {
            (3 - a.log10().floor() as i32).min(12) as usize
        } else {
            0
        };
        format!("{v:.digits$}")
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "–".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), num),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".to_string(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

/// Flattens an object to `(dotted key, value)` rows, in key order.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        _ => out.push((prefix.to_string(), value_text(v))),
    }
}

fn kv_table(h: &mut String, rows: &[(String, String)]) {
    kv_table_labelled(h, ("field", "value"), rows);
}

/// A two-column table with the given headings (none when both are empty).
fn kv_table_labelled(h: &mut String, heads: (&str, &str), rows: &[(String, String)]) {
    if heads.0.is_empty() && heads.1.is_empty() {
        h.push_str("<table class=\"glance\">");
    } else {
        h.push_str("<table>");
        let _ = write!(
            h,
            "<thead><tr><th class=\"k\">{}</th><th>{}</th></tr></thead>",
            esc(heads.0),
            esc(heads.1)
        );
    }
    h.push_str("<tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(
            h,
            "<tr><td class=\"k\">{}</td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    h.push_str("</tbody></table>\n");
}

const LATENCY_ORDER: [(&str, &str); 6] = [
    ("ttft_s", "TTFT"),
    ("tpot_s", "TPOT"),
    ("tbt_s", "ITL: every gap between tokens (tbt_s)"),
    ("e2e_s", "E2E"),
    ("e2e_normalized_s", "E2E / output token"),
    ("scheduling_delay_s", "Scheduling delay"),
];
const STAT_ORDER: [&str; 8] = ["count", "mean", "std", "p50", "p90", "p95", "p99", "max"];

fn summary(h: &mut String, s: &Value) {
    let handled = [
        "latency",
        "throughput",
        "replicas",
        "slo",
        "cost",
        "servesim_version",
        "backend",
        "requests",
        "simulated_time_s",
        "wall_time_s",
        "workload",
        "load",
        "prefix_cache",
        "preemptions",
    ];
    h.push_str("<h3>Run</h3>\n");
    let mut rows = Vec::new();
    for k in [
        "servesim_version",
        "backend",
        "requests",
        "simulated_time_s",
        "wall_time_s",
    ] {
        if let Some(v) = s.get(k) {
            flatten(k, v, &mut rows);
        }
    }
    kv_table(h, &rows);
    if let Some(Value::Object(lat)) = s.get("latency") {
        h.push_str("<h3>Latency</h3>\n<table><thead><tr><th class=\"k\">metric</th><th>unit</th>");
        for st in STAT_ORDER {
            let _ = write!(h, "<th>{st}</th>");
        }
        h.push_str("</tr></thead><tbody>\n");
        let mut names: Vec<(&str, String)> = LATENCY_ORDER
            .iter()
            .filter(|(k, _)| lat.contains_key(*k))
            .map(|&(k, l)| (k, l.to_string()))
            .collect();
        for k in lat.keys() {
            if !LATENCY_ORDER.iter().any(|(o, _)| o == k) {
                names.push((k.as_str(), k.clone()));
            }
        }
        for (k, label) in names {
            let stats = &lat[k];
            let unit = if k == "e2e_normalized_s" {
                "ms/token"
            } else {
                "ms"
            };
            let _ = write!(h, "<tr><td class=\"k\">{}</td><td>{unit}</td>", esc(&label));
            for st in STAT_ORDER {
                let cell = match stats.get(st).and_then(Value::as_f64) {
                    Some(v) if st == "count" => num(v),
                    Some(v) => ms(v),
                    None => "–".to_string(),
                };
                let _ = write!(h, "<td>{cell}</td>");
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
    }
    if let Some(t) = s.get("throughput") {
        h.push_str("<h3>Throughput</h3>\n");
        let mut rows = Vec::new();
        flatten("", t, &mut rows);
        kv_table(h, &rows);
    }
    h.push_str("<h3>Goodput against the SLOs</h3>\n");
    match s.get("slo") {
        Some(v) if !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()) => {
            kv_table(h, &slo_rows(v));
        }
        _ => h.push_str("<p>No SLOs were given for this run, so no goodput.</p>\n"),
    }
    if let Some(Value::Array(reps)) = s.get("replicas") {
        replicas_table(h, reps);
    }
    prefix_cache_section(h, s.get("prefix_cache"));
    preemption_section(h, s.get("preemptions"), s.get("requests"));
    if let Some(c) = s.get("cost") {
        h.push_str("<h3>Cost</h3>\n");
        let mut rows = Vec::new();
        flatten("", c, &mut rows);
        kv_table(h, &rows);
    }
    if let Value::Object(m) = s {
        let mut rows = Vec::new();
        for (k, v) in m {
            if !handled.contains(&k.as_str()) {
                flatten(k, v, &mut rows);
            }
        }
        if !rows.is_empty() {
            h.push_str("<h3>Other summary fields</h3>\n");
            kv_table(h, &rows);
        }
    }
}

/// Known SLO fields: (key, label, shown as a percentage).
const SLO_FIELDS: [(&str, &str, bool); 6] = [
    ("ttft_s", "TTFT limit (s)", false),
    ("tpot_s", "TPOT limit (s)", false),
    ("e2e_s", "E2E limit (s)", false),
    ("met_requests", "requests meeting every limit", false),
    ("attainment", "attainment (% of completed requests)", true),
    ("goodput_requests_per_s", "goodput (requests/s)", false),
];

/// The rows of the SLO table: known fields labelled and in order (a limit not given shows as
/// "none"), then any other fields as they are.
fn slo_rows(v: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (key, label, pct) in SLO_FIELDS {
        match v.get(key) {
            Some(Value::Null) => rows.push((label.to_string(), "none".to_string())),
            Some(x) => {
                let text = match x.as_f64() {
                    Some(f) if pct => format!("{:.1}", f * 100.0),
                    _ => value_text(x),
                };
                rows.push((label.to_string(), text));
            }
            None => {}
        }
    }
    if let Value::Object(m) = v {
        for (k, x) in m {
            if !SLO_FIELDS.iter().any(|(key, _, _)| key == k) {
                flatten(k, x, &mut rows);
            }
        }
    }
    rows
}

/// Fields shown as percentages (they are fractions in summary.json).
const FRACTIONS: [&str; 4] = ["busy_fraction", "mfu", "kv_usage_mean", "kv_usage_max"];

/// The cluster row of the replicas table: means of the fractions, the largest peak, sums of the
/// counts.
fn cluster_row(reps: &[Value]) -> Value {
    let mut row = serde_json::Map::new();
    row.insert("replica_id".into(), Value::from("cluster"));
    let keys: Vec<String> = reps
        .first()
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for k in keys.iter().filter(|k| *k != "replica_id") {
        let vals: Vec<f64> = reps.iter().filter_map(|r| r.get(k)?.as_f64()).collect();
        let v = if k == "kv_usage_max" {
            vals.iter().copied().fold(0.0, f64::max)
        } else if FRACTIONS.contains(&k.as_str()) {
            vals.iter().sum::<f64>() / vals.len().max(1) as f64
        } else {
            vals.iter().sum()
        };
        row.insert(k.clone(), Value::from(v));
    }
    Value::Object(row)
}

fn replicas_table(h: &mut String, reps: &[Value]) {
    let mut cols: Vec<String> = vec!["replica_id".to_string()];
    for r in reps {
        if let Value::Object(m) = r {
            for k in m.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
    }
    h.push_str("<h3>Replicas: utilisation, MFU, KV cache</h3>\n<table><thead><tr>");
    for c in &cols {
        let label = if FRACTIONS.contains(&c.as_str()) {
            format!("{c} (%)")
        } else {
            c.clone()
        };
        let _ = write!(h, "<th>{}</th>", esc(&label));
    }
    h.push_str("</tr></thead><tbody>\n");
    let mut rows: Vec<Value> = reps.to_vec();
    if reps.len() > 1 {
        rows.push(cluster_row(reps));
    }
    for r in &rows {
        h.push_str("<tr>");
        for c in &cols {
            let cell = match r.get(c) {
                Some(v) if FRACTIONS.contains(&c.as_str()) => v
                    .as_f64()
                    .map_or_else(|| value_text(v), |f| format!("{:.1}", f * 100.0)),
                Some(v) => value_text(v),
                None => "–".to_string(),
            };
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

/// Prefix-cache results in %, only when caching was on.
fn prefix_cache_section(h: &mut String, pc: Option<&Value>) {
    let Some(pc) = pc.filter(|p| p.get("enabled").and_then(Value::as_bool) == Some(true)) else {
        return;
    };
    let g = |k: &str| pc.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    h.push_str("<h3>Prefix cache</h3>\n");
    let rows = vec![
        (
            "prompt tokens served from the cache (token hit rate)".to_string(),
            format!(
                "{:.1} % ({} of {})",
                g("token_hit_rate") * 100.0,
                num(g("hit_tokens")),
                num(g("queried_tokens"))
            ),
        ),
        (
            "full prompt blocks reused (block hit rate)".to_string(),
            format!(
                "{:.1} % ({} of {})",
                g("block_hit_rate") * 100.0,
                num(g("hit_blocks")),
                num(g("queried_blocks"))
            ),
        ),
        (
            "requests that reused at least one block".to_string(),
            format!(
                "{:.1} % ({})",
                g("request_hit_rate") * 100.0,
                num(g("requests_with_hit"))
            ),
        ),
        (
            "prompt tokens computed / served from the cache".to_string(),
            format!(
                "{} / {}",
                num(g("computed_prefill_tokens")),
                num(g("cached_prefill_tokens"))
            ),
        ),
        ("cached blocks evicted".to_string(), num(g("evictions"))),
    ];
    kv_table_labelled(h, ("", ""), &rows);
}

/// Preemptions, only when there were any.
fn preemption_section(h: &mut String, p: Option<&Value>, requests: Option<&Value>) {
    let Some(p) = p else { return };
    let g = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    if g("total") <= 0.0 {
        return;
    }
    let arrived = requests
        .and_then(|r| r.get("arrived")?.as_f64())
        .unwrap_or(0.0)
        .max(1.0);
    h.push_str("<h3>Preemptions</h3>\n");
    let rows = vec![
        ("preemptions in all".to_string(), num(g("total"))),
        (
            "requests preempted at least once".to_string(),
            format!(
                "{} ({:.1} % of requests)",
                num(g("preempted_requests")),
                100.0 * g("preempted_requests") / arrived
            ),
        ),
        (
            "most preemptions of one request".to_string(),
            num(g("per_request_max")),
        ),
    ];
    kv_table_labelled(h, ("", ""), &rows);
}

fn op_table(h: &mut String, ops: &[f64; 15]) {
    let total: f64 = ops.iter().sum();
    if total <= 0.0 {
        return;
    }
    h.push_str("<h3>Operator time (all replicas and stages, from batches.csv)</h3>\n<table><thead><tr><th class=\"k\">operator</th><th>time (s)</th><th>share (%)</th></tr></thead><tbody>\n");
    for (k, name) in OP_NAMES.iter().enumerate() {
        if ops[k] > 0.0 {
            let _ = writeln!(
                h,
                "<tr><td class=\"k\">{name}</td><td>{}</td><td>{:.1}</td></tr>",
                num(ops[k] / 1e3),
                100.0 * ops[k] / total
            );
        }
    }
    let _ = writeln!(
        h,
        "<tr><th class=\"k\">total</th><th>{}</th><th>100.0</th></tr>",
        num(total / 1e3)
    );
    h.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_from_config() {
        let rows = deployment_rows(
            "seed = 42\n[cluster]\nnum_replicas = 2\n[replica]\nmodel = \"m\"\ntp = 4\n[scheduler]\nname = \"sarathi\"\nchunk_size = 512\n",
        )
        .unwrap();
        let want: Vec<(String, String)> = [
            ("model", "m"),
            ("tensor-parallel degree", "4"),
            ("replicas", "2"),
            ("scheduler", "sarathi"),
            ("seed", "42"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(rows, want);
        assert!(deployment_rows("not = = toml").is_err());
    }

    #[test]
    fn numbers_and_escaping() {
        assert_eq!(num(1000.0), "1000");
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(12345.67), "12345.7");
        assert_eq!(esc("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }

    #[test]
    fn summary_tables_show_known_and_unknown_fields() {
        let s: Value = serde_json::json!({
            "servesim_version": "0.1.0",
            "requests": {"arrived": 10, "completed": 9},
            "latency": {"ttft_s": {"count": 9, "mean": 0.1, "p50": 0.1, "p90": 0.2, "p95": 0.2, "p99": 0.3, "max": 0.4},
                        "e2e_s": {"count": 9, "mean": 3.0, "p50": 2.0, "p90": 4.0, "p95": 5.0, "p99": 6.0, "max": 7.5}},
            "replicas": [{"replica_id": 0, "mfu": 0.35, "batches": 12}],
            "slo": {"goodput_requests_per_s": 1.5, "ttft_s": 2.0, "e2e_s": null, "attainment": 0.5,
                    "ttft_p90_s": {"limit": 2.0, "met": true}},
            "cost": {"usd_per_hour": 4.25},
            "prefix_cache": {"hit_rate": 0.5}
        });
        let mut h = String::new();
        summary(&mut h, &s);
        for want in [
            "<td class=\"k\">TTFT</td><td>ms</td><td>9</td><td>100</td><td>–</td><td>100</td><td>200</td>",
            "<td class=\"k\">E2E</td><td>ms</td><td>9</td><td>3000</td>",
            "mfu (%)",
            "<td>35.0</td>",
            "goodput (requests/s)",
            "ttft_p90_s.met",
            "usd_per_hour",
            "<td class=\"k\">TTFT limit (s)</td><td>2</td>",
            "<td class=\"k\">E2E limit (s)</td><td>none</td>",
            "<td>50.0</td>",
            "requests.completed",
        ] {
            assert!(h.contains(want), "missing {want} in {h}");
        }
        // Prefix caching off (or absent) and no preemptions: no sections for them.
        assert!(
            !h.contains("Prefix cache") && !h.contains("Preemptions"),
            "{h}"
        );
        let mut on = s.clone();
        on["prefix_cache"] = serde_json::json!({"enabled": true, "token_hit_rate": 0.66, "hit_tokens": 660, "queried_tokens": 1000});
        on["preemptions"] =
            serde_json::json!({"total": 3, "preempted_requests": 2, "per_request_max": 2});
        let mut h = String::new();
        summary(&mut h, &on);
        assert!(
            h.contains("<h3>Prefix cache</h3>") && h.contains("66.0 % (660 of 1000)"),
            "{h}"
        );
        assert!(
            h.contains("<h3>Preemptions</h3>") && h.contains("2 (20.0 % of requests)"),
            "{h}"
        );
    }
}
