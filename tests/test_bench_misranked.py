"""bench/misranked.py: the highest-scoring normal and lowest-scoring defective test images, with their defects' areas."""

import numpy as np
from PIL import Image

import rbd
from bench.misranked import contact_sheet, misranked


def test_it_lists_the_extreme_images_of_each_kind_with_their_scores_and_mask_areas(detector, category, tmp_path):
    rows = rbd.evaluate(detector, category).rows
    found = misranked(detector, category, count=2)
    normal, defective = found[:2], found[2:]
    normal_scores = sorted((r["score"] for r in rows if r["label"] == 0), reverse=True)
    defective_scores = sorted(r["score"] for r in rows if r["label"] == 1)
    assert [r["score"] for r in normal] == normal_scores[:2]
    assert [r["score"] for r in defective] == defective_scores[:2]
    assert all(r["mask_area"] is None for r in normal)
    for row in defective:  # the conftest's defects are discs of radius 6-9: 113-255 pixels
        truth = np.asarray(Image.open(category / "ground_truth" / "hole" / (row["file"].split("/")[-1][:-4] + "_mask.png"))) > 127
        assert row["mask_area"] == truth.sum() and 100 < row["mask_area"] < 260

    sheet = tmp_path / "sheet.png"
    contact_sheet(detector, category, found, sheet)
    assert Image.open(sheet).size[1] > Image.open(sheet).size[0]  # four rows of two pictures: taller than wide
