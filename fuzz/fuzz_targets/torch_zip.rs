//! Zip `torch.save` checkpoints: the input is prefixed with a zip signature so that every run
//! reaches the zip and pickle readers rather than the format sniffing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = [&b"PK\x03\x04"[..], data].concat();
    let _ = webtune::weights::read_weights_file(&bytes);
});
