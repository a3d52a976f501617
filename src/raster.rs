//! SVG to pixels with resvg and the bundled DejaVu Sans (no system fonts, so every machine
//! draws the same): the plots' PNGs and the captions of example grids.
use anyhow::{Context, Result};
use std::sync::OnceLock;

fn font_options() -> &'static resvg::usvg::Options<'static> {
    static OPTIONS: OnceLock<resvg::usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut opt = resvg::usvg::Options::default();
        let db = opt.fontdb_mut();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        opt
    })
}

/// Renders an SVG document to a pixmap of its own size (premultiplied RGBA).
pub fn render(svg: &str) -> Result<resvg::tiny_skia::Pixmap> {
    let tree = resvg::usvg::Tree::from_str(svg, font_options()).context("invalid SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).context("empty image")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap)
}

/// Rasterizes an SVG document to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    render(svg)?.encode_png().context("cannot encode PNG")
}
