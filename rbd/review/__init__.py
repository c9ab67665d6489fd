"""Reviewing a detector's verdicts: an inspector accepts, rejects or corrects each one.

Three jobs, one module each:

- `store`: the session on disk (items, the model that scored them, the decision log, recovery
  after a crash) and its in-memory score and label arrays;
- `rules`: what decisions mean (labels, final masks, filters, metrics, recalibration);
- `export`: the export zip and the pictures the app shows.
"""

from .export import editor_canvas, export_zip, overlay, painted_mask
from .rules import (FILTERS, final_label, final_mask, first_unreviewed, good_like_defects, mask_to_edit, metrics, normal_images,
                    ordered, place_unknown, recalibrated)
from .store import DECISIONS, THUMB_SIDE, Decision, Item, ReviewSession, ScoredBy, session_folder

__all__ = ["DECISIONS", "FILTERS", "THUMB_SIDE", "Decision", "Item", "ReviewSession", "ScoredBy", "editor_canvas",
           "export_zip", "final_label", "final_mask", "first_unreviewed", "good_like_defects", "mask_to_edit", "metrics", "normal_images", "ordered",
           "overlay", "painted_mask", "place_unknown", "recalibrated", "session_folder"]
