//! The Data Map (Swayamdipta et al. 2020): each training example placed by its confidence
//! and variability over epochs, coloured by correctness, shuffled labels ringed, and the
//! three regions (ambiguous, easy-to-learn, hard-to-learn) marked with their counts.
use super::{axis, err, SIZE};
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One training example on a Data Map.
pub struct MapPoint {
    pub variability: f64,
    pub confidence: f64,
    /// Fraction of epochs predicted right: the colour, red (0) to green (1).
    pub correctness: f64,
    /// Shuffled or flagged: drawn as a black ring on top.
    pub marked: bool,
}

/// The three regions of a Data Map, as a partition: ambiguous = the third of the examples
/// with the highest variability; of the rest, easy-to-learn = confidence at least 0.5,
/// hard-to-learn = below. (Swayamdipta et al. 2020 name the regions; their selections
/// are top thirds that may overlap.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regions {
    /// The variability from which an example is ambiguous.
    pub variability: f64,
    pub easy: usize,
    pub ambiguous: usize,
    pub hard: usize,
    /// Marked examples (shuffled, flagged) in each: easy, ambiguous, hard.
    pub marked: [usize; 3],
}

/// Confidence that separates easy-to-learn from hard-to-learn.
pub const REGION_CONFIDENCE: f64 = 0.5;

impl Regions {
    pub fn of(points: &[MapPoint]) -> Regions {
        let mut v: Vec<f64> = points.iter().map(|p| p.variability).collect();
        v.sort_by(f64::total_cmp);
        // The top third: from the value at the (n - ceil(n/3))-th position on.
        let at = v.len() - v.len().div_ceil(3);
        let variability = v.get(at).copied().unwrap_or(f64::INFINITY);
        let mut r = Regions {
            variability,
            easy: 0,
            ambiguous: 0,
            hard: 0,
            marked: [0; 3],
        };
        for p in points {
            let i = r.region(p);
            match i {
                0 => r.easy += 1,
                1 => r.ambiguous += 1,
                _ => r.hard += 1,
            }
            r.marked[i] += usize::from(p.marked);
        }
        r
    }

    /// 0 easy-to-learn, 1 ambiguous, 2 hard-to-learn.
    fn region(&self, p: &MapPoint) -> usize {
        if p.variability >= self.variability {
            1
        } else if p.confidence >= REGION_CONFIDENCE {
            0
        } else {
            2
        }
    }
}

/// A Data Map (Swayamdipta et al. 2020): variability on x, confidence on y, colour =
/// correctness; marked examples (shuffled, flagged) ringed in black; the three regions
/// ([`Regions`]) marked with their counts.
pub fn data_map(points: &[MapPoint], marked: &str) -> Result<String> {
    let x1 = axis(
        0.0,
        points.iter().map(|p| p.variability).fold(0.05, f64::max) * 1.05,
    )?
    .1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Data Map ({} training examples; ringed: {marked})",
                    points.len()
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x1, 0.0..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("variability (std of the label's probability over epochs)")
            .y_desc("confidence (mean probability)")
            .draw()
            .map_err(err)?;
        let colour = |c: f64| {
            let c = c.clamp(0.0, 1.0);
            RGBColor((220.0 * (1.0 - c)) as u8, (170.0 * c) as u8, 60)
        };
        chart
            .draw_series(points.iter().map(|p| {
                Circle::new(
                    (p.variability, p.confidence),
                    2,
                    colour(p.correctness).mix(0.7).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.marked)
                    .map(|p| Circle::new((p.variability, p.confidence), 4, BLACK.stroke_width(1))),
            )
            .map_err(err)?;
        draw_regions(&mut chart, &Regions::of(points), x1)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The region boundaries as grey lines, and each region's name and count.
fn draw_regions<DB: DrawingBackend>(
    chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    r: &Regions,
    x1: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(90, 90, 90).stroke_width(2);
    let v = r.variability.min(x1);
    let lines = [
        vec![(v, 0.0), (v, 1.02)],
        vec![(0.0, REGION_CONFIDENCE), (v, REGION_CONFIDENCE)],
    ];
    for l in lines {
        chart.draw_series(LineSeries::new(l, grey)).map_err(err)?;
    }
    let style = ("sans-serif", 15).into_font().color(&BLACK);
    let labels = [
        (format!("easy-to-learn: {}", r.easy), (0.01 * x1, 0.98)),
        // Under the boundary, where a region's points thin out.
        (format!("hard-to-learn: {}", r.hard), (0.01 * x1, 0.47)),
        (format!("ambiguous: {}", r.ambiguous), (v + 0.01 * x1, 0.98)),
    ];
    for (text, at) in labels {
        chart
            .draw_series(std::iter::once(Text::new(text, at, style.clone())))
            .map_err(err)?;
    }
    Ok(())
}
