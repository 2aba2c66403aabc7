//! A small chart model (lines, histogram, stacked bars) and its rendering with `plotters`, to SVG
//! text and to PNG files, with the embedded font.

use std::path::Path;
use std::sync::OnceLock;

use plotters::chart::MeshStyle;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

/// Width and height of every plot, in pixels.
pub const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";

/// Colours for series, chosen to stay distinct from one another and legible on white.
pub const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(219, 219, 141),
];

/// Registers the embedded DejaVu Sans as `sans-serif` (once per process), so text renders with no
/// system fonts installed.
pub fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| "the embedded font could not be loaded".to_string())
    })
    .clone()
}

/// One line of a line chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in data coordinates, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Index into [`PALETTE`], or `None` for black.
    pub color: Option<usize>,
    /// Line width in pixels.
    pub width: u32,
    /// A dot at every point (few points, e.g. one per rate of a sweep).
    pub markers: bool,
    /// Dashed (a reference such as `served = offered`).
    pub dashed: bool,
}

/// A labelled point (a percentile on a CDF).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// X, data coordinates.
    pub x: f64,
    /// Y, data coordinates.
    pub y: f64,
    /// Text beside it.
    pub label: String,
}

/// Which axis a [`Rule`] crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAxis {
    /// A vertical line at an x value.
    X,
    /// A horizontal line at a y value.
    Y,
}

/// A dashed reference line across the plot (an SLO, the knee of a sweep), labelled in the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Vertical or horizontal.
    pub axis: RuleAxis,
    /// Where, data coordinates.
    pub at: f64,
    /// Key label.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
}

/// Colour of SLO rules.
pub const SLO_RED: RGBColor = RGBColor(192, 57, 43);
/// Colour of the knee rule.
pub const KNEE_GREY: RGBColor = RGBColor(90, 90, 90);

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range, widened if a value falls outside.
    pub y_range: Option<(f64, f64)>,
    /// Logarithmic x axis (points with x ≤ 0 are left out).
    pub x_log: bool,
    /// Logarithmic y axis (points with y ≤ 0 are left out).
    pub y_log: bool,
    /// Tick labels only at whole numbers (counts).
    pub y_integer: bool,
    /// Labelled points.
    pub marks: Vec<Mark>,
    /// Reference lines.
    pub rules: Vec<Rule>,
    /// When no corner is free for the legend, widen the x axis to the right (CDFs, whose y axis
    /// is a fraction) instead of raising the y axis.
    pub legend_room_right: bool,
}

/// What a chart draws.
#[derive(Debug, Clone)]
pub enum Body {
    /// Lines over a numeric x axis.
    Lines(Lines),
    /// Bars over numeric bins: `(x from, x to, height)`.
    Histogram(Vec<(f64, f64, f64)>),
    /// One stacked bar per category; each layer gives its name and one value per category.
    Stacked {
        /// Bar labels.
        categories: Vec<String>,
        /// `(layer name, value per category)`, bottom layer first.
        layers: Vec<(String, Vec<f64>)>,
    },
}

/// A chart: title, axis labels (with units) and body.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem under `plots/` (`ttft_cdf` gives `plots/ttft_cdf.svg` and `.png`).
    pub name: String,
    /// Title drawn above the plot.
    pub title: String,
    /// X axis label with unit.
    pub x_label: String,
    /// Y axis label with unit.
    pub y_label: String,
    /// What to draw.
    pub body: Body,
}

impl Chart {
    /// Renders to SVG text.
    pub fn to_svg(&self) -> Result<String, String> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// Renders to a PNG file.
    pub fn to_png(&self, path: &Path) -> Result<(), String> {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        self.draw(&root)?;
        root.present().map_err(|e| e.to_string())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        register_font()?;
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        match &self.body {
            Body::Lines(lines) => self.draw_lines(root, lines),
            Body::Histogram(bins) => self.draw_histogram(root, bins),
            Body::Stacked { categories, layers } => self.draw_stacked(root, categories, layers),
        }
        .map_err(|e| format!("plot `{}`: {e}", self.name))
    }

    fn draw_lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        l: &Lines,
    ) -> Result<(), String> {
        let keep = |p: &(f64, f64)| (!l.x_log || p.0 > 0.0) && (!l.y_log || p.1 > 0.0);
        let series: Vec<Series> = l
            .series
            .iter()
            .map(|s| Series {
                points: s.points.iter().copied().filter(keep).collect(),
                ..s.clone()
            })
            .collect();
        let marks: Vec<&Mark> = l.marks.iter().filter(|m| keep(&(m.x, m.y))).collect();
        let pts = series.iter().flat_map(|s| s.points.iter());
        let rule_x = l
            .rules
            .iter()
            .filter(|r| r.axis == RuleAxis::X)
            .map(|r| r.at);
        let rule_y = l
            .rules
            .iter()
            .filter(|r| r.axis == RuleAxis::Y)
            .map(|r| r.at);
        let xs = pts.clone().map(|p| p.0).chain(rule_x);
        let ys = pts.map(|p| p.1).chain(rule_y);
        let (mut x, mut y) = bounds(xs.clone(), ys.clone());
        if l.x_log {
            x = log_bounds(xs);
        }
        if l.y_log {
            y = log_bounds(ys);
        }
        if let Some((lo, hi)) = l.y_range {
            y = (y.0.min(lo), y.1.max(hi));
        }
        if l.y_integer && !l.y_log {
            y.1 = y.1.max(1.0).ceil();
        }
        // The legend's share of the plot: about 30% of the width, one row per entry.
        let entries = series.len() + l.rules.len();
        let legend_h = (0.055 * entries as f64 + 0.05).min(0.9);
        // The legend goes to the first corner free of data (upper right, lower right, upper left,
        // lower left); when none is, the y axis grows so it sits above the data at the upper right.
        let corners = [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerLeft,
        ];
        let fx = |v: f64| if l.x_log { v.log10() } else { v };
        let fy = |v: f64| if l.y_log { v.log10() } else { v };
        let pts = series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(a, b)| (fx(a), fy(b))));
        let position = match free_corner(pts, (fx(x.0), fx(x.1)), (fy(y.0), fy(y.1)), legend_h) {
            Some(i) => corners[i].clone(),
            None if l.legend_room_right => {
                // The data then fills the left 66 % of the width.
                if l.x_log {
                    x.1 = x.0 * (x.1 / x.0).powf(1.0 / 0.66);
                } else {
                    x.1 = x.0 + (x.1 - x.0) / 0.66;
                }
                SeriesLabelPosition::UpperRight
            }
            None => {
                if l.y_log {
                    y.1 *= 10f64.powf((y.1 / y.0).log10() * legend_h / (1.0 - legend_h));
                } else {
                    y.1 += (y.1 - y.0) * legend_h / (1.0 - legend_h);
                }
                SeriesLabelPosition::UpperRight
            }
        };
        let mut b = ChartBuilder::on(root);
        b.caption(&self.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84);
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let y_labels = if l.y_integer && !l.y_log && y.1 <= 10.0 {
            y.1 as usize + 1
        } else {
            10
        };
        let d = LinesDraw {
            series: &series,
            marks: &marks,
            rules: &l.rules,
            x,
            y,
            position,
            y_labels,
            y_integer: l.y_integer,
        };
        match (l.x_log, l.y_log) {
            (false, false) => {
                self.lines_on(b.build_cartesian_2d(x.0..x.1, y.0..y.1).map_err(e)?, &d)
            }
            (true, false) => {
                self.lines_on(b.build_cartesian_2d(log_axis(x), y.0..y.1).map_err(e)?, &d)
            }
            (false, true) => {
                self.lines_on(b.build_cartesian_2d(x.0..x.1, log_axis(y)).map_err(e)?, &d)
            }
            (true, true) => self.lines_on(
                b.build_cartesian_2d(log_axis(x), log_axis(y)).map_err(e)?,
                &d,
            ),
        }
    }

    fn lines_on<'a, DB, X, Y>(
        &self,
        mut chart: ChartContext<'a, DB, Cartesian2d<X, Y>>,
        d: &LinesDraw<'_>,
    ) -> Result<(), String>
    where
        DB: DrawingBackend + 'a,
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let integer = d.y_integer;
        self.style(&mut chart.configure_mesh())
            .y_label_formatter(&|v| {
                if integer && v.fract() != 0.0 {
                    String::new()
                } else {
                    tick(*v)
                }
            })
            .y_labels(d.y_labels)
            .draw()
            .map_err(|e| e.to_string())?;
        for r in d.rules {
            let style = r.color.stroke_width(2);
            let line = match r.axis {
                RuleAxis::X => [(r.at, d.y.0), (r.at, d.y.1)],
                RuleAxis::Y => [(d.x.0, r.at), (d.x.1, r.at)],
            };
            chart
                .draw_series(DashedLineSeries::new(line, 8, 5, style))
                .map_err(|e| e.to_string())?
                .label(r.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        for s in d.series {
            let color = s.color.map_or(BLACK, |i| PALETTE[i % PALETTE.len()]);
            let style = color.stroke_width(s.width);
            let drawn = if s.dashed {
                chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(s.points.iter().copied(), style))
            };
            drawn
                .map_err(|e| e.to_string())?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            if s.markers {
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|&p| Circle::new(p, s.width + 2, color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        // Percentile marks: a dot on the line and the label below it, to the right (to the left
        // near the right edge), pushed down so labels of close points (p99, max) do not overlap.
        let (x0, _) = chart.plotting_area().get_base_pixel();
        let (w, _) = chart.plotting_area().dim_in_pixel();
        let mut below = i32::MIN;
        let mut marks: Vec<&&Mark> = d.marks.iter().collect();
        marks.sort_by(|a, b| b.y.total_cmp(&a.y));
        for m in marks {
            let (px, py) = chart.backend_coord(&(m.x, m.y));
            let top = (py + 4).max(below);
            below = top + 18;
            let left = px > x0 + (w as f64 * 0.72) as i32;
            let style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(
                if left { HPos::Right } else { HPos::Left },
                VPos::Top,
            ));
            chart
                .draw_series([EmptyElement::at((m.x, m.y))
                    + Circle::new((0, 0), 5, BLACK.filled())
                    + Text::new(
                        m.label.clone(),
                        (if left { -8 } else { 8 }, top - py),
                        style,
                    )])
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(d.position.clone())
            .margin(12)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.5))
            .draw()
            .map_err(|e| e.to_string())
    }

    fn draw_histogram<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        bins: &[(f64, f64, f64)],
    ) -> Result<(), String> {
        // Counts on a log scale: decode-only batches usually outnumber prefill-heavy ones by orders
        // of magnitude, and a linear axis would hide the latter.
        let xs = bins.iter().flat_map(|b| [b.0, b.1]);
        let (x, _) = bounds(xs, std::iter::empty());
        let top = bins.iter().map(|b| b.2).fold(1.0f64, f64::max) * 1.6;
        let floor = 0.7;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(x.0..x.1, (floor..top).log_scale())
            .map_err(|e| e.to_string())?;
        self.style(&mut chart.configure_mesh())
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                bins.iter().filter(|b| b.2 > 0.0).map(|&(x0, x1, h)| {
                    Rectangle::new([(x0, floor), (x1, h)], PALETTE[0].filled())
                }),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                bins.iter().filter(|b| b.2 > 0.0).map(|&(x0, x1, h)| {
                    Rectangle::new([(x0, floor), (x1, h)], WHITE.stroke_width(1))
                }),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn draw_stacked<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        categories: &[String],
        layers: &[(String, Vec<f64>)],
    ) -> Result<(), String> {
        let (plot, key) = root.split_horizontally(SIZE.0 as i32 * 62 / 100);
        let n = categories.len().max(1) as f64;
        let top = (0..categories.len())
            .map(|c| layers.iter().map(|l| l.1[c]).sum::<f64>())
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 { top * 1.05 } else { 1.0 };
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(0.0..n, 0.0..top)
            .map_err(|e| e.to_string())?;
        let cats = categories.to_vec();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(categories.len().max(1) * 2 + 1)
            .x_label_formatter(&move |v| {
                let i = v.floor();
                if (v - i - 0.5).abs() < 1e-6 && i >= 0.0 {
                    cats.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| tick(*v))
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style((FONT, 17))
            .label_style((FONT, 15))
            .draw()
            .map_err(|e| e.to_string())?;
        for c in 0..categories.len() {
            let mut bottom = 0.0;
            for (k, (_, values)) in layers.iter().enumerate() {
                let v = values[c];
                if v <= 0.0 {
                    continue;
                }
                let color = PALETTE[k % PALETTE.len()];
                chart
                    .draw_series([Rectangle::new(
                        [(c as f64 + 0.2, bottom), (c as f64 + 0.8, bottom + v)],
                        color.filled(),
                    )])
                    .map_err(|e| e.to_string())?;
                bottom += v;
            }
        }
        // The key: one swatch and label per layer, top layer first (as stacked).
        let row = 26;
        let y0 = 70;
        key.draw(&Text::new(
            "Operator (share of all replicas)",
            (8, y0 - 34),
            (FONT, 16),
        ))
        .map_err(|e| e.to_string())?;
        let totals: Vec<f64> = layers.iter().map(|l| l.1.iter().sum()).collect();
        let grand: f64 = totals.iter().sum();
        for (row_i, (k, (name, _))) in layers.iter().enumerate().rev().enumerate() {
            let y = y0 + row_i as i32 * row;
            let color = PALETTE[k % PALETTE.len()];
            key.draw(&Rectangle::new([(8, y), (26, y + 18)], color.filled()))
                .map_err(|e| e.to_string())?;
            let share = if grand > 0.0 {
                100.0 * totals[k] / grand
            } else {
                0.0
            };
            key.draw(&Text::new(
                format!("{name}  {share:.1}%"),
                (34, y + 2),
                (FONT, 15),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Chart {
    /// The mesh style of every numeric chart: short tick labels, the axis labels, light grid.
    fn style<'m, 'a, 'b, X, Y, DB>(
        &self,
        m: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    ) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
        DB: DrawingBackend,
    {
        m.x_label_formatter(&tick_of)
            .y_label_formatter(&tick_of)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style((FONT, 17))
            .label_style((FONT, 15))
            .light_line_style(BLACK.mix(0.04))
            .bold_line_style(BLACK.mix(0.12))
    }
}

/// What [`Chart::lines_on`] draws, once the axes are built.
struct LinesDraw<'a> {
    series: &'a [Series],
    marks: &'a [&'a Mark],
    rules: &'a [Rule],
    x: (f64, f64),
    y: (f64, f64),
    position: SeriesLabelPosition,
    y_labels: usize,
    y_integer: bool,
}

/// A log axis over `(lo, hi)` with ticks at 1, 2 and 5 times powers of ten (every whole multiple
/// when that gives fewer than three), and light grid lines at every whole multiple.
fn log_axis(r: (f64, f64)) -> WithKeyPoints<LogCoord<f64>> {
    let (bold, light) = log_ticks(r);
    (r.0..r.1)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// The ticks of [`log_axis`]: (labelled, light). Labels at 1, 2 and 5 times powers of ten when
/// they cover the axis (at least three, no gap wider than 35 % of it), else at the first finer
/// set of mantissas that does.
pub fn log_ticks(r: (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    const SETS: [&[f64]; 4] = [
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[
            1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.2, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0,
            7.0, 8.0, 9.0,
        ],
    ];
    let (lo, hi) = (r.0.max(f64::MIN_POSITIVE), r.1.max(r.0));
    let within = |set: &[f64]| {
        let mut v = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi * 1.000_001 {
            for m in set {
                let x = (m * decade * 1e9).round() / 1e9;
                if x >= lo * 0.999_999 && x <= hi * 1.000_001 {
                    v.push(x);
                }
            }
            decade *= 10.0;
        }
        v
    };
    let covers = |v: &[f64]| {
        let span = (hi / lo).log10().max(1e-12);
        let mut edges = vec![lo];
        edges.extend_from_slice(v);
        edges.push(hi);
        v.len() >= 3
            && edges
                .windows(2)
                .all(|w| (w[1] / w[0]).log10() <= 0.35 * span)
    };
    let light = within(SETS[1]);
    for set in SETS {
        let v = within(set);
        if covers(&v) {
            return (v, light);
        }
    }
    (within(SETS[3]), light)
}

/// Log-axis bounds covering the positive values with a little room (1 to 10 when none is).
fn log_bounds(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let (lo, hi) = (lo / 1.15, hi * 1.15);
    if hi / lo < 2.0 {
        let mid = (lo * hi).sqrt();
        (mid / 1.5, mid * 1.5)
    } else {
        (lo, hi)
    }
}

/// The first corner (0 upper right, 1 lower right, 2 upper left, 3 lower left) whose legend-sized
/// box (32% of the width, `legend_h` of the height) holds none of the points, if any.
fn free_corner(
    points: impl Iterator<Item = (f64, f64)> + Clone,
    x: (f64, f64),
    y: (f64, f64),
    legend_h: f64,
) -> Option<usize> {
    [(true, true), (true, false), (false, true), (false, false)]
        .into_iter()
        .position(|(right, upper)| {
            !points.clone().any(|(px, py)| {
                let fx = (px - x.0) / (x.1 - x.0);
                let fy = (py - y.0) / (y.1 - y.0);
                let in_x = if right { fx >= 0.68 } else { fx <= 0.32 };
                let in_y = if upper {
                    fy >= 1.0 - legend_h
                } else {
                    fy <= legend_h
                };
                in_x && in_y
            })
        })
}

/// Axis ranges covering the values, padded a little, never empty. The y axis starts at 0 (or below,
/// for negative values); so does the x axis unless every x is far from 0 (above a quarter of the
/// largest), when it starts just below the smallest x, so a narrow distribution is not squeezed into
/// a line.
fn bounds(
    xs: impl Iterator<Item = f64>,
    ys: impl Iterator<Item = f64>,
) -> ((f64, f64), (f64, f64)) {
    fn range(vals: impl Iterator<Item = f64>, tight: bool) -> (f64, f64) {
        let (lo, hi) = vals
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let lo = if tight && lo > 0.25 * hi && hi > lo {
            (lo - (hi - lo) * 0.05).max(0.0)
        } else {
            lo.min(0.0)
        };
        let span = hi - lo;
        if span <= 0.0 {
            (lo, lo + if hi.abs() > 0.0 { hi.abs() } else { 1.0 })
        } else {
            (lo, hi + span * 0.03)
        }
    }
    (range(xs, true), range(ys, false))
}

/// [`tick`] of a borrowed value (a mesh label formatter).
fn tick_of(v: &f64) -> String {
    tick(*v)
}

/// A tick label: up to 4 significant digits, no trailing zeros, thousands as `k`, millions as `M`.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6, 3))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3, 3))
    } else {
        trim(v, 4)
    }
}

fn trim(v: f64, sig: i32) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let digits = (sig - 1 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_goes_to_a_free_corner() {
        let r = (0.0, 10.0);
        // A rising line: upper right and lower left are taken.
        let rising: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(free_corner(rising.iter().copied(), r, r, 0.2), Some(1));
        // A flat line at the top: lower right.
        let top: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, 9.5)).collect();
        assert_eq!(free_corner(top.iter().copied(), r, r, 0.2), Some(1));
        // Points in every corner: none.
        let all = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)];
        assert_eq!(free_corner(all.iter().copied(), r, r, 0.2), None);
        assert_eq!(free_corner(std::iter::empty(), r, r, 0.2), Some(0));
    }

    #[test]
    fn x_axis_starts_near_narrow_data() {
        let (x, y) = bounds([14.0, 20.0].into_iter(), [0.5, 1.0].into_iter());
        assert!((x.0 - 13.7).abs() < 1e-9 && x.1 > 20.0, "{x:?}");
        assert_eq!(y.0, 0.0);
        let (x, _) = bounds([1.0, 20.0].into_iter(), [1.0].into_iter());
        assert_eq!(x.0, 0.0);
    }

    #[test]
    fn log_ticks_are_one_two_five_or_every_multiple() {
        let (bold, light) = log_ticks((8.0, 1200.0));
        assert_eq!(bold, vec![10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
        assert!(light.contains(&30.0) && light.contains(&9.0));
        let (bold, _) = log_ticks((35.0, 95.0));
        assert_eq!(bold, vec![40.0, 50.0, 60.0, 70.0, 80.0, 90.0]);
        let (bold, _) = log_ticks((6.0, 16.0));
        assert_eq!(bold, vec![6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0]);
    }

    #[test]
    fn log_and_integer_axes_render() {
        let c = Chart {
            name: "t".into(),
            title: "Log".into(),
            x_label: "Latency (ms)".into(),
            y_label: "Requests".into(),
            body: Body::Lines(Lines {
                series: vec![Series {
                    name: "all".into(),
                    points: vec![(0.0, 0.0), (10.0, 1.0), (1000.0, 2.0)],
                    width: 2,
                    markers: true,
                    ..Default::default()
                }],
                x_log: true,
                y_integer: true,
                marks: vec![Mark {
                    x: 10.0,
                    y: 1.0,
                    label: "p50 10 ms".into(),
                }],
                rules: vec![Rule {
                    axis: RuleAxis::X,
                    at: 500.0,
                    label: "SLO 500 ms".into(),
                    color: SLO_RED,
                }],
                ..Default::default()
            }),
        };
        let svg = c.to_svg().unwrap();
        for s in ["p50 10 ms", "SLO 500 ms", "\n100\n", "\n1k\n", "\n2\n"] {
            assert!(svg.contains(s), "missing {s:?}");
        }
        assert!(
            !svg.contains("\n0.5\n"),
            "no fractional ticks on a count axis"
        );
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(1.25), "1.25");
        assert_eq!(tick(2500.0), "2.5k");
        assert_eq!(tick(999.0), "999");
        assert_eq!(tick(25000.0), "25k");
        assert_eq!(tick(3_500_000.0), "3.5M");
        assert_eq!(tick(-0.0001), "-0.0001");
    }

    #[test]
    fn svg_has_title_axis_labels_and_legend() {
        let c = Chart {
            name: "t".into(),
            title: "My title".into(),
            x_label: "Latency (ms)".into(),
            y_label: "Fraction".into(),
            body: Body::Lines(Lines {
                series: vec![Series {
                    name: "replica 0".into(),
                    points: vec![(0.0, 0.0), (1.0, 1.0)],
                    color: Some(0),
                    width: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let svg = c.to_svg().unwrap();
        for s in [
            "My title",
            "Latency (ms)",
            "Fraction",
            "replica 0",
            "<polyline",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
        assert_eq!(svg, c.to_svg().unwrap(), "rendering is deterministic");
    }
}
