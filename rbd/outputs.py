"""What `rbd predict` makes of one image, whichever engine scored it: the results row and the
overlay and mask as PNG files' bytes.

The local engine renders them in the command's process, the Ray engine in its actors (so the
drawing is spread over the cluster too); the command writes both the same way, so the two
engines give the same files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .calibration import Calibration
from .detector import Prediction, is_out_of_domain
from .images import mask_at_size
from .visualize import mask_image, overlay

# out_of_domain: "yes" where the image looks unlike the model's training images (its verdict says little);
# familiarity and out_of_domain are empty for a model without memory, which cannot tell; overlay and mask:
# the row's pictures, relative to the output folder (two inputs of one name get different ones)
CSV_COLUMNS = ("file", "score", "normalized_score", "threshold", "verdict", "familiarity", "out_of_domain", "overlay", "mask")


def picture_names(name: str) -> tuple[str, str]:
    """The overlay's and the mask's file names for an output `name` (a path relative to the output folder)."""
    return f"{name}_overlay.png", f"{name}_mask.png"


@dataclass(frozen=True)
class ScoredFile:
    """One input file's outcome; a file that could not be read or decoded has only its `error`."""

    file: str
    score: float | None = None
    normalized_score: float | None = None
    threshold: float | None = None
    verdict: str | None = None
    familiarity: float | None = None
    overlay_png: bytes | None = None
    mask_png: bytes | None = None
    error: str | None = None

    @property
    def out_of_domain(self) -> bool:
        return is_out_of_domain(self.familiarity)

    def csv_row(self, name: str) -> list[str]:
        """The results.csv row of a scored file whose pictures were written under the output `name`."""
        known = self.familiarity is not None
        return [self.file, f"{self.score:.6f}", f"{self.normalized_score:.6f}", f"{self.threshold:.6f}", self.verdict,
                f"{self.familiarity:.4f}" if known else "", ("yes" if self.out_of_domain else "no") if known else "",
                *picture_names(name)]


def scored_file(file: str, image: np.ndarray, prediction: Prediction, calibration: Calibration,
                size: tuple[int, int]) -> ScoredFile:
    """The row and pictures of one scored image whose file is `size` (height, width, upright): its mask at
    that size also where the image was scored on a downscaled copy, so that it lies on the file."""
    return ScoredFile(file, prediction.score, prediction.normalized_score, prediction.threshold, prediction.verdict,
                      prediction.familiarity, png_bytes(overlay(image, prediction.anomaly_map, calibration, prediction.threshold)),
                      png_bytes(mask_image(mask_at_size(prediction.mask, size))))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
