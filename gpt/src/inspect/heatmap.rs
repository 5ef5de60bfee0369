//! Drawing for the inspection pictures, as SVG text written directly: a
//! grid of coloured cells with labelled rows and columns, and a colour
//! scale. Written by hand rather than through `plotters` so that each cell
//! is exactly one `<rect class="cell">` (which the tests count) and every
//! label is a `<text>` element a reader can select and search.
//!
//! Values run from 0 to 1 (attention weights, probabilities) and map to a
//! colour from white (0) to dark blue (1), linear in each channel.

use std::fmt::Write;

/// The colour of `value` in [0, 1] (clamped): white → dark blue.
pub fn colour(value: f32) -> String {
    let v = if value.is_finite() { value.clamp(0.0, 1.0) } else { 0.0 };
    let (low, high) = ([255.0, 255.0, 255.0], [8.0, 48.0, 107.0]);
    let channel = |i: usize| (low[i] + (high[i] - low[i]) * v).round() as u8;
    format!("#{:02x}{:02x}{:02x}", channel(0), channel(1), channel(2))
}

/// Whether text on a cell of `value` reads better in white than in black.
pub fn dark(value: f32) -> bool {
    value > 0.55
}

/// `s` with XML's five special characters escaped, and control characters
/// (which XML 1.0 forbids) shown as `\u{..}`.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A token's text with its whitespace made visible: space `␣`, newline
/// `↵`, tab `⇥`, carriage return `␍` (a token that is only a space would
/// otherwise be an invisible label).
pub fn visible(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            ' ' => '␣',
            '\n' => '↵',
            '\t' => '⇥',
            '\r' => '␍',
            c => c,
        })
        .collect()
}

/// An SVG document being written: elements in order, then [`Svg::finish`].
pub struct Svg {
    body: String,
}

impl Default for Svg {
    fn default() -> Self {
        Self::new()
    }
}

impl Svg {
    pub fn new() -> Svg {
        Svg { body: String::new() }
    }

    /// A filled rectangle of `class`, with a tooltip `title` (escaped) when
    /// one is given.
    #[allow(clippy::too_many_arguments)]
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, class: &str, title: Option<&str>) {
        let _ = write!(
            self.body,
            r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}""#
        );
        match title {
            Some(t) => {
                let _ = writeln!(self.body, "><title>{}</title></rect>", escape_xml(t));
            }
            None => self.body.push_str("/>\n"),
        }
    }

    /// Text at (x, y), `anchor` start, middle or end; `rotate` degrees
    /// about that point. `text` is escaped here.
    #[allow(clippy::too_many_arguments)]
    pub fn text(&mut self, x: f64, y: f64, text: &str, anchor: &str, size: f64, fill: &str, rotate: Option<f64>) {
        let turn = rotate.map_or(String::new(), |deg| format!(r#" transform="rotate({deg} {x:.1} {y:.1})""#));
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{turn}>{}</text>"#,
            escape_xml(text)
        );
    }

    /// Opens a group (`<g>`) with raw attributes, e.g. `class="head"`.
    pub fn open_group(&mut self, attributes: &str) {
        let _ = writeln!(self.body, "<g {attributes}>");
    }

    pub fn close_group(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// A vertical colour scale at (x, y), `height` tall: 1 at the top, 0
    /// at the bottom, labelled at 0, 0.5 and 1, titled `label`.
    pub fn legend(&mut self, x: f64, y: f64, height: f64, label: &str) {
        const STEPS: usize = 20;
        let step = height / STEPS as f64;
        self.text(x, y - 8.0, label, "start", 11.0, "#000", None);
        for i in 0..STEPS {
            let value = 1.0 - (i as f32 + 0.5) / STEPS as f32;
            self.rect(x, y + i as f64 * step, 14.0, step + 0.5, &colour(value), "legend", None);
        }
        for (value, at) in [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)] {
            self.text(x + 18.0, y + at * height + 4.0, &format!("{value:.1}"), "start", 10.0, "#000", None);
        }
    }

    /// The document, `width` × `height`, on a white background.
    pub fn finish(self, width: f64, height: f64) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_runs_white_to_blue() {
        assert_eq!(colour(0.0), "#ffffff");
        assert_eq!(colour(1.0), "#08306b");
        assert_eq!(colour(7.0), colour(1.0));
        assert_eq!(colour(f32::NAN), colour(0.0));
    }

    #[test]
    fn text_is_escaped_and_whitespace_shown() {
        assert_eq!(escape_xml("<a & 'b'>\"\u{1}"), "&lt;a &amp; &apos;b&apos;&gt;&quot;\\u{1}");
        assert_eq!(visible(" a\n\t"), "␣a↵⇥");
    }
}
