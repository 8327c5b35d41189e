//! Legacy `torch.save` files: the input starts with a pickle PROTO opcode so that every run
//! reaches the pickle machine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = [&[0x80u8][..], data].concat();
    let _ = webtune::weights::read_weights_file(&bytes);
});
