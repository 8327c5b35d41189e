//! The image entry point the page and the CLI share.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = webtune::data::decode_image("fuzz", data);
});
