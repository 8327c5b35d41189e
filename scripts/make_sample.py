"""The page's sample project: three texture classes (brick, grass, gravel), each many crops of
one real photo that scikit-image ships (skimage/data, CC0), written with a manifest the page's
"Try the sample project" button reads.

    python3 scripts/make_sample.py PHOTOS_DIR www/public/sample

PHOTOS_DIR holds brick.png, grass.png and gravel.png from the scikit-image wheel (see
scripts/common.sh `fetch_downloads`). The crops are seeded, so every run writes the same files.
"""

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

CLASSES = ["brick", "grass", "gravel"]
PER_CLASS = 12
SEED = 13
# Each photo: where it came from, as scikit-image's skimage/data/_fetchers.py says.
SOURCES = {
    "brick": "CC0Textures Bricks25 (perspective-corrected, rotated, cropped)",
    "grass": "DeviantArt linolafett Grass-01 (cropped)",
    "gravel": "CC0Textures Gravel04 (rescaled, cropped)",
}


def crops(photo: Image.Image, rng: random.Random):
    """Square crops of 160 to 320 px at random places, some mirrored, resized to 224 px."""
    width, height = photo.size
    for _ in range(PER_CLASS):
        side = rng.randint(160, min(320, width, height))
        left, top = rng.randint(0, width - side), rng.randint(0, height - side)
        crop = photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.LANCZOS)
        yield ImageOps.mirror(crop) if rng.random() < 0.5 else crop


def main() -> None:
    photos, out = Path(sys.argv[1]), Path(sys.argv[2])
    rng = random.Random(SEED)
    manifest = {
        "name": "Textures: brick, grass, gravel",
        "about": (
            f"{PER_CLASS} crops of one photo per class, from the sample images scikit-image ships "
            "(skimage/data in the PyPI package scikit-image 0.26.0), all under the CC0 licence. "
            "Crops of one photo look alike, so the validation accuracy here is higher than on new photos."
        ),
        "licence": "CC0 1.0",
        "sources": SOURCES,
        "classes": {},
    }
    for label in CLASSES:
        photo = Image.open(photos / f"{label}.png").convert("RGB")
        (out / label).mkdir(parents=True, exist_ok=True)
        files = []
        for index, crop in enumerate(crops(photo, rng)):
            name = f"{label}/{label}-{index:02d}.jpg"
            crop.save(out / name, quality=90)
            files.append(name)
        manifest["classes"][label] = files
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
