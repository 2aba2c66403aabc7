//! The self-contained `report.html`: inline CSS and SVG, no scripts, no network.

use std::fmt::Write as _;

use serde_json::Value;

use super::plots::Figure;
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

const CSS: &str = "
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

/// Renders the page.
pub fn render(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let title = format!("servesim report: {}", page.run_name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<p class=\"sub\">Simulated serving run. Everything on this page comes from the files of the run \
         directory (summary.json, requests.csv, batches.csv, timeseries.csv, config.toml).</p>"
    );
    h.push_str("<nav><a href=\"#summary\">Summary</a><a href=\"#plots\">Plots</a><a href=\"#config\">Configuration</a></nav>\n");
    if !page.notes.is_empty() {
        h.push_str("<div class=\"notes\"><h3>Notes</h3><ul>\n");
        for n in page.notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul></div>\n");
    }
    h.push_str("<h2 id=\"summary\">Summary</h2>\n");
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
    for (f, svg) in page.figures {
        let _ = write!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption>{} <span>(also <code>plots/{}.svg</code> and <code>.png</code>)</span></figcaption>\n</figure>\n",
            esc(&f.chart.name),
            strip_xml_header(svg),
            esc(&f.caption),
            esc(&f.chart.name)
        );
    }
    h.push_str("<h2 id=\"config\">Configuration</h2>\n");
    match page.config {
        Some(c) => {
            h.push_str("<p>The fully resolved configuration (<code>config.toml</code>; <code>simulator run --config config.toml</code> reproduces the run):</p>\n");
            let _ = writeln!(h, "<pre>{}</pre>", esc(c));
        }
        None => h.push_str("<p>No config.toml in the run directory.</p>\n"),
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
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
    h.push_str("<table><thead><tr><th class=\"k\">field</th><th>value</th></tr></thead><tbody>\n");
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
    ("tbt_s", "TBT (every gap)"),
    ("tpot_s", "TPOT"),
    ("e2e_s", "E2E"),
    ("e2e_normalized_s", "E2E / output token"),
    ("scheduling_delay_s", "Scheduling delay"),
];
const STAT_ORDER: [&str; 7] = ["count", "mean", "p50", "p90", "p95", "p99", "max"];

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
            let max = stats.get("max").and_then(Value::as_f64).unwrap_or(0.0);
            let (scale, unit) = if max < 1.0 { (1e3, "ms") } else { (1.0, "s") };
            let unit = if k == "e2e_normalized_s" {
                format!("{unit}/token")
            } else {
                unit.to_string()
            };
            let _ = write!(
                h,
                "<tr><td class=\"k\">{}</td><td>{}</td>",
                esc(&label),
                esc(&unit)
            );
            for st in STAT_ORDER {
                let cell = match stats.get(st).and_then(Value::as_f64) {
                    Some(v) if st == "count" => num(v),
                    Some(v) => num(v * scale),
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
    for r in reps {
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
            "<td class=\"k\">TTFT</td><td>ms</td><td>9</td><td>100</td><td>100</td><td>200</td>",
            "<td class=\"k\">E2E</td><td>s</td>",
            "mfu (%)",
            "<td>35.0</td>",
            "goodput (requests/s)",
            "ttft_p90_s.met",
            "usd_per_hour",
            "<td class=\"k\">TTFT limit (s)</td><td>2</td>",
            "<td class=\"k\">E2E limit (s)</td><td>none</td>",
            "<td>50.0</td>",
            "prefix_cache.hit_rate",
            "requests.completed",
        ] {
            assert!(h.contains(want), "missing {want} in {h}");
        }
    }
}
