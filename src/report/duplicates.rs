//! The report's section on near-duplicates (`vog crossval --features`: see
//! [`crate::neighbours`]): how the sets were found, then each set as a row of captioned
//! tiles, the sets that cross the train/test split first (a test image also trained on).
use super::{data_uri, SETS_SHOWN};
use crate::data::SplitKind;
use crate::export::esc;
use crate::grid::ImageLookup;
use crate::oof::{DuplicateRow, FeatureFit};
use anyhow::Result;
use std::fmt::Write as _;

/// Writes the section: the rule and counts, then up to [`SETS_SHOWN`] sets.
pub(super) fn write(
    out: &mut String,
    fit: &FeatureFit,
    rows: &[DuplicateRow],
    images: &ImageLookup,
) -> Result<()> {
    let n = &fit.neighbours;
    write!(
        out,
        "<p>{} sets of near-duplicates among the run's images by {}: two images closer than \
         {} x the median nearest-neighbour distance ({:.4} in cosine distance) among each \
         one's {} nearest, or with the same pixels. {} cross the train/test split (a test \
         image the run also trained on); {} hold exact copies. Captions: set, id, split and \
         label (the label trained with where it differs), the distance to the nearest other \
         member.</p>",
        n.sets,
        esc(&fit.describe().replace("logistic regression on ", "")),
        n.threshold,
        n.radius,
        n.k,
        n.crossing,
        n.exact
    )?;
    let mut sets: Vec<Vec<&DuplicateRow>> = Vec::new();
    for r in rows {
        match sets.last_mut() {
            Some(s) if s[0].set == r.set => s.push(r),
            _ => sets.push(vec![r]),
        }
    }
    let crosses = |s: &Vec<&DuplicateRow>| s.iter().any(|r| r.split != s[0].split);
    sets.sort_by_key(|s| (!crosses(s), s[0].set));
    for set in sets.iter().take(SETS_SHOWN) {
        out.push_str(r#"<div class="grid">"#);
        for r in set {
            tile(out, r, images)?;
        }
        out.push_str("</div>");
    }
    if sets.len() > SETS_SHOWN {
        write!(
            out,
            "<p>{} more sets in <code>crossval/near-duplicates.csv</code>.</p>",
            sets.len() - SETS_SHOWN
        )?;
    }
    Ok(())
}

fn tile(out: &mut String, r: &DuplicateRow, images: &ImageLookup) -> Result<()> {
    let mut png = Vec::new();
    images
        .image_of(&r.id)?
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let label = match r.trained_label == r.label || r.split == SplitKind::Test {
        true => esc(&r.label),
        false => format!("{} (trained as {})", esc(&r.label), esc(&r.trained_label)),
    };
    let distance = match r.exact {
        true => "same pixels".to_string(),
        false => format!("d = {:.4}", r.distance),
    };
    write!(
        out,
        r#"<figure><img alt="{id}" title="{id}" src="{}"><figcaption>set {}<br>{}<br>{} &middot; {label}<br>{distance}</figcaption></figure>"#,
        data_uri("image/png", &png),
        r.set,
        esc(&r.id).replace('/', "/<wbr>"),
        r.split,
        id = esc(&r.id),
    )?;
    Ok(())
}
