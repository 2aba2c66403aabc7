//! Reports of a run: plots (`plots/*.svg`, `plots/*.png`) and one self-contained `report.html`.
//!
//! The module reads only the files of a run directory (schemas in `docs/outputs.md`), never the
//! engine's state, so a report can be (re)made from any run directory, e.g. one copied from another
//! machine. CSVs are streamed and aggregated (CDF values per request, time bins, a token histogram,
//! per-operator sums), so a run with millions of batches is reported in bounded memory. Output is
//! byte-deterministic: the same files give the same SVG, PNG and HTML.
//!
//! The plots are described in `docs/reports.md`. [`chart`] is public so other reports (e.g. the
//! capacity search's Pareto plots) draw with the same style and embedded font.

mod binned;
pub mod chart;
pub(crate) mod html;
pub(crate) mod plots;
pub(crate) mod read;

use std::path::{Path, PathBuf};

pub use chart::register_font;

/// The files a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.html`.
    pub html: PathBuf,
    /// Every `plots/*.svg`, in report order.
    pub svgs: Vec<PathBuf>,
    /// Every `plots/*.png`, in report order.
    pub pngs: Vec<PathBuf>,
    /// What was missing (files, columns) and therefore left out; also shown in the report.
    pub notes: Vec<String>,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory has none of the run files.
    #[error("{path}: not a run directory (none of config.toml, requests.csv, batches.csv, timeseries.csv, summary.json is there); pass the directory `simulator run --out` wrote")]
    NotARunDir {
        /// The directory given.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV file is malformed.
    #[error("{path}, line {line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// `summary.json` is not valid JSON.
    #[error("{path}: not valid JSON ({message}); it should be the summary.json written by `simulator run`")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("drawing {message}")]
    Plot {
        /// What failed.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the run directory and writes `plots/*.svg`, `plots/*.png` and `report.html` into it.
///
/// Missing files are tolerated (the report says what is missing) as long as at least one of the
/// run files is there; malformed files are errors naming the file, line and column.
pub fn write_report(run_dir: &Path) -> Result<ReportFiles, ReportError> {
    let file = |name: &str| {
        let p = run_dir.join(name);
        p.is_file().then_some(p)
    };
    let names = [
        "config.toml",
        "requests.csv",
        "batches.csv",
        "timeseries.csv",
        "summary.json",
    ];
    if names.iter().all(|n| file(n).is_none()) {
        return Err(ReportError::NotARunDir {
            path: run_dir.to_path_buf(),
        });
    }
    let mut notes = Vec::new();
    for n in names {
        if file(n).is_none() {
            notes.push(format!(
                "{n} is missing from the run directory; what it feeds is left out."
            ));
        }
    }
    let config = match file("config.toml") {
        Some(p) => Some(std::fs::read_to_string(&p).map_err(io(&p))?),
        None => None,
    };
    if let Some(Err(why)) = config.as_deref().map(html::deployment_rows) {
        notes.push(format!(
            "config.toml is not valid TOML ({why}); it is shown as text only."
        ));
    }
    let summary = match file("summary.json") {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(io(&p))?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                    ReportError::Json {
                        path: p.clone(),
                        message: e.to_string(),
                    }
                })?,
            )
        }
        None => None,
    };
    let requests = file("requests.csv")
        .map(|p| read::read_requests(&p))
        .transpose()?;
    if let Some(r) = &requests {
        if !r.missing.is_empty() {
            notes.push(format!(
                "requests.csv has no column {}; those CDFs are left out.",
                r.missing.join(", ")
            ));
        }
    }
    let batches = file("batches.csv")
        .map(|p| read::read_batches(&p))
        .transpose()?;
    if let Some(b) = &batches {
        if b.ops_present.is_empty() {
            notes.push(
                "batches.csv has no `<op>_ms` columns; the operator breakdown is left out."
                    .to_string(),
            );
        }
    }
    let config_table: Option<toml::Table> = config.as_deref().and_then(|c| c.parse().ok());
    let interval_s = config_table
        .as_ref()
        .and_then(|t| t.get("output")?.get("timeseries_interval_s")?.as_float())
        .unwrap_or(1.0);
    let timeseries = file("timeseries.csv")
        .map(|p| read::read_timeseries(&p, interval_s))
        .transpose()?;
    let itl = file("itl_histogram.csv")
        .map(|p| read::read_itl(&p))
        .transpose()?;
    if itl.is_none() {
        notes.push(
            "itl_histogram.csv is missing (runs before it existed); the every-gap ITL CDF is left out."
                .to_string(),
        );
    }
    let slo_s = |k: &str| {
        summary
            .as_ref()
            .and_then(|s| s.get("slo")?.get(k)?.as_f64())
    };
    let slo = plots::SloLines {
        ttft_s: slo_s("ttft_s"),
        tpot_s: slo_s("tpot_s"),
        e2e_s: slo_s("e2e_s"),
    };
    for (name, rows) in [
        ("requests.csv", requests.as_ref().map(|r| r.rows)),
        ("batches.csv", batches.as_ref().map(|b| b.rows)),
        ("timeseries.csv", timeseries.as_ref().map(|t| t.rows)),
    ] {
        if rows == Some(0) {
            notes.push(format!(
                "{name} has a header but no rows; nothing to plot from it."
            ));
        }
    }

    let figures = plots::figures(
        requests.as_ref(),
        itl.as_ref(),
        batches.as_ref(),
        timeseries.as_ref(),
        &slo,
    );
    let plot_dir = run_dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(io(&plot_dir))?;
    let mut rendered = Vec::with_capacity(figures.len());
    let (mut svgs, mut pngs) = (Vec::new(), Vec::new());
    for f in figures {
        let svg = f
            .chart
            .to_svg()
            .map_err(|message| ReportError::Plot { message })?;
        let svg_path = plot_dir.join(format!("{}.svg", f.chart.name));
        std::fs::write(&svg_path, &svg).map_err(io(&svg_path))?;
        let png_path = plot_dir.join(format!("{}.png", f.chart.name));
        f.chart
            .to_png(&png_path)
            .map_err(|message| ReportError::Plot {
                message: format!("{message} (writing {})", png_path.display()),
            })?;
        svgs.push(svg_path);
        pngs.push(png_path);
        rendered.push((f, svg));
    }

    let op_totals_ms = batches.as_ref().filter(|b| !b.op_ms.is_empty()).map(|b| {
        let mut t = [0.0; 15];
        for v in b.op_ms.values() {
            for (s, x) in t.iter_mut().zip(v) {
                *s += x;
            }
        }
        t
    });
    let run_name = run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string());
    let page = html::Page {
        run_name: &run_name,
        config: config.as_deref(),
        summary: summary.as_ref(),
        notes: &notes,
        figures: &rendered,
        op_totals_ms,
    };
    let html_path = run_dir.join("report.html");
    std::fs::write(&html_path, html::render(&page)).map_err(io(&html_path))?;
    Ok(ReportFiles {
        html: html_path,
        svgs,
        pngs,
        notes,
    })
}
