//! QR codes of login links, as PNG (to print on a shop counter) or SVG (to scale for print).
//!
//! The size is the image's width and height in pixels (SVG: user units); it is clamped to
//! [`MIN_SIZE`]..=[`MAX_SIZE`] so a request cannot make linehub render a huge image.

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::svg;

/// Smallest image rendered, in pixels.
pub const MIN_SIZE: u32 = 64;
/// Largest image rendered, in pixels.
pub const MAX_SIZE: u32 = 2048;
/// Size when none is asked for.
pub const DEFAULT_SIZE: u32 = 512;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code.
    #[error("the URL does not fit in a QR code: {0}")]
    TooLong(#[from] qrcode::types::QrError),
    /// PNG encoding failed.
    #[error("encoding the PNG failed: {0}")]
    Png(#[from] image::ImageError),
}

/// `size` within the allowed range.
pub fn clamp_size(size: Option<u32>) -> u32 {
    size.unwrap_or(DEFAULT_SIZE).clamp(MIN_SIZE, MAX_SIZE)
}

/// `text` as a PNG QR code about `size` pixels wide, with the quiet zone scanners need.
pub fn png(text: &str, size: u32) -> Result<Vec<u8>, QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let image = code.render::<Luma<u8>>().min_dimensions(size, size).max_dimensions(size, size).build();
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// `text` as an SVG QR code `size` units wide.
pub fn svg(text: &str, size: u32) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(size, size)
        .max_dimensions(size, size)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_is_a_png_of_about_the_asked_size() {
        let bytes = png("https://example.com/line/a/login", 256).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let img = image::load_from_memory(&bytes).unwrap();
        assert!(img.width() <= 256 && img.width() > 128, "{}", img.width());
    }

    #[test]
    fn an_svg_is_an_svg_and_sizes_are_clamped() {
        let s = svg("https://example.com/line/a/login", 300).unwrap();
        assert!(s.contains("<svg") && s.contains("#000000"));
        assert_eq!(clamp_size(Some(1)), MIN_SIZE);
        assert_eq!(clamp_size(Some(1_000_000)), MAX_SIZE);
        assert_eq!(clamp_size(None), DEFAULT_SIZE);
    }
}
