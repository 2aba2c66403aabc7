//! The frontier plots (SVG written directly: every point of the space in grey, the Pareto
//! frontier as a connected line, the SLO limit as a dashed line) and `search.html`.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tick positions covering `[lo, hi]` with a 1-2-5 step.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A scatter plot of `all` (x = latency s, y = requests/USD) with `front` joined by a line and a
/// vertical dashed line at `limit_s`.
pub fn frontier_svg(
    title: &str,
    x_label: &str,
    all: &[(f64, f64)],
    front: &[(f64, f64)],
    limit_s: Option<f64>,
) -> String {
    let (w, h) = (640.0, 420.0);
    let (ml, mr, mt, mb) = (70.0, 20.0, 36.0, 50.0);
    let xs = all.iter().map(|p| p.0).chain(limit_s);
    let x_hi = xs.fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let y_hi = all.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let px = |x: f64| ml + x / x_hi * (w - ml - mr);
    let py = |y: f64| h - mb - y / y_hi * (h - mt - mb);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for t in ticks(0.0, x_hi) {
        let x = px(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{mt}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            h - mb,
            h - mb + 16.0,
            fmt_tick(t)
        );
    }
    for t in ticks(0.0, y_hi) {
        let y = py(t);
        let _ = write!(
            s,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - mr,
            ml - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{ml}" y="{mt}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        w - ml - mr,
        h - mt - mb
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (ml + w - mr) / 2.0,
        h - 12.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">requests per USD at capacity</text>"#,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0
    );
    if let Some(l) = limit_s {
        let x = px(l);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{mt}" x2="{x:.1}" y2="{:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c0392b">SLO {}</text>"##,
            h - mb,
            x - 4.0,
            mt + 14.0,
            fmt_tick(l)
        );
    }
    for (x, y) in all {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#999" fill-opacity="0.6"/>"##,
            px(*x),
            py(*y)
        );
    }
    if !front.is_empty() {
        let pts: Vec<String> = front
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##,
            pts.join(" ")
        );
        for (x, y) in front {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="#1f77b4"/>"##,
                px(*x),
                py(*y)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(0.0, 37.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() <= 37.0 && t.len() >= 4, "{t:?}");
    }

    #[test]
    fn svg_has_every_point_and_escapes_text() {
        let svg = frontier_svg(
            "a<b",
            "TTFT",
            &[(1.0, 2.0), (2.0, 1.0)],
            &[(1.0, 2.0)],
            Some(1.5),
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a&lt;b") && svg.contains("SLO 1.5"));
    }
}
