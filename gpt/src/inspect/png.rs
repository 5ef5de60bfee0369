//! PNG pictures: the SVG we draw, rasterised, with a font we carry.
//!
//! Every picture is drawn once, as SVG (text stays text, and it opens in
//! any browser). A PNG is that SVG turned into pixels by `resvg`, a
//! rasteriser written in Rust. Rasterising text needs a font, and the font
//! a machine happens to have changes how the labels look, or whether they
//! show at all; so the only font `resvg` is given is DejaVu Sans, carried
//! in the binary (`gpt/assets/fonts`, with its licence), and every family
//! an SVG may ask for (`sans-serif`, `serif`, `monospace`) maps to it.
//!
//! The picture is drawn on a white page (what an SVG leaves transparent
//! shows white) at `width` pixels, the height following the drawing's
//! proportions, as 8-bit RGBA; a `tEXt` chunk carries a comment, as the SVG carries its marker.

use resvg::{tiny_skia, usvg};

/// DejaVu Sans, the one font PNG pictures are drawn with.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";

/// The longest side of a PNG we draw: 16k pixels is far past any screen,
/// and keeps a mistyped `--width` from asking for gigabytes.
pub const MAX_SIDE: u32 = 16_384;

/// `svg` drawn `width` pixels wide, encoded as PNG with `comment` in a
/// `tEXt` chunk (keyword `Comment`). `None`: twice the drawing's own size
/// (sharp on high-density screens), or as large as fits in [`MAX_SIDE`]
/// for a big drawing (every layer and head of a deep model). A `width`
/// whose height would pass [`MAX_SIDE`] is an error, never a cropped
/// picture.
pub fn svg_to_png(svg: &str, width: Option<u32>, comment: &str) -> Result<Vec<u8>, String> {
    let mut options = usvg::Options { font_family: FONT_FAMILY.into(), ..usvg::Options::default() };
    let fonts = options.fontdb_mut();
    fonts.load_font_data(FONT.to_vec());
    fonts.set_sans_serif_family(FONT_FAMILY);
    fonts.set_serif_family(FONT_FAMILY);
    fonts.set_monospace_family(FONT_FAMILY);
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| format!("the picture is not valid SVG: {e}"))?;

    let (own_width, own_height) = (tree.size().width(), tree.size().height());
    let longest = MAX_SIDE as f32;
    let scale = match width {
        None => (longest / own_width).min(longest / own_height).min(2.0),
        Some(width) if width == 0 || width > MAX_SIDE => {
            return Err(format!("a PNG width must be from 1 to {MAX_SIDE} pixels, not {width}"))
        }
        Some(width) => width as f32 / own_width,
    };
    let width = ((own_width * scale).round() as u32).clamp(1, MAX_SIDE);
    let height = (own_height * scale).round() as u32;
    if height > MAX_SIDE {
        let most = (own_width * longest / own_height).floor().max(1.0);
        return Err(format!(
            "at {width} pixels wide the picture would be {height} tall, more than {MAX_SIDE}; ask for a width of at most {most}"
        ));
    }
    let height = height.max(1);
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or("cannot allocate the picture's pixels")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());

    // On an opaque page every alpha is 255, so tiny-skia's premultiplied
    // pixels are already the straight RGBA a PNG stores.
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.add_text_chunk("Comment".into(), comment.into()).map_err(|e| e.to_string())?;
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixmap.data()).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width, height and RGBA pixels of a PNG, and its `Comment` text.
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>, Option<String>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        let comment = reader.info().uncompressed_latin1_text.iter().find(|t| t.keyword == "Comment");
        (frame.width, frame.height, pixels, comment.map(|t| t.text.clone()))
    }

    fn dark_pixels(rgba: &[u8]) -> usize {
        rgba.chunks(4).filter(|p| p[0] < 128 && p[1] < 128 && p[2] < 128).count()
    }

    #[test]
    fn the_png_has_the_requested_size_and_the_drawings_proportions() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><rect x="0" y="0" width="100" height="100" fill="black"/></svg>"#;
        let (w, h, rgba, comment) = decode(&svg_to_png(svg, Some(400), "drawn here").unwrap());
        assert_eq!((w, h), (400, 200));
        assert_eq!(comment.as_deref(), Some("drawn here"));
        // The left half is the black square, the right half the white page.
        let at = |x: usize, y: usize| &rgba[4 * (y * w as usize + x)..][..4];
        assert_eq!(at(100, 100), [0, 0, 0, 255]);
        assert_eq!(at(300, 100), [255, 255, 255, 255]);
        let (w, h, _, _) = decode(&svg_to_png(svg, None, "").unwrap());
        assert_eq!((w, h), (400, 200), "by default twice the drawing's own size");
    }

    /// Without a font `resvg` drops text silently: the page would be blank.
    #[test]
    fn text_is_drawn_with_the_carried_font_whatever_family_is_asked() {
        for family in ["sans-serif", "serif", "monospace", "Some Font Nobody Has"] {
            let svg = format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><text x="4" y="30" font-size="24" font-family="{family}">Hello</text></svg>"#
            );
            let (_, _, rgba, _) = decode(&svg_to_png(&svg, Some(120), "").unwrap());
            assert!(dark_pixels(&rgba) > 100, "{family}: the text left only {} dark pixels", dark_pixels(&rgba));
        }
    }

    #[test]
    fn bad_svg_and_bad_widths_are_errors() {
        assert!(svg_to_png("<svg", None, "").unwrap_err().contains("not valid SVG"));
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#;
        assert!(svg_to_png(svg, Some(0), "").unwrap_err().contains("from 1 to"));
        assert!(svg_to_png(svg, Some(MAX_SIDE + 1), "").unwrap_err().contains("from 1 to"));
        // A tall drawing: a width that would make it taller than the limit
        // is refused, and by default it is drawn as large as fits, whole.
        let tall = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="10000"><rect x="0" y="9990" width="100" height="10" fill="black"/></svg>"#;
        let err = svg_to_png(tall, Some(400), "").unwrap_err();
        assert!(err.contains("would be 40000 tall") && err.contains("at most 163"), "{err}");
        let (w, h, rgba, _) = decode(&svg_to_png(tall, None, "").unwrap());
        assert_eq!((w, h), (164, 16384));
        // The black strip at the drawing's bottom edge is on the last row.
        let middle_of_last_row = &rgba[4 * ((w * (h - 1) + w / 2) as usize)..][..4];
        assert_eq!(middle_of_last_row, [0, 0, 0, 255], "the bottom of the drawing is there");
    }
}
