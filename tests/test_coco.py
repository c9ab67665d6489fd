"""COCO export: uncompressed RLE in column-major order, one annotation per 8-connected region."""

import json

import numpy as np
import pytest

import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rbd.coco import coco_dataset, decode_rle, encode_rle


def test_rle_counts_are_column_major_runs_starting_with_zeros():
    mask = np.array([[0, 1],
                     [1, 1],
                     [0, 0]], dtype=bool)
    # Columns top to bottom: 0 1 0 | 1 1 0  ->  runs 1 zero, 1 one, 1 zero, 2 ones, 1 zero.
    # (Row-major order would give [1, 3, 2].)
    assert encode_rle(mask) == {"size": [3, 2], "counts": [1, 1, 1, 2, 1]}


@pytest.mark.parametrize("mask, counts", [
    (np.zeros((2, 3), bool), [6]),
    (np.ones((2, 3), bool), [0, 6]),
    (np.array([[1, 0], [1, 0]], bool), [0, 2, 2]),  # starts with a defect pixel: a 0 count first
    (np.array([[1]], bool), [0, 1]),
    (np.array([[0, 0], [0, 1]], bool), [3, 1]),  # ends with a defect pixel: no background run after it
])
def test_rle_edge_cases(mask, counts):
    rle = encode_rle(mask)
    assert rle["counts"] == counts and all(type(count) is int for count in rle["counts"])  # whole numbers, as COCO says (were 3.0)
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_round_trip_on_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 7), (7, 1), (5, 9), (16, 12)]:
        for density in (0.05, 0.5, 0.95):
            mask = rng.random(shape) < density
            rle = encode_rle(mask)
            assert sum(rle["counts"]) == mask.size and all(c > 0 for c in rle["counts"][1:])
            decoded = decode_rle(json.loads(json.dumps(rle)))
            assert decoded.dtype == bool
            np.testing.assert_array_equal(decoded, mask)


def test_rle_accepts_0_255_masks_and_rejects_bad_input():
    np.testing.assert_array_equal(decode_rle(encode_rle(np.array([[0, 255]], np.uint8))), [[False, True]])
    with pytest.raises(ValueError):
        encode_rle(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError):
        decode_rle({"size": [2, 2], "counts": [1, 2]})  # sums to 3, not 4
    with pytest.raises(ValueError):
        decode_rle({"size": [2, 2], "counts": "PP4"})  # compressed RLE


def test_dataset_has_one_annotation_per_region_with_bbox_and_area():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region under 8-connectivity
    mask[3:5, 4:7] = True           # a 2 x 3 block
    data = coco_dataset([("a.png", 6, 8, mask, 0.7), ("b.png", 6, 8, None), ("c.png", 6, 8, np.zeros((6, 8), bool))])
    json.dumps(data)  # plain JSON types only

    assert data["categories"] == [{"id": 1, "name": "defect"}]
    assert data["images"] == [{"id": 1, "file_name": "a.png", "height": 6, "width": 8},
                              {"id": 2, "file_name": "b.png", "height": 6, "width": 8},
                              {"id": 3, "file_name": "c.png", "height": 6, "width": 8}]
    annotations = sorted(data["annotations"], key=lambda a: a["area"])
    assert [a["id"] for a in data["annotations"]] == [1, 2]
    assert [(a["bbox"], a["area"]) for a in annotations] == [([0, 0, 2, 2], 2), ([4, 3, 3, 2], 6)]
    for a in annotations:
        assert (a["image_id"], a["category_id"], a["iscrowd"], a["score"]) == (1, 1, 0, 0.7)
    union = np.zeros_like(mask)
    for a in annotations:
        region = decode_rle(a["segmentation"])
        assert region.sum() == a["area"] and not (union & region).any()
        union |= region
    np.testing.assert_array_equal(union, mask)


def test_dataset_without_scores_and_with_a_wrong_mask_size():
    data = coco_dataset([("a.png", 2, 2, np.ones((2, 2), bool))])
    assert "score" not in data["annotations"][0]
    with pytest.raises(ValueError, match="a.png"):
        coco_dataset([("a.png", 3, 2, np.ones((2, 2), bool))])


def test_rle_matches_pycocotools():
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (3, 2), (17, 23), (64, 9)]:
        for density in (0.0, 0.1, 0.6, 1.0):
            mask = rng.random(shape) < density
            ours = mask_util.frPyObjects(encode_rle(mask), *shape)  # our counts, compressed by pycocotools
            assert ours["counts"] == mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
            np.testing.assert_array_equal(mask_util.decode(ours).astype(bool), mask)


def test_each_region_is_encoded_as_pycocotools_encodes_it_alone_on_the_image():
    """Regions are encoded from their own pixels (not the whole image once per region): also those touching
    the first or last pixel, and many small ones."""
    rng = np.random.default_rng(2)
    for shape, density in [((40, 30), 0.3), ((7, 50), 0.5), ((33, 1), 0.5), ((50, 40), 0.05)]:
        mask = rng.random(shape) < density
        mask[0, 0] = mask[-1, -1] = True
        annotations = coco_dataset([("a.png", *shape, mask)])["annotations"]
        union = np.zeros(shape, bool)
        for a in annotations:
            region = decode_rle(a["segmentation"])
            expected = mask_util.encode(np.asfortranarray(region.astype(np.uint8)))
            assert mask_util.frPyObjects(a["segmentation"], *shape)["counts"] == expected["counts"]
            assert a["area"] == region.sum() and not (union & region).any()
            union |= region
        np.testing.assert_array_equal(union, mask)


def test_the_export_evaluates_to_ap_1_against_itself(tmp_path):
    """COCO evaluation ignores crowd annotations: an export pycocotools cannot score is no use."""
    rng = np.random.default_rng(2)
    items = []
    for i in range(4):
        mask = np.zeros((40, 50), bool)
        for _ in range(2):
            y, x = rng.integers(0, 30), rng.integers(0, 40)
            mask[y:y + rng.integers(3, 10), x:x + rng.integers(3, 10)] = True
        items.append((f"{i}.png", 40, 50, mask))
    data = coco_dataset(items)
    (tmp_path / "coco.json").write_text(json.dumps(data))
    truth = COCO(str(tmp_path / "coco.json"))
    found = truth.loadRes([{**a, "score": 1.0} for a in data["annotations"]])
    evaluation = COCOeval(truth, found, "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP at IoU 0.50:0.95
