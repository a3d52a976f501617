//! The evaluation plots (Agarwal & Hooker, figures 4-7) drawn with plotters as SVG, and
//! rasterized to PNG with resvg using the embedded DejaVu Sans font, so both formats render
//! the same text on any machine without system fonts.
mod data_map;

pub use data_map::{data_map, MapPoint, Regions, REGION_CONFIDENCE};

use super::{Group, Memorization, TargetEval};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::DiscreteRanged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const SIZE: (u32, u32) = (640, 400);
const BAR: RGBColor = RGBColor(60, 110, 180);
const ACCENT: RGBColor = RGBColor(210, 80, 50);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

/// Vertical bars with category labels; values in percent.
pub fn bars(title: &str, labels: &[String], values: &[f64], y_label: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let top = axis(
            0.0,
            values.iter().cloned().fold(0.0, f64::max).max(1.0) * 1.1,
        )?
        .1;
        let n = labels.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_label)
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        // Drawn in order (plotters' Histogram keeps bars in a HashMap, so its SVG came out
        // in a different order on every run): the same file for the same values.
        let x = chart.as_coord_spec().x_spec();
        let rects: Vec<_> = values
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| {
                let at = x.index_of(&SegmentValue::Exact(i))?;
                let (left, right) = (x.from_index(at)?, x.from_index(at + 1)?);
                let mut bar = Rectangle::new([(left, v), (right, 0.0)], BAR.filled());
                bar.set_margin(0, 0, 6, 6);
                Some(bar)
            })
            .collect();
        chart.draw_series(rects).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Error of the ten VoG deciles (figure 4).
pub fn deciles(t: &TargetEval) -> Result<String> {
    let labels: Vec<String> = t.deciles.iter().map(|g| g.name.clone()).collect();
    let values: Vec<f64> = t.deciles.iter().map(|g| g.error).collect();
    bars(
        &format!("Error by VoG decile ({})", t.target),
        &labels,
        &values,
        "top-1 error (%)",
    )
}

/// Error of the bottom 10%, all, top 10% (figure 5).
pub fn groups(t: &TargetEval) -> Result<String> {
    let labels: Vec<String> = t
        .bottom_all_top
        .iter()
        .map(|g: &Group| g.name.clone())
        .collect();
    let values: Vec<f64> = t.bottom_all_top.iter().map(|g| g.error).collect();
    bars(
        &format!("Error of the lowest / all / highest VoG ({})", t.target),
        &labels,
        &values,
        "top-1 error (%)",
    )
}

/// The largest magnitude an axis may span: plotters computes its ticks in f32, and loops
/// forever on a NaN or infinite range.
const AXIS_LIMIT: f64 = 1e30;

/// `lo..hi` padded for drawing, refused when not finite or beyond [`AXIS_LIMIT`].
fn axis(lo: f64, hi: f64) -> Result<(f64, f64)> {
    let ok = |v: f64| v.is_finite() && v.abs() < AXIS_LIMIT;
    if !ok(lo) || !ok(hi) || lo > hi {
        return Err(anyhow!(
            "cannot plot values from {lo:e} to {hi:e}: beyond what a chart axis can show"
        ));
    }
    Ok(padded(lo, hi))
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
    (lo - pad, hi + pad)
}

/// Class-level mean |VoG| against false-negative rate, with the least-squares line (figure 6).
pub fn classes(t: &TargetEval) -> Result<String> {
    let pts: Vec<(f64, f64, &str)> = t
        .class_level
        .classes
        .iter()
        .map(|c| {
            (
                c.mean_abs_vog_raw,
                100.0 * c.false_negative_rate,
                c.name.as_str(),
            )
        })
        .collect();
    let (x0, x1) = axis(
        pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
    )?;
    let y1 = axis(0.0, pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15)?.1;
    let r = t
        .class_level
        .pearson_r
        .map_or("n/a".into(), |r| format!("{r:.2}"));
    let caption = format!(
        "Class mean |VoG| vs false-negative rate ({}, r = {r})",
        t.target
    );
    let mut svg = String::new();
    draw_classes(&mut svg, &caption, &pts, (x0, x1, y1))?;
    Ok(svg)
}

/// [`classes`]' chart of `pts` (x, y, class name) on axes 0..y1 over x0..x1.
fn draw_classes(
    svg: &mut String,
    caption: &str,
    pts: &[(f64, f64, &str)],
    (x0, x1, y1): (f64, f64, f64),
) -> Result<()> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean |vog_raw| of the class")
        .y_desc("false-negative rate (%)")
        .x_label_formatter(&|v| format!("{v:.2e}"))
        .draw()
        .map_err(err)?;
    if let Some((a, b)) = least_squares(&pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>()) {
        chart
            .draw_series(LineSeries::new(
                [(x0, a + b * x0), (x1, a + b * x1)],
                ACCENT.stroke_width(2),
            ))
            .map_err(err)?;
    }
    chart
        .draw_series(pts.iter().map(|&(x, y, name)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 4, BAR.filled())
                + Text::new(name.to_string(), (6, -12), ("sans-serif", 12))
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Lines over epochs: each series is (name, value per epoch); `None` values are skipped.
pub fn epoch_lines(
    title: &str,
    y_label: &str,
    epochs: &[usize],
    series: &[(&str, Vec<Option<f64>>)],
) -> Result<String> {
    let values = series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        axis(lo.min(0.0), hi)?
    } else {
        (0.0, 1.0)
    };
    let last = epochs.last().copied().unwrap_or(1).max(2);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..last as f64, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        let lines = series.iter().enumerate().map(|(i, (name, v))| {
            let pts: Vec<(f64, f64)> = epochs
                .iter()
                .zip(v)
                .filter_map(|(&e, v)| v.map(|v| (e as f64, v)))
                .collect();
            (name.to_string(), if i == 0 { BAR } else { ACCENT }, pts)
        });
        draw_lines(&mut chart, lines, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Test accuracy (y, 0-1) against the fraction removed (x), one line per named series.
/// A point of [`fraction_lines`]: a mean at `x`, with its interval where there is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimated {
    pub x: f64,
    pub mean: f64,
    pub interval: Option<(f64, f64)>,
}

/// Test accuracy against the fraction removed: one line per series through the means,
/// each interval a vertical bar (the series' bars shifted apart a little, so they do not
/// hide one another).
pub fn fraction_lines(title: &str, series: &[(String, Vec<Estimated>)]) -> Result<String> {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(120, 120, 120),
        BAR,
        ACCENT,
        RGBColor(60, 150, 80),
        RGBColor(150, 80, 170),
        RGBColor(200, 150, 30),
    ];
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (lo, hi) = pts.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
        let (a, b) = p.interval.unwrap_or((p.mean, p.mean));
        (l.min(a).min(p.mean), h.max(b).max(p.mean))
    });
    let (lo, hi) = axis(lo, hi)?;
    let right = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.x))
        .fold(0.01, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            // Room either side for the shifted intervals.
            .build_cartesian_2d(-0.04 * right..1.04 * right, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("fraction of training examples removed")
            .y_desc("test accuracy")
            .draw()
            .map_err(err)?;
        let colour = |i: usize| PALETTE[i % PALETTE.len()];
        draw_intervals(&mut chart, series, colour, right)?;
        let lines = series.iter().enumerate().map(|(i, (name, p))| {
            (
                name.clone(),
                colour(i),
                p.iter().map(|e| (e.x, e.mean)).collect(),
            )
        });
        // The intervals end at the right edge: the legend goes where the lines start.
        draw_lines(&mut chart, lines, SeriesLabelPosition::LowerLeft)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Each series' intervals as vertical bars, shifted apart by a little of `right`.
fn draw_intervals<DB: DrawingBackend>(
    chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[(String, Vec<Estimated>)],
    colour: impl Fn(usize) -> RGBColor,
    right: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, (_, p)) in series.iter().enumerate() {
        let shift = right * 0.008 * (i as f64 - (series.len() as f64 - 1.0) / 2.0);
        let bars = p.iter().filter_map(|e| {
            let x = e.x + shift;
            e.interval
                .map(|(a, b)| PathElement::new(vec![(x, a), (x, b)], colour(i).stroke_width(2)))
        });
        chart.draw_series(bars).map_err(err)?;
    }
    Ok(())
}

/// Draws each (name, colour, points) as a line with a legend entry, then the legend at
/// `legend`.
fn draw_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: impl Iterator<Item = (String, RGBColor, Vec<(f64, f64)>)>,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (name, colour, pts) in lines {
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Intercept and slope of the least-squares line through `pts`.
pub fn least_squares(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if pts.len() < 2 || sxx == 0.0 {
        return None;
    }
    let b = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    Some((my - b * mx, b))
}

/// Box plots of raw VoG, shuffled vs correctly labelled (figure 7).
pub fn memorization(target: &str, m: &Memorization) -> Result<String> {
    let boxes = [("shuffled", &m.shuffled), ("clean", &m.clean)];
    let (y0, y1) = axis(
        m.shuffled.min.min(m.clean.min),
        m.shuffled.max.max(m.clean.max),
    )?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Raw VoG, shuffled vs clean labels ({target}, AUROC {:.2})",
                    m.test.auroc
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0..1usize).into_segmented(), y0 as f32..y1 as f32)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("vog_raw")
            .y_label_formatter(&|v| format!("{v:.2e}"))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => boxes
                    .get(*i)
                    .map_or(String::new(), |b| format!("{} (n={})", b.0, b.1.count)),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(boxes.iter().enumerate().map(|(i, (_, s))| {
                let q = Quartiles::new(&[s.min, s.q1, s.median, s.q3, s.max]);
                Boxplot::new_vertical(SegmentValue::CenterOf(i), &q)
                    .width(60)
                    .style(if i == 0 { ACCENT } else { BAR })
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Histogram of class-normalized VoG in 30 bins.
pub fn histogram(target: &str, values: &[f64]) -> Result<String> {
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    axis(lo, hi)?;
    let bins = 30;
    let width = ((hi - lo) / bins as f64).max(1e-12);
    let mut counts = vec![0.0; bins];
    for v in values {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1.0;
    }
    let labels: Vec<String> = (0..bins)
        .map(|b| {
            if b % 5 == 0 {
                format!("{:.1}", lo + b as f64 * width)
            } else {
                String::new()
            }
        })
        .collect();
    bars(
        &format!("Distribution of class-normalized VoG ({target})"),
        &labels,
        &counts,
        "examples",
    )
}

pub use crate::raster::svg_to_png;

/// Writes `NAME.svg` and `NAME.png` into `dir`; returns the PNG path.
pub fn save(dir: &Path, name: &str, svg: &str) -> Result<PathBuf> {
    crate::atomic_file::write_bytes(&dir.join(format!("{name}.svg")), svg.as_bytes())?;
    let png = dir.join(format!("{name}.png"));
    crate::atomic_file::write_bytes(&png, &svg_to_png(svg)?)?;
    Ok(png)
}

/// Every plot of one target as (file stem, SVG).
pub fn all(t: &TargetEval, z: &[f64]) -> Result<Vec<(String, String)>> {
    let mut out = vec![
        (format!("deciles-{}", t.target), deciles(t)?),
        (format!("groups-{}", t.target), groups(t)?),
        (format!("classes-{}", t.target), classes(t)?),
        (format!("histogram-{}", t.target), histogram(&t.target, z)?),
    ];
    if let Some(m) = &t.memorization {
        out.push((
            format!("memorization-{}", t.target),
            memorization(&t.target, m)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_map_regions_partition() {
        // Variability 0..9 (tenths): the top third (4 of 10: 0.6..0.9) is ambiguous.
        let points: Vec<MapPoint> = (0..10)
            .map(|i| MapPoint {
                variability: i as f64 / 10.0,
                confidence: if i % 2 == 0 { 0.9 } else { 0.2 },
                correctness: 1.0,
                marked: i == 1 || i == 9,
            })
            .collect();
        let r = Regions::of(&points);
        assert_eq!(r.variability, 0.6);
        // Easy: 0, 2, 4; hard: 1, 3, 5; ambiguous: 6..9.
        assert_eq!((r.easy, r.ambiguous, r.hard), (3, 4, 3));
        assert_eq!(r.marked, [0, 1, 1]);
    }

    #[test]
    fn bars_render_to_svg_and_png() {
        let labels: Vec<String> = (1..=10).map(|d| format!("D{d}")).collect();
        let svg = bars(
            "t",
            &labels,
            &[5.0, 10.0, 3.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 60.0],
            "error",
        )
        .unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("D10"),
            "{}",
            &svg[..200]
        );
        let png = svg_to_png(&svg).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        // Some pixels carry the bar colour, and text was drawn (dark pixels).
        assert!(img.pixels().any(|p| p.0 == [BAR.0, BAR.1, BAR.2]));
        assert!(img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count() > 200);
    }

    #[test]
    fn data_map_renders() {
        let points: Vec<MapPoint> = (0..50)
            .map(|i| MapPoint {
                variability: f64::from(i) / 200.0,
                confidence: f64::from(i) / 50.0,
                correctness: f64::from(i % 5) / 4.0,
                marked: i % 7 == 0,
            })
            .collect();
        let svg = data_map(&points, "shuffled").unwrap();
        assert!(svg.contains("easy-to-learn: ") && svg.contains("ambiguous: "));
        assert!(svg.contains("Data Map") && svg.contains("variability"));
        let png = svg_to_png(&svg).unwrap();
        assert_eq!(image::load_from_memory(&png).unwrap().width(), SIZE.0);
    }

    #[test]
    fn least_squares_line() {
        let (a, b) = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12);
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
