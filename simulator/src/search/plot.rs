//! The frontier plots (plotters SVG: every configuration with a capacity in grey, the Pareto
//! frontier as a connected line with each point labelled by its configuration's index, the SLO
//! limit dashed) and HTML escaping for `search.html`.

use plotters::prelude::*;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const FONT: &str = "sans-serif";
/// Width and height of the frontier plots, pixels.
pub const SIZE: (u32, u32) = (800, 500);

/// A scatter plot of `all` (x = latency s, y = requests/USD) with `front` joined by a line, each
/// of its points labelled (`front_labels`, e.g. `#12`), and a dashed vertical line at `limit_s`,
/// as SVG text (plotters, with the report's embedded font).
pub fn frontier_svg(
    title: &str,
    x_label: &str,
    all: &[(f64, f64)],
    front: &[(f64, f64)],
    front_labels: &[String],
    limit_s: Option<f64>,
) -> Result<String, String> {
    crate::report::register_font()?;
    let x_hi = all
        .iter()
        .map(|p| p.0)
        .chain(limit_s)
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.08;
    // Headroom above the highest point keeps the legend (upper left) off the data.
    let y_hi = all.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.35;
    let mut out = String::new();
    {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(76)
            .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("requests per USD at capacity")
            .axis_desc_style((FONT, 15))
            .label_style((FONT, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(|x| e(&x))?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(
                all.iter()
                    .map(|&p| Circle::new(p, 3, grey.mix(0.7).filled())),
            )
            .map_err(|x| e(&x))?
            .label("configuration with a capacity")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
        let blue = RGBColor(31, 119, 180);
        chart
            .draw_series(LineSeries::new(front.iter().copied(), blue.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label("Pareto frontier (#: configuration index)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2))
            });
        chart
            .draw_series(front.iter().zip(front_labels).map(|(&p, l)| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), 5, blue.filled())
                    + Text::new(l.clone(), (7, -16), (FONT, 13).into_font())
            }))
            .map_err(|x| e(&x))?;
        if let Some(l) = limit_s {
            let red = RGBColor(192, 57, 43);
            chart
                .draw_series(DashedLineSeries::new(
                    [(l, 0.0), (l, y_hi)],
                    8,
                    5,
                    red.stroke_width(2),
                ))
                .map_err(|x| e(&x))?
                .label(format!("SLO {l} s"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_every_point_and_escapes_text() {
        let all = [(1.0, 2.0), (2.0, 1.0), (0.5, 0.5)];
        let labels = vec!["#7".to_string()];
        let svg = frontier_svg("a<b", "TTFT", &all, &all[..1], &labels, Some(1.5)).unwrap();
        // three grey points, one frontier point, two legend markers
        assert!(svg.matches("<circle").count() >= 4, "{svg}");
        assert!(svg.contains("a&lt;b") && svg.contains("SLO 1.5 s"), "{svg}");
        assert!(
            svg.contains("\n#7\n"),
            "the frontier point is labelled: {svg}"
        );
        assert_eq!(
            svg,
            frontier_svg("a<b", "TTFT", &all, &all[..1], &labels, Some(1.5)).unwrap()
        );
    }
}
