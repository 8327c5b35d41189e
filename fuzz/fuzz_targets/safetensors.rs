//! Any bytes given to the safetensors reader: an error or tensors, never a panic or an abort.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = webtune::weights::read_safetensors(data);
});
