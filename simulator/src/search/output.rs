//! Writes a finished search (all rows, sorted by index) to its output directory.

use std::fmt::Write as _;
use std::path::Path;

use super::error::SearchError;
use super::plot::{esc, frontier_svg};
use super::results::{
    best, frontier, frontier_percentile, objective_unit, objective_value, write_csv,
    write_frontier_csv, Frontier, FullRow, Header, Row, OBJECTIVES,
};
use super::space::SloMetric;

fn write(path: &Path, text: &str) -> Result<(), SearchError> {
    std::fs::write(path, text).map_err(|e| SearchError::io(path, e))
}

/// Removes `NNNN.toml` files left by an earlier search (and nothing else).
fn remove_old_run_files(configs: &Path) -> Result<(), SearchError> {
    let entries = std::fs::read_dir(configs).map_err(|e| SearchError::io(configs, e))?;
    for e in entries {
        let path = e.map_err(|e| SearchError::io(configs, e))?.path();
        let stem_is_index = path
            .file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if stem_is_index && path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            std::fs::remove_file(&path).map_err(|e| SearchError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Width of the zero-padded index in `configs/NNNN.toml`.
pub fn index_width(n: usize) -> usize {
    n.saturating_sub(1).max(1).to_string().len().max(4)
}

/// Writes every output file of the search into `dir`.
pub fn write_outputs(dir: &Path, header: &Header, full: &[FullRow]) -> Result<(), SearchError> {
    std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    let rows: Vec<Row> = full.iter().map(|f| f.row.clone()).collect();
    for (i, r) in rows.iter().enumerate() {
        if r.index != i {
            return Err(SearchError::Merge(format!(
                "row {i} has index {}: the rows do not cover the space",
                r.index
            )));
        }
    }
    let slos = &header.slos;
    let json = serde_json::json!({ "header": header, "configurations": rows });
    write(
        &dir.join("results.json"),
        &(serde_json::to_string_pretty(&json).expect("rows serialize") + "\n"),
    )?;
    write_csv(&dir.join("results.csv"), &rows, slos)?;

    let configs = dir.join("configs");
    std::fs::create_dir_all(&configs).map_err(|e| SearchError::io(&configs, e))?;
    remove_old_run_files(&configs)?;
    let width = index_width(header.num_configurations);
    for f in full {
        if let Some(cfg) = &f.run_config {
            let text = format!(
                "# {} at its capacity of {} req/s (simulator search)\n{}",
                f.row.key,
                f.row.capacity_qps.unwrap_or(0.0),
                cfg.to_toml()
            );
            write(
                &configs.join(format!("{:0width$}.toml", f.row.index)),
                &text,
            )?;
        }
    }

    let mut best_json = serde_json::Map::new();
    for o in &OBJECTIVES {
        let v = match best(o, &rows, slos) {
            Some(r) => serde_json::json!({
                "index": r.index,
                "key": r.key,
                "value": objective_value(o, r, slos),
                "maximize": o.maximize,
            }),
            None => serde_json::Value::Null,
        };
        best_json.insert(o.name.to_string(), v);
    }
    write(
        &dir.join("best.json"),
        &(serde_json::to_string_pretty(&best_json).expect("best serializes") + "\n"),
    )?;
    let best_toml = dir.join("best.toml");
    match best(&OBJECTIVES[0], &rows, slos)
        .and_then(|r| full[r.index].run_config.as_ref().map(|c| (r, c)))
    {
        Some((r, cfg)) => write(
            &best_toml,
            &format!(
                "# best requests per USD: {} at {} req/s (simulator search)\n{}",
                r.key,
                r.capacity_qps.unwrap_or(0.0),
                cfg.to_toml()
            ),
        )?,
        None => {
            if best_toml.exists() {
                std::fs::remove_file(&best_toml).map_err(|e| SearchError::io(&best_toml, e))?;
            }
        }
    }

    let mut fronts = Vec::new();
    for (metric, fallback) in [(SloMetric::Ttft, 90.0), (SloMetric::Tbt, 99.0)] {
        let pct = frontier_percentile(slos, metric, fallback);
        fronts.push(Frontier {
            metric,
            percentile: pct,
            points: frontier(&rows, metric, pct),
        });
    }
    write_frontier_csv(&dir.join("frontier.csv"), &rows, &fronts)?;
    let mut svgs = Vec::new();
    for Frontier {
        metric,
        percentile: pct,
        points: pts,
    } in &fronts
    {
        let all: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.status.has_capacity())
            .filter_map(|r| {
                let at = r.at_capacity.as_ref()?;
                let s = if *metric == SloMetric::Ttft {
                    &at.latency.ttft_s
                } else {
                    &at.latency.tbt_s
                };
                Some((super::capacity::percentile_of(s, *pct), r.requests_per_usd?))
            })
            .collect();
        let front: Vec<(f64, f64)> = pts.iter().map(|p| (p.2, p.1)).collect();
        let labels: Vec<String> = pts.iter().map(|p| format!("#{}", p.0)).collect();
        let limit = slos
            .iter()
            .find(|s| s.metric == *metric && s.percentile == *pct)
            .map(|s| s.max_s);
        let name = metric.name().to_uppercase();
        let svg = frontier_svg(
            &format!("Requests per USD vs {name} p{pct}"),
            &format!("{name} p{pct} at capacity (s)"),
            &all,
            &front,
            &labels,
            limit,
        )
        .map_err(|e| SearchError::io(&dir.join(format!("frontier-{}.svg", metric.name())), e))?;
        write(&dir.join(format!("frontier-{}.svg", metric.name())), &svg)?;
        svgs.push(svg);
    }
    write(
        &dir.join("search.html"),
        &html(header, &rows, &fronts, &svgs),
    )?;
    Ok(())
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn html(header: &Header, rows: &[Row], fronts: &[Frontier], svgs: &[String]) -> String {
    let slos = &header.slos;
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>servesim search</title><style>\
body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td.l,th.l{text-align:left}\
.plots{display:flex;flex-wrap:wrap;gap:1em}</style></head><body>\n<h1>Capacity search</h1>\n",
    );
    let valid = rows.iter().filter(|r| r.status.has_capacity()).count();
    let sims: usize = rows.iter().map(|r| r.evaluations.len()).sum();
    let slo_text: Vec<String> = slos
        .iter()
        .map(|s| format!("{} p{} ≤ {} s", s.metric.name(), s.percentile, s.max_s))
        .collect();
    let _ = writeln!(
        h,
        "<p>{} configurations, {valid} with a capacity, {sims} simulations. SLOs: {}. Tolerance {} (relative), seed {}.</p>",
        rows.len(),
        esc(&slo_text.join(", ")),
        header.search.tolerance,
        header.seed
    );
    h.push_str("<h2>Best configuration per objective</h2>\n<table><tr><th class=l>objective</th><th class=l>configuration</th><th>value</th><th class=l>unit</th></tr>\n");
    for o in &OBJECTIVES {
        if let Some(r) = best(o, rows, slos) {
            let _ = writeln!(
                h,
                "<tr><td class=l>{} ({})</td><td class=l>#{} {}</td><td>{}</td><td class=l>{}</td></tr>",
                o.name,
                if o.maximize { "max" } else { "min" },
                r.index,
                esc(&r.key),
                num(objective_value(o, r, slos), 4),
                esc(&objective_unit(o, slos))
            );
        }
    }
    h.push_str("</table>\n<p><code>best.toml</code> is the best by requests per USD, as a <code>simulator run --config</code> file.</p>\n<h2>Pareto frontiers</h2>\n<div class=plots>\n");
    for svg in svgs {
        h.push_str(svg);
    }
    h.push_str("</div>\n");
    for f in fronts {
        let (metric, pct, pts) = (f.metric, f.percentile, &f.points);
        let _ = writeln!(
            h,
            "<h3>{} p{pct}</h3><table><tr><th class=l>configuration</th><th>requests/USD</th><th>latency (s)</th></tr>",
            metric.name()
        );
        for (i, rpu, lat) in pts {
            let _ = writeln!(
                h,
                "<tr><td class=l>#{i} {}</td><td>{rpu:.1}</td><td>{lat:.4}</td></tr>",
                esc(&rows[*i].key)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>All configurations</h2>\n<table><tr><th>#</th><th class=l>configuration</th><th>GPUs</th><th>USD/h</th><th class=l>status</th><th>capacity (req/s)</th><th>requests/USD</th><th>tokens/USD</th>");
    for s in slos {
        let _ = write!(h, "<th>{} (s)</th>", esc(&s.label()));
    }
    h.push_str("<th class=l>reason</th></tr>\n");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td>{}</td><td>{:.2}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            r.index,
            esc(&r.key),
            r.gpus,
            r.usd_per_hour,
            r.status.name(),
            num(r.capacity_qps, 3),
            num(r.requests_per_usd, 1),
            num(r.tokens_per_usd, 0)
        );
        for i in 0..slos.len() {
            let _ = write!(h, "<td>{}</td>", num(r.slo_values_s.get(i).copied(), 4));
        }
        let _ = writeln!(
            h,
            "<td class=l>{}</td></tr>",
            esc(r.reason.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
