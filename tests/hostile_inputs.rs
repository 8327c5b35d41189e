//! The bad-input corpus: every case is generated here, and each must be refused with an error
//! naming the file (where one is given) and the reason, without a panic, within the allocation
//! budget, and without costing the rest of a dataset. Images, weights files and exported models.

mod hostile;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

use hostile::pickle::{self, Tensor};
use hostile::*;
use image::{ImageFormat, Rgb, RgbImage};
use webtune::data::{ImageSet, decode_image};
use webtune::model::BackboneSpec;
use webtune::weights::read_weights_file;

/// The most memory any hostile case may take while it is read and refused, above what was in use
/// before it. Every reader checks declared sizes against the file and its limits before it
/// allocates; the largest case is the pickle memo bomb, which the pickle reader stops once it has
/// built 64 MB of values (about 60 MB measured). The page runs the same readers in a 32-bit wasm
/// memory of at most 4 GB, where one believed size would end it.
const ALLOCATION_BUDGET: usize = 96 << 20;

/// Counts the bytes each thread has allocated and not freed, and their peak, so that a case's
/// peak can be read on the thread that ran it while other tests run on theirs.
struct Tracking;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(grown: usize, shrunk: usize) {
    // Unavailable while the thread is being torn down: those frees are not a case's.
    let _ = LIVE.try_with(|live| {
        let now = (live.get() + grown).saturating_sub(shrunk);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size(), 0);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size(), 0);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(0, layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size, layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs one case and checks that its peak memory stayed within [`ALLOCATION_BUDGET`].
fn within_budget<T>(case: &str, run: impl FnOnce() -> T) -> T {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = run();
    let peak = PEAK.with(Cell::get) - before;
    eprintln!("{case}: peak {:.1} MB", peak as f64 / (1 << 20) as f64);
    assert!(peak <= ALLOCATION_BUDGET, "{case}: took {} MB at its peak, over the {} MB budget", peak >> 20, ALLOCATION_BUDGET >> 20);
    result
}

#[test]
fn the_budget_sees_a_large_allocation() {
    let caught = std::panic::catch_unwind(|| within_budget("a believed size", || std::hint::black_box(vec![1u8; ALLOCATION_BUDGET + 1]).len()));
    assert!(caught.is_err(), "an allocation past the budget is caught");
    assert_eq!(within_budget("a small one", || std::hint::black_box(vec![1u8; 1 << 20]).len()), 1 << 20);
}

fn refused(name: &str, bytes: &[u8]) -> String {
    match within_budget(name, || decode_image(name, bytes)) {
        Ok(image) => panic!("{name}: decoded as {:?} instead of being refused", image.dimensions()),
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with(&format!("{name}: ")), "the file is named: {message}");
            message
        }
    }
}

fn header_only_jpeg() -> Vec<u8> {
    let jpeg = encode(&gradient(64, 64), ImageFormat::Jpeg);
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let len = u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]) as usize;
    jpeg[..sos + 2 + len].to_vec()
}

#[test]
fn truncated_and_header_only_images_are_refused_not_padded() {
    let png = encode(&gradient(64, 64), ImageFormat::Png);
    let jpeg = encode(&gradient(64, 64), ImageFormat::Jpeg);
    let gif = encode(&gradient(64, 64), ImageFormat::Gif);
    let webp = encode(&gradient(64, 64), ImageFormat::WebP);
    let ihdr_end = 8 + 8 + 13 + 4;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cut.png", png[..png.len() / 2].to_vec(), "truncated"),
        ("header.png", png[..ihdr_end].to_vec(), "truncated"),
        // zune-jpeg would return this with its missing rows grey.
        ("cut.jpg", jpeg[..jpeg.len() * 6 / 10].to_vec(), "truncated image (the JPEG data ends before"),
        ("no-eoi.jpg", jpeg[..jpeg.len() - 2].to_vec(), "truncated image (the JPEG data ends before"),
        ("header.jpg", header_only_jpeg(), "truncated image"),
        ("cut.gif", gif[..gif.len() / 2].to_vec(), "truncated"),
        ("header.gif", gif[..13].to_vec(), ""),
        ("cut.webp", webp[..webp.len() / 2].to_vec(), ""),
        ("header.webp", webp[..30.min(webp.len())].to_vec(), ""),
    ];
    for (name, bytes, reason) in cases {
        let message = refused(name, &bytes);
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn decompression_and_aspect_bombs_are_refused_before_allocating() {
    // 100000 × 100000 declared, 3 bytes of pixel data: 10 gigapixels if believed.
    let bomb = png_by_hand(100_000, 100_000, 8, 0, false, None, &[0, 0, 0]);
    assert!(refused("bomb.png", &bomb).contains("image too large"));
    let within_side = png_by_hand(10_000, 10_000, 16, 6, false, None, &[0, 0, 0]);
    let message = refused("big.png", &within_side);
    assert!(message.contains("image too large (10000×10000 pixels; at most 50 megapixels"), "{message}");
    // Real 16384×1 and 1×16384 strips: valid files, but 4194304×256 once resized.
    let wide = png_by_hand(16_384, 1, 8, 0, false, None, &[&[0u8][..], &[7; 16_384]].concat());
    let tall = png_by_hand(1, 16_384, 8, 0, false, None, &[0u8, 7].repeat(16_384));
    for (name, bytes) in [("wide.png", wide), ("tall.png", tall)] {
        let message = refused(name, &bytes);
        assert!(message.contains("image too elongated") && message.contains("at most 20:1"), "{message}");
    }
    // Just inside the ratio is fine.
    let ok = png_by_hand(200, 10, 8, 0, false, None, &[&[0u8][..], &[9; 200]].concat().repeat(10));
    assert_eq!(decode_image("ok.png", &ok).unwrap().dimensions(), (200, 10));
}

#[test]
fn other_formats_and_non_images_are_named() {
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#;
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0";
    let tiff = b"II*\0\x08\0\0\0\x00\x00\0\0\0\0";
    let cases: [(&str, &[u8], &str); 6] = [
        ("drawing.svg", svg, "this is an SVG drawing"),
        ("IMG_0001.HEIC", heic, "this is a HEIC/HEIF photo"),
        ("scan.tif", tiff, "this is a Tiff image"),
        ("notes.jpg", b"these are my notes, not a photo\n", "this is text"),
        ("empty.jpg", b"", "empty file (0 bytes)"),
        ("noise.png", &[0x13, 0x37, 0, 1, 2, 3, 250, 251], "not a supported image format (JPEG, PNG, WebP, GIF, BMP)"),
    ];
    for (name, bytes, reason) in cases {
        let message = refused(name, bytes);
        assert!(message.contains(reason), "{message}");
        if !bytes.is_empty() {
            assert!(message.contains("not a supported image format (JPEG, PNG, WebP, GIF, BMP)"), "{message}");
        }
    }
}

#[test]
fn unusual_but_valid_images_decode_correctly() {
    // 16-bit RGBA PNG.
    let wide = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(4, 2, |x, _| image::Rgba([x as u16 * 20_000, 65_535, 0, 65_535]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    wide.write_to(&mut bytes, ImageFormat::Png).unwrap();
    let decoded = decode_image("deep.png", bytes.get_ref()).unwrap();
    let [r, g, b] = decoded.get_pixel(3, 1).0;
    assert!((r as i32 - 233).abs() <= 1 && g == 255 && b == 0, "{:?}", [r, g, b]);
    // Gray.
    let gray = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y) as u8]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut bytes, ImageFormat::Png).unwrap();
    assert_eq!(decode_image("gray.png", bytes.get_ref()).unwrap().get_pixel(4, 2).0, [162; 3]);
    // Palette.
    let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    let indexed = png_by_hand(4, 1, 8, 3, false, Some(&palette), &[0, 0, 1, 2, 1]);
    let decoded = decode_image("palette.png", &indexed).unwrap();
    let pixels: Vec<[u8; 3]> = decoded.pixels().map(|p| p.0).collect();
    assert_eq!(pixels, [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 255, 0]]);
    // Adam7 interlaced.
    let decoded = decode_image("interlaced.png", &interlaced_gray()).unwrap();
    for (x, y, p) in decoded.enumerate_pixels() {
        assert_eq!(p.0, [gray_at(x, y); 3], "({x}, {y})");
    }
    // CMYK JPEG (Adobe): red and white, converted to RGB.
    for (cmyk, rgb) in [([255, 0, 0, 255], [255, 0, 0]), ([255, 255, 255, 255], [255, 255, 255]), ([255, 255, 255, 0], [0, 0, 0])] {
        let decoded = decode_image("print.jpg", &cmyk_jpeg(cmyk)).unwrap();
        let got = decoded.get_pixel(3, 3).0;
        assert!(got.iter().zip(rgb).all(|(&g, e)| (g as i32 - e as i32).abs() <= 2), "CMYK {cmyk:?}: {got:?}, expected {rgb:?}");
    }
    // Animated GIF: the first frame.
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        let frame = |c: [u8; 4]| image::Frame::new(image::RgbaImage::from_pixel(6, 4, image::Rgba(c)));
        encoder.encode_frames([frame([255, 0, 0, 255]), frame([0, 0, 255, 255])]).unwrap();
    }
    let decoded = decode_image("anim.gif", &gif).unwrap();
    assert_eq!((decoded.dimensions(), decoded.get_pixel(2, 2).0), ((6, 4), [255, 0, 0]));
}

#[test]
fn a_bad_image_costs_only_itself() {
    let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
    for i in 0..3u8 {
        let image = RgbImage::from_pixel(40, 30, Rgb([i * 60, 10, 10]));
        set.add("cats", &format!("good{i}.png"), &encode(&image, ImageFormat::Png)).unwrap();
    }
    let bomb = png_by_hand(100_000, 100_000, 8, 0, false, None, &[0, 0, 0]);
    let err = set.add("cats", "bomb.png", &bomb).unwrap_err().to_string();
    assert!(err.starts_with("bomb.png: image too large"), "{err}");
    let cut = encode(&gradient(64, 64), ImageFormat::Jpeg);
    assert!(set.add("cats", "cut.jpg", &cut[..cut.len() / 2]).is_err());
    assert_eq!(set.images().len(), 3);
}

fn weights_refused(bytes: &[u8]) -> String {
    match within_budget(&format!("weights file of {} bytes", bytes.len()), || read_weights_file(bytes)) {
        Ok(map) => panic!("read {} tensors instead of refusing", map.len()),
        Err(e) => e.to_string(),
    }
}

fn one_tensor(offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    let pkl = pickle::state_dict(&[Tensor { name: "w", key: "0", numel: 4, offset, shape, stride }]);
    torch_zip(&pkl, &[("0", f32_bytes(&[1., 2., 3., 4.]))], &[])
}

#[test]
fn hostile_torch_checkpoints_are_refused() {
    let good = read_weights_file(&one_tensor(0, &[2, 2], &[1, 2])).unwrap();
    assert_eq!(good["w"].as_f32().unwrap(), &[1., 3., 2., 4.], "the generator writes real checkpoints");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (one_tensor(0, &[1 << 20, 1 << 10], &[0, 0]), "w: stride 0"),
        (one_tensor(3, &[2], &[-1]), "w: stride: expected a non-negative integer, found -1"),
        (one_tensor(100, &[2], &[1]), "w: storage 0 is too short"),
        (one_tensor(0, &[1 << 31, 1 << 31], &[1 << 31, 1]), "w: tensor too large"),
        (one_tensor(0, &[2, 3], &[1, 1]), "w: a view of 6 elements overlaps itself"),
        (torch_zip(&pickle::memo_bomb(), &[], &[]), "memo bomb"),
        (torch_zip(&pickle::nested_lists(300_000), &[], &[]), "nested more than 100 deep"),
        (torch_zip(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", &[], &[]), "refusing to load os.system"),
        (torch_zip(b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.", &[], &[]), "refusing to load builtins.eval"),
        (torch_zip(b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.", &[], &[]), "refusing to load builtins.exec"),
    ];
    for (bytes, expected) in cases {
        let message = weights_refused(&bytes);
        assert!(message.contains(expected), "expected {expected:?} in {message}");
    }
    let pkl = pickle::state_dict(&[Tensor { name: "w", key: "0", numel: 4, offset: 0, shape: &[4], stride: &[1] }]);
    let storage = [("0", f32_bytes(&[1., 2., 3., 4.]))];
    for extra in [("archive/constants.pkl", &b"\x80\x02)."[..]), ("archive/code/__torch__/model.py", b"def forward(self): ...")] {
        let message = weights_refused(&torch_zip(&pkl, &storage, &[extra]));
        assert!(message.contains("a TorchScript archive") && message.contains("state_dict()"), "{message}");
    }
    let nan = torch_zip(&pkl, &[("0", f32_bytes(&[1., f32::NAN, 3., 4.]))], &[]);
    assert!(weights_refused(&nan).starts_with("w: holds NaN values"));
}

#[test]
fn re_zipped_checkpoints_inflate_no_further_than_they_may() {
    let pkl = pickle::state_dict(&[Tensor { name: "w", key: "0", numel: 2, offset: 0, shape: &[2], stride: &[1] }]);
    let entries: [(&str, &[u8]); 2] = [("archive/data.pkl", &pkl), ("archive/data/0", &f32_bytes(&[1., 2.]))];
    let zipped = zip_of(&entries, true);
    assert_eq!(read_weights_file(&zipped).unwrap()["w"].as_f32().unwrap(), &[1., 2.], "deflated entries are read");
    // The same zip claiming that data.pkl inflates to 4 GB (local header and directory record).
    let mut lying = zipped.clone();
    for at in 0..lying.len() - 46 {
        let (local, central) = (lying[at..].starts_with(b"PK\x03\x04"), lying[at..].starts_with(b"PK\x01\x02"));
        let name_at = if local { at + 30 } else { at + 46 };
        if (local || central) && lying[name_at..].starts_with(b"archive/data.pkl") {
            let size_at = if local { at + 22 } else { at + 24 };
            lying[size_at..size_at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        }
    }
    let message = weights_refused(&lying);
    assert!(message.contains("archive/data.pkl: claims 4294967040 bytes"), "{message}");
}

#[test]
fn lying_safetensors_headers_are_refused() {
    let data = f32_bytes(&[1., 2., 3., 4.]);
    let mut huge_len = safetensors_by_hand("{}", &[]);
    huge_len[..8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    let mut past_file = safetensors_by_hand("{}", &[]);
    past_file[..8].copy_from_slice(&1000u64.to_le_bytes());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (huge_len, "header"),
        (past_file, "header"),
        (safetensors_by_hand(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}"#, &data), "offset"),
        (safetensors_by_hand(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, &data), ""),
        (safetensors_by_hand(r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#, &data), "overflow"),
        (safetensors_by_hand(r#"{"w":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}"#, &data), ""),
        (safetensors_by_hand(&format!(r#"{{"__metadata__":{{"x":{deep}}}}}"#), &[]), ""),
        (safetensors_by_hand(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &f32_bytes(&[1., 2., f32::INFINITY, 4.])), "w: holds inf values"),
    ];
    for (bytes, expected) in cases {
        let message = match within_budget(&format!("safetensors expecting {expected:?}"), || webtune::weights::read_safetensors(&bytes)) {
            Ok((map, _)) => panic!("read {} tensors instead of refusing {expected:?}", map.len()),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(expected), "expected {expected:?} in {message}");
    }
}

/// An export whose head is `_fc` `[2, 1280]` and whose metadata says what `edit` makes it say.
fn export_with(edit: impl FnOnce(&mut HashMap<String, String>)) -> Vec<u8> {
    let mut tensors = webtune::weights::TensorMap::new();
    tensors.insert("_fc.weight".into(), webtune::weights::TensorEntry::f32(vec![2, 1280], vec![0.; 2560]));
    tensors.insert("_fc.bias".into(), webtune::weights::TensorEntry::f32(vec![2], vec![0.; 2]));
    let mut metadata = HashMap::from([
        ("labels".to_string(), r#"["cats","dogs"]"#.to_string()),
        ("backbone".to_string(), "efficientnet_lite0".to_string()),
        ("head_hidden_units".to_string(), "0".to_string()),
    ]);
    edit(&mut metadata);
    webtune::weights::write_safetensors(&tensors, metadata).unwrap()
}

#[test]
fn hostile_export_metadata_is_refused_before_sizing_anything() {
    let many: Vec<String> = (0..100_000).map(|i| format!("class{i}")).collect();
    let many = serde_json::to_string(&many).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("labels", "[]".into(), "\"labels\" is empty"),
        ("labels", many, "_fc.weight is [2, 1280], but the metadata says 100000 labels"),
        ("labels", "cats, dogs".into(), "\"labels\" is not a list of names"),
        ("labels", r#"[1, 2]"#.into(), "\"labels\" is not a list of names"),
        ("head_hidden_units", "4000000000".into(), "_fc.1.weight is missing"),
        ("head_hidden_units", "-1".into(), "not a non-negative whole number"),
        ("head_hidden_units", "many".into(), "not a non-negative whole number"),
        ("head_hidden_units", "1e9".into(), "not a non-negative whole number"),
        ("backbone", "vgg16".into(), "unknown backbone \"vgg16\""),
    ];
    for (key, value, expected) in cases {
        let bytes = export_with(|m| {
            m.insert(key.to_string(), value);
        });
        let message = match within_budget(&format!("export with {key} edited"), || webtune::TrainedModel::from_safetensors(&bytes, &burn::tensor::Device::flex())) {
            Ok(_) => panic!("{key}: loaded instead of refusing"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(expected), "{key}: expected {expected:?} in {message}");
    }
}

#[test]
fn jpeg_variants_the_decoder_cannot_read_are_named() {
    // A baseline JPEG's frame header rewritten as another frame type or sample precision: 12-bit
    // extended (medical and some raw-converter exports), lossless, arithmetic-coded.
    let jpeg = encode(&gradient(16, 16), ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let variant = |marker: u8, precision: u8| {
        let mut bytes = jpeg.clone();
        bytes[sof + 1] = marker;
        bytes[sof + 4] = precision;
        bytes
    };
    let cases = [
        ("scan.jpg", variant(0xC1, 12), "a 12-bit JPEG (only 8 bits a sample are read)"),
        ("lossless.jpg", variant(0xC3, 8), "a lossless JPEG, which this decoder does not read"),
        ("arithmetic.jpg", variant(0xC9, 8), "an arithmetic-coded JPEG, which this decoder does not read"),
    ];
    for (name, bytes, reason) in cases {
        let message = refused(name, &bytes);
        assert!(message.contains(reason), "{message}");
    }
    // 8-bit extended sequential is read.
    assert_eq!(decode_image("extended.jpg", &variant(0xC1, 8)).unwrap().dimensions(), (16, 16));
}
