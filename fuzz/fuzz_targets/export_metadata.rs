//! Exported models: a safetensors file whose metadata sizes the classifier head.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = webtune::TrainedModel::from_safetensors(data, &webtune::backend::cpu_device());
});
