"""Variants of a development set, each isolating one condition of the sets rbd is also judged on.

    python -m bench.variants --sets ksdd --variants sizes one-size lighting --out /tmp/variants
    python -m bench.compare --data /tmp/variants --sets ksdd-lighting --coreset 0.01 --minutes 4

The five development sets each have one image size and one lighting; sets rbd is measured on but
we do not have (issue 6) have neither: crops of 200-600 px with mixed aspect ratios, photographed
under several lighting conditions. These variants put one such condition on a development set, so
its cost to rbd (and to the peers, with `bench.compare`) is measured apart from everything else:

- `sizes`: every image (train and test) cropped to a short side of 40-100 % of its own and a long
  side of 1-2.5 times that, so a per-image resize to the model's input magnifies each differently;
- `one-size`: the control for `sizes`: the same crops but one short side (70 %), so every image is
  magnified alike;
- `lighting`: every image's intensities put through its own gain (0.6-1.4) and gamma (0.7-1.4).

Each image draws its own settings from one seeded generator, in file order, so a variant is the
same on every machine. A defect's crop contains its mask's centre; masks get the image's crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench import options
from rbd.datasets import mvtec_test_set, training_folder
from rbd.images import find_images

VARIANTS = ("sizes", "one-size", "lighting")


def crop_box(width: int, height: int, short_fraction: float, aspect: float, u: float, v: float,
             centre: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a crop whose short side is `short_fraction` of the image's and
    whose long side is `aspect` times that (capped by the image), along the image's long side; placed
    by `u`, `v` in [0, 1) within the image, or so that it holds `centre` (x, y)."""
    short = max(1, int(min(width, height) * short_fraction))
    long = max(short, min(max(width, height), int(short * aspect)))
    w, h = (short, long) if width <= height else (long, short)
    if centre is None:
        left, top = int(u * (width - w)), int(v * (height - h))
    else:
        left = int(np.clip(centre[0] - int(u * w), 0, width - w))  # int(u * w) < w: the centre stays inside
        top = int(np.clip(centre[1] - int(v * h), 0, height - h))
    return left, top, left + w, top + h


def relight(image: Image.Image, gain: float, gamma: float) -> Image.Image:
    """Intensities x in [0, 1] -> gain * x ** gamma, clipped; mode and size kept."""
    x = np.asarray(image).astype(np.float64) / 255
    y = np.clip(gain * x**gamma, 0, 1)
    return Image.fromarray((y * 255).round().astype(np.uint8))


def mask_centre(mask: Image.Image) -> tuple[int, int] | None:
    ys, xs = np.nonzero(np.asarray(mask))
    return (int(xs.mean()), int(ys.mean())) if len(xs) else None


def make_variant(source: Path, destination: Path, variant: str, seed: int = 0) -> int:
    """Write `variant` of the MVTec-layout set `source` to `destination`; returns the images written."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    rng = np.random.default_rng(seed)
    items = [(path, None) for path in find_images(training_folder(source))]
    items += [(item.path, item.mask_path) for item in mvtec_test_set(source)]
    for path, mask_path in items:
        fraction, aspect, gain, gamma, u, v = (rng.uniform(0.4, 1.0), rng.uniform(1.0, 2.5), rng.uniform(0.6, 1.4),
                                               rng.uniform(0.7, 1.4), rng.random(), rng.random())
        image = Image.open(path)
        image.load()
        mask = Image.open(mask_path) if mask_path is not None else None
        if variant == "lighting":
            image = relight(image, gain, gamma)
        else:
            centre = mask_centre(mask) if mask is not None else None
            box = crop_box(image.width, image.height, fraction if variant == "sizes" else 0.7, aspect, u, v, centre)
            image, mask = image.crop(box), (mask.crop(box) if mask is not None else None)
        relative = path.relative_to(source)
        out = (destination / relative).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out)
        if mask is not None:
            mask_out = destination / mask_path.relative_to(source)
            mask_out.parent.mkdir(parents=True, exist_ok=True)
            mask.save(mask_out)
    return len(items)


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seed", type=int, default=0)
    args = options.parse(parser)
    for name in args.sets:
        for variant in args.variants:
            count = make_variant(args.data / name, args.out / f"{name}-{variant}", variant, args.seed)
            print(f"{args.out / f'{name}-{variant}'}: {count} images")


if __name__ == "__main__":
    main()
