//! The confusion matrix as a picture (`webtune eval --png`): rows are the true classes, columns the
//! predictions, each cell shaded by its share of the row and labelled with its count.
//!
//! Layout, top to bottom: the title (accuracy), a caption naming the axes, the column labels
//! written upwards, then the grid with the row labels on its left. Text is font8x8's bitmap font
//! (ASCII and Latin-1; other characters show as `?`), so no font file is needed.

use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};
use image::{Rgb, RgbImage};

/// Side of one grid cell, in pixels. tests/cli.rs mirrors these constants to find the cells.
const CELL: u32 = 64;
/// Glyphs are 8×8, drawn at twice that.
const SCALE: u32 = 2;
const GLYPH: u32 = 8 * SCALE;
const PAD: u32 = 8;
/// Longer labels are cut to this many characters, the last two being "..".
const MAX_LABEL: usize = 20;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([200, 200, 200]);
/// A full row share is this dark blue (matplotlib's "Blues" end); an empty cell stays white.
const FULL: [f64; 3] = [8.0, 48.0, 107.0];

/// `confusion[true][predicted]` counts for `labels`, drawn as a PNG-ready image.
pub fn render(labels: &[String], confusion: &[Vec<usize>], accuracy: f64, images: usize) -> RgbImage {
    let n = labels.len() as u32;
    let labels: Vec<Vec<char>> = labels.iter().map(|l| shorten(l)).collect();
    let longest = labels.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let title: Vec<char> = format!("accuracy {accuracy:.3} ({images} images)").chars().collect();
    let caption: Vec<char> = "rows: true class, columns: predicted".chars().collect();

    let label_space = longest * GLYPH + 2 * PAD;
    let (title_h, caption_h) = (GLYPH + 2 * PAD, 8 + PAD);
    let grid_x = label_space;
    let grid_y = title_h + caption_h + label_space;
    let width = (grid_x + n * CELL + PAD).max(title.len() as u32 * GLYPH + 2 * PAD).max(caption.len() as u32 * 8 + 2 * PAD);
    let height = grid_y + n * CELL + PAD;
    let mut img = RgbImage::from_pixel(width, height, WHITE);

    text(&mut img, &title, PAD, PAD, SCALE, BLACK);
    text(&mut img, &caption, PAD, title_h, 1, BLACK);
    for (i, label) in labels.iter().enumerate() {
        let offset = i as u32 * CELL + (CELL - GLYPH) / 2;
        // Row labels end next to the grid; column labels read upwards and start just above it.
        text(&mut img, label, grid_x - PAD - label.len() as u32 * GLYPH, grid_y + offset, SCALE, BLACK);
        text_upwards(&mut img, label, grid_x + offset, grid_y - PAD, BLACK);
    }
    for (r, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (c, &count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            let shade = Rgb(std::array::from_fn(|k| (255.0 + (FULL[k] - 255.0) * share).round() as u8));
            let (x0, y0) = (grid_x + c as u32 * CELL, grid_y + r as u32 * CELL);
            for y in y0..y0 + CELL {
                for x in x0..x0 + CELL {
                    let edge = x == x0 || y == y0 || x == x0 + CELL - 1 || y == y0 + CELL - 1;
                    img.put_pixel(x, y, if edge { GRID } else { shade });
                }
            }
            let digits: Vec<char> = count.to_string().chars().collect();
            // Counts too wide for the cell at double size are drawn at single size.
            let scale = if digits.len() as u32 * GLYPH <= CELL - 2 * PAD { SCALE } else { 1 };
            let (w, h) = (digits.len() as u32 * 8 * scale, 8 * scale);
            let ink = if share > 0.5 { WHITE } else { BLACK };
            text(&mut img, &digits, x0 + CELL.saturating_sub(w) / 2, y0 + (CELL - h) / 2, scale, ink);
        }
    }
    img
}

fn shorten(label: &str) -> Vec<char> {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= MAX_LABEL {
        return chars;
    }
    chars[..MAX_LABEL - 2].iter().copied().chain("..".chars()).collect()
}

/// The 8×8 bitmap of `c`: one byte per row, bit 0 the leftmost pixel.
fn glyph(c: char) -> [u8; 8] {
    match c as u32 {
        code @ 0x20..0x80 => BASIC_LEGACY[code as usize],
        code @ 0xA0..0x100 => LATIN_LEGACY[code as usize - 0xA0],
        _ => BASIC_LEGACY['?' as usize],
    }
}

fn text(img: &mut RgbImage, chars: &[char], x: u32, y: u32, scale: u32, ink: Rgb<u8>) {
    for (i, &c) in chars.iter().enumerate() {
        let left = x + i as u32 * 8 * scale;
        draw_glyph(img, c, scale, ink, |gx, gy| (left + gx, y + gy));
    }
}

/// Text rotated a quarter turn anticlockwise, its baseline on the right, starting at `bottom`.
fn text_upwards(img: &mut RgbImage, chars: &[char], x: u32, bottom: u32, ink: Rgb<u8>) {
    for (i, &c) in chars.iter().enumerate() {
        let base = bottom - i as u32 * GLYPH;
        draw_glyph(img, c, SCALE, ink, |gx, gy| (x + gy, base - 1 - gx));
    }
}

/// Draws `c` at `scale`, mapping each glyph pixel (x right, y down) to image coordinates.
fn draw_glyph(img: &mut RgbImage, c: char, scale: u32, ink: Rgb<u8>, place: impl Fn(u32, u32) -> (u32, u32)) {
    for (row, bits) in glyph(c).iter().enumerate() {
        for col in 0..8 {
            if bits & (1 << col) == 0 {
                continue;
            }
            for dy in 0..scale {
                for dx in 0..scale {
                    let (px, py) = place(col * scale + dx, row as u32 * scale + dy);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, ink);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_luma(img: &RgbImage, x0: u32, y0: u32) -> f64 {
        let mut sum = 0.0;
        for y in y0..y0 + CELL {
            for x in x0..x0 + CELL {
                let Rgb([r, g, b]) = *img.get_pixel(x, y);
                sum += 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
            }
        }
        sum / (CELL * CELL) as f64
    }

    #[test]
    fn a_full_row_share_is_darker_than_an_empty_cell_and_long_labels_are_cut() {
        let labels = vec!["a".to_string(), "b".repeat(40)];
        let img = render(&labels, &[vec![3, 0], vec![1, 1]], 0.8, 5);
        let label_space = MAX_LABEL as u32 * GLYPH + 2 * PAD;
        let grid_y = GLYPH + 2 * PAD + 8 + PAD + label_space;
        assert_eq!((img.width(), img.height()), (label_space + 2 * CELL + PAD, grid_y + 2 * CELL + PAD));
        let full = mean_luma(&img, label_space, grid_y);
        let empty = mean_luma(&img, label_space + CELL, grid_y);
        let half = mean_luma(&img, label_space, grid_y + CELL);
        assert!(full < half && half < empty, "{full} {half} {empty}");
    }
}
