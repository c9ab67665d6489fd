"""What leaves a review session: the export zip (CSV, PNG masks, COCO) and the pictures the app shows."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..coco import CocoImage, coco_dataset
from ..detector import verdict as verdict_at
from ..errors import ImageReadError, InvalidInputError
from ..files import atomic_write
from ..images import file_shape, mask_at_size, mask_covering, read_image, to_uint8
from ..outputs import png_bytes
from ..uploads import unique_name, unsuffixed
from ..visualize import fold, folded_shape, mask_image, outlined, shown_size, subsample, unfold
from ..visualize import overlay as heat_overlay
from .rules import decided_mask, mask_to_edit, place_unknown
from .store import THUMB_SIDE


def export_zip(session, path: str | Path, threshold: float) -> Path:
    """One zip, written atomically: decisions.csv, masks/<name>.png and coco.json, each image named by
    its path in its upload (`Item.file_name`, e.g. `good/000.png`, whose mask is `masks/good/000.png`),
    of the review as it stood when the export began (`ReviewSession.snapshot`), judged by one model (`one_model`).

    decisions.csv has a row per image: file, score, verdict (the model's at `threshold`),
    decision, corrected ("yes" where the mask was repainted), timestamp, label (good or
    defective after review), decided_on (the verdict the decision was made on, which a later
    threshold or re-score may have changed since) and mask (its path in the zip); the last six are empty
    for unreviewed images. Masks (0/255, at the image file's size, also where a huge image was scored on
    a downscaled copy) and coco.json cover reviewed images only, and of those not the defective ones
    whose defect has no place (a "good" verdict rejected, nothing painted): an empty mask would call
    them defect-free. Their `mask` reads "unknown".
    """
    with session.one_model():  # a re-score switching models midway would judge a decision by another model's map
        return _export(session, Path(path), threshold, session.snapshot())


def _export(session, path: Path, threshold: float, state: list) -> Path:
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "score", "verdict", "decision", "corrected", "timestamp", "label", "decided_on", "mask"])
    reviewed = []
    masks = mask_names([item.file_name for item, decision, _ in state if decision is not None])
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
        for item, decision, defective in state:
            row = [item.file_name, f"{item.score:.6f}", verdict_at(item.score, threshold)]
            if decision is None:
                writer.writerow(row + ["", "", "", "", "", ""])
                continue
            mask = decided_mask(session, item.id, decision, defective)
            known = mask.any() or not defective
            corrected = "yes" if decision.decision == "correct" else "no"  # the mask was repainted
            writer.writerow(row + [decision.decision, corrected, decision.timestamp, "defective" if defective else "good",
                                   decision.verdict, masks[item.file_name] if known else "unknown"])
            if not known:
                continue
            mask = _at_image_size(mask, item.image_path)
            archive.writestr(masks[item.file_name], png_bytes(mask_image(mask)))
            reviewed.append(CocoImage(item.file_name, *mask.shape, mask))
        archive.writestr("decisions.csv", table.getvalue())
        archive.writestr("coco.json", json.dumps(coco_dataset(reviewed)))
    return path


def mask_names(file_names: list[str]) -> dict[str, str]:
    """Each image's mask path in the export: `masks/<its name less its suffix>.png`, numbered (`photo_1.png`)
    where that path is also a folder of another mask's (`photo.png` beside `photo.png/x.png`, from a folder
    macOS zipped as `photo.png.zip`), which no unzip could make both of."""
    paths = {name: f"masks/{unsuffixed(name)}.png" for name in file_names}
    folders = {parent.as_posix().casefold() for path in paths.values() for parent in PurePosixPath(path).parents}
    taken = {path.casefold() for path in paths.values()} | folders
    return {name: unique_name(path, taken) if path.casefold() in folders else path for name, path in paths.items()}


def _at_image_size(mask: np.ndarray, image_path: Path) -> np.ndarray:
    """`mask_at_size` the image file's own upright size, so that it lies on the file it names; the mask as it
    is where the file is unreadable."""
    try:
        return mask_at_size(mask, file_shape(image_path))
    except ImageReadError:
        return mask


def overlay(session, item_id: int, threshold: float, opacity: float = 0.5, max_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8: the image blended with its heat map, coloured by the session's calibration,
    with the edge of the inspector's mask outlined once one was painted (`outlined`), so that what
    was saved is seen.

    `max_side` keeps every `step`-th pixel of the map so the long side fits, and decodes the picture
    at that size; at `THUMB_SIDE` the picture is the thumbnail stored at scoring time.
    """
    if max_side is not None and max_side < 1:
        raise InvalidInputError(f"max_side must be at least 1, got {max_side}")
    amap = session.anomaly_map(item_id)
    if max_side is not None:
        amap = subsample(amap, max_side)
    thumbnail = session.thumbnail_path(item_id)
    picture = read_image(thumbnail) if max_side == THUMB_SIDE and thumbnail.is_file() else session.image(item_id, amap.shape)
    drawn = heat_overlay(picture, amap, session.calibration, threshold, opacity)
    decision = session.decision(item_id)
    if decision is None or decision.decision != "correct":
        return drawn
    return outlined(drawn, mask_covering(session.read_mask(decision.mask), amap.shape))


def editor_canvas(session, item_id: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(picture (h, w, 3) uint8, mask (h, w) bool) to open the mask editor with: the image and the
    mask to start from (`mask_to_edit`) at `shown_size`, a long strip folded into a block (`fold`)
    as the review shows it, so that it is not painted on as a sliver."""
    item = session.item(item_id)
    size = shown_size(item.height, item.width)
    return fold(to_uint8(session.image(item_id, size))), fold(mask_covering(mask_to_edit(session, item_id, threshold), size), fill=False)


def painted_mask(session, item_id: int, layers: list[np.ndarray], threshold: float) -> np.ndarray:
    """The inspector's mask at the item's size, (H, W) bool, from the editor's RGBA `layers` as
    `editor_canvas` drew them at `threshold`: every painted pixel (alpha > 0; paint in a folded
    strip's gaps is dropped). On an image edited smaller, only what the painting changed is
    enlarged: the rest keeps the mask the editor opened with at full size, so opening and saving
    changes nothing. InvalidInputError for layers of another size, and for nothing painted on an image rejected as
    defective with its defect's place unknown (`place_unknown`): the empty mask said "good", reversing the decision."""
    item = session.item(item_id)
    size = shown_size(item.height, item.width)
    canvas = folded_shape(*size)
    painted = np.zeros(canvas, bool)
    for layer in layers:
        alpha = np.asarray(layer)[..., 3] > 0
        if alpha.shape != canvas:
            raise InvalidInputError(f"the painted mask is {alpha.shape[1]}x{alpha.shape[0]}, the editor for "
                                    f"{item.file_name} is {canvas[1]}x{canvas[0]}")
        painted |= alpha
    painted, full = unfold(painted, *size), (item.height, item.width)
    if not painted.any() and place_unknown(session, item_id):  # paint only in a folded strip's gaps is none
        raise InvalidInputError(f"nothing painted: {item.file_name} stays rejected as defective, its defect's place not "
                                "known. Paint where the defect is, or press Accept (a) if the model's 'good' is right")
    if size == full:
        return painted
    opened = mask_to_edit(session, item_id, threshold)
    changed = painted != mask_covering(opened, size)
    return np.where(mask_at_size(changed, full), mask_at_size(painted, full), opened)

