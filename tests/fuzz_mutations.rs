//! The fuzz targets (fuzz/fuzz_targets) as bounded loops on stable: random mutations of valid
//! files go through each reader, which must answer with a value or an error, never a panic.
//! Seeded, so a failure names an input that can be rebuilt; crashes found by scripts/fuzz.sh
//! become cases in tests/hostile_inputs.rs.

mod hostile;

use hostile::pickle::{self, Tensor};
use hostile::*;
use image::ImageFormat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutations per seed file; enough to reach every header field of these small files.
const ROUNDS: usize = 3000;

/// A few random edits: flipped bytes, interesting values, cuts, duplicated or removed ranges.
fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = [0, 0xFF, 0x7F, 0x80, 1][rng.random_range(0..5)],
            2 => {
                // An interesting 32-bit value, either byte order.
                let value: u32 = [0, u32::MAX, 1 << 31, 0x7FFF_FFFF, 16_384, 100_000][rng.random_range(0..6)];
                let value = if rng.random() { value.to_le_bytes() } else { value.to_be_bytes() };
                for (i, b) in value.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.random_range(0..bytes.len());
                bytes.splice(to..to, copy);
            }
            _ => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

fn each_mutation(seeds: &[Vec<u8>], salt: u64, mut run: impl FnMut(&[u8])) {
    for (i, seed) in seeds.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(salt * 1000 + i as u64);
        for _ in 0..ROUNDS {
            run(&mutate(seed, &mut rng));
        }
    }
}

#[test]
fn decode_image_survives_mutated_images() {
    let image = gradient(24, 16);
    let seeds: Vec<Vec<u8>> = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP, ImageFormat::Bmp]
        .into_iter()
        .map(|f| encode(&image, f))
        .chain([interlaced_gray(), png_by_hand(4, 1, 8, 3, false, Some(&[255, 0, 0, 0, 255, 0, 0, 0, 255]), &[0, 0, 1, 2, 1])])
        .collect();
    let (mut decoded, mut refused) = (0, 0);
    each_mutation(&seeds, 1, |bytes| match webtune::data::decode_image("m", bytes) {
        Ok(image) => {
            let (w, h) = image.dimensions();
            assert!(webtune::data::check_dimensions(w, h).is_ok(), "{w}×{h} passed the limits");
            decoded += 1;
        }
        Err(e) => {
            assert!(e.to_string().starts_with("m: "), "{e}");
            refused += 1;
        }
    });
    // Mild enough to get past the headers, hostile enough to be refused.
    assert!(decoded > 100 && refused > 100, "{decoded} decoded, {refused} refused");
}

fn checkpoint_pickle() -> Vec<u8> {
    pickle::state_dict(&[
        Tensor { name: "a.weight", key: "0", numel: 6, offset: 0, shape: &[2, 3], stride: &[3, 1] },
        Tensor { name: "a.bias", key: "1", numel: 2, offset: 0, shape: &[2], stride: &[1] },
        Tensor { name: "t", key: "0", numel: 6, offset: 1, shape: &[2, 2], stride: &[1, 2] },
    ])
}

#[test]
fn weights_readers_survive_mutated_checkpoints() {
    let pkl = checkpoint_pickle();
    let zip = torch_zip(&pkl, &[("0", f32_bytes(&[1., 2., 3., 4., 5., 6.])), ("1", f32_bytes(&[7., 8.]))], &[]);
    let legacy = torch_legacy(&pkl, &[("0", vec![1., 2., 3., 4., 5., 6.]), ("1", vec![7., 8.])]);
    let safetensors = safetensors_by_hand(
        r#"{"__metadata__":{"labels":"[\"a\",\"b\"]"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"I64","shape":[1],"data_offsets":[16,24]}}"#,
        &[f32_bytes(&[1., 2., 3., 4.]), 5i64.to_le_bytes().to_vec()].concat(),
    );
    for seed in [&zip, &legacy, &safetensors] {
        assert!(webtune::weights::read_weights_file(seed).is_ok(), "the seeds are valid files");
    }
    each_mutation(&[zip, legacy, safetensors, pkl], 2, |bytes| {
        let _ = webtune::weights::read_weights_file(bytes);
    });
}
