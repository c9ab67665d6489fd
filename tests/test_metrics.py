"""Tests for rbd.metrics against independently computed values.

scikit-learn is used here only as a reference implementation for AUROC and
F1-max; AUPRO is checked against hand-derived cases, a slow brute-force
reference written below with plain numpy loops, and the procedure of the
MVTec AD evaluation code (per-pixel increments, sorted and summed), written
from its description without rbd's code.
"""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score

from rbd.metrics import at_threshold, aupro, auroc, f1_max, pixel_auroc, summarize


def sklearn_f1_max(labels, scores):
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return f1.max()


def reference_aupro(masks, maps, fpr_limit=0.3, thresholds=None):
    """Brute force: evaluate every threshold directly, clip segments at fpr_limit."""
    masks = [np.asarray(mask) > 0 for mask in masks]
    regions = []  # (image index, boolean mask of one connected defect region)
    for i, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, labeled == k) for k in range(1, n + 1)]
    n_normal = sum((~mask).sum() for mask in masks)
    if thresholds is None:
        thresholds = np.unique(np.concatenate([m.ravel() for m in maps]))

    points = [(0.0, 0.0)]  # threshold above every score: nothing predicted
    for t in sorted(thresholds, reverse=True):
        preds = [m >= t for m in maps]
        fpr = sum((p & ~mask).sum() for p, mask in zip(preds, masks)) / n_normal
        pro = np.mean([preds[i][region].mean() for i, region in regions])
        points.append((fpr, pro))

    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        hi = min(x1, fpr_limit)
        if hi <= x0:
            continue
        y_hi = y0 + (y1 - y0) * (hi - x0) / (x1 - x0)
        area += (hi - x0) * (y0 + y_hi) / 2
    return area / fpr_limit


def random_images(seed, ties):
    """Small images of differing sizes with blob defects, one image defect-free."""
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for i, shape in enumerate([(12, 16), (16, 16), (10, 14), (12, 12)]):
        blobs = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
        mask = blobs > 0.25 if i else np.zeros(shape, dtype=bool)
        amap = ndimage.gaussian_filter(rng.normal(size=shape), 1.0) + 0.6 * mask
        if ties:
            amap = np.round(amap, 1)
        masks.append(mask.astype(np.uint8) * 255)
        maps.append(amap.astype(np.float32))
    assert sum(mask.any() for mask in masks) >= 2
    return masks, maps


# --- AUROC ------------------------------------------------------------------


def test_auroc_hand_cases():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # Pairs (pos, neg): (.35 > .1), (.35 < .4), (.8 > .1), (.8 > .4) -> 3 / 4.
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # Pairs: (.5 > .2), (.5 = .5 counts 1/2), (.9 > .2), (.9 > .5) -> 3.5 / 4.
    assert auroc([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.875)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=200)
    scores = rng.integers(0, 15, size=200) + 3 * labels  # few distinct values: many ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc(labels.astype(bool), scores.astype(float)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )


def test_auroc_errors():
    with pytest.raises(ValueError, match="both classes"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="binary"):
        auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        auroc([0, 1], [[0.1, 0.2]])


# --- F1-max -----------------------------------------------------------------


def test_at_threshold_counts_verdicts_with_ties_on_the_defective_side():
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.5, 0.7, 0.2, 0.5, 0.9, 0.3]
    result = at_threshold(labels, scores, 0.5)  # 0.5 itself is defective: one normal flagged, two defects found
    assert result == {"threshold": 0.5, "false_alarm_rate": 0.5, "false_alarms": 2, "good_images": 4,
                      "recall": 2 / 3, "found": 2, "defective_images": 3}
    assert at_threshold(labels, scores, 1.0)["false_alarm_rate"] == at_threshold(labels, scores, 1.0)["recall"] == 0.0
    only_normal = at_threshold([0, 0], [0.2, 0.8], 0.5)
    assert only_normal["recall"] is None and only_normal["false_alarm_rate"] == 0.5


def test_f1_max_hand_cases():
    # labels [0,0,1,1], scores [.1,.4,.35,.8]; thresholds high to low:
    # .8 -> TP1 FP0 F1=2/3; .4 -> TP1 FP1 F1=1/2; .35 -> TP2 FP1 F1=4/5; .1 -> F1=2/3.
    assert f1_max([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8)
    assert f1_max([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    # All tied: the only threshold predicts everything positive, TP2 FP2 -> 2/3.
    assert f1_max([0, 1, 0, 1], [0.5] * 4) == pytest.approx(2 / 3)
    assert f1_max([1, 1, 1], [0.3, 0.1, 0.2]) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_f1_max_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=200)
    scores = rng.integers(0, 15, size=200) + 3 * labels
    assert f1_max(labels, scores) == pytest.approx(sklearn_f1_max(labels, scores), abs=1e-12)


def test_f1_max_needs_a_positive():
    with pytest.raises(ValueError, match="positive"):
        f1_max([0, 0], [0.1, 0.2])


# --- pixel AUROC ------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_pixel_auroc_matches_sklearn_for_lists_of_sizes(ties):
    masks, maps = random_images(seed=1, ties=ties)
    labels = np.concatenate([mask.ravel() > 0 for mask in masks])
    scores = np.concatenate([amap.ravel() for amap in maps])
    expected = roc_auc_score(labels, scores)
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
    # 0/255, 0/1 and bool masks are equivalent.
    assert pixel_auroc([m > 0 for m in masks], maps) == pytest.approx(expected, abs=1e-12)
    assert pixel_auroc([m // 255 for m in masks], maps) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_accepts_stacked_array():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 8, 8)) > 0.8
    maps = rng.random((3, 8, 8)) + masks
    expected = roc_auc_score(masks.ravel(), maps.astype(np.float32).ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_shape_errors():
    with pytest.raises(ValueError, match="mask shape"):
        pixel_auroc([np.zeros((4, 4))], [np.zeros((4, 5))])
    with pytest.raises(ValueError, match="2 masks but 1"):
        pixel_auroc([np.zeros((4, 4))] * 2, [np.zeros((4, 4))])
    with pytest.raises(ValueError, match=r"maps\[0\] must be 2-D"):
        pixel_auroc([np.zeros((4, 4))], [np.zeros((1, 4, 4))])


# --- AUPRO ------------------------------------------------------------------


def two_region_case():
    """Image 1 (5x5): region A = 2x2 block, region B = 1 pixel; image 2 (4x5) defect-free.

    40 normal pixels. Thresholds high to low give (FPR, PRO):
      0.9 (A found)              -> (0.0, 0.5)
      0.7 (4 normal px in img 2) -> (0.1, 0.5)
      0.5 (B found)              -> (0.1, 1.0)
      0.0 (everything)           -> (1.0, 1.0)
    Area up to FPR 0.3: 0.1 * 0.5 + 0.2 * 1.0 = 0.25 -> AUPRO = 0.25 / 0.3 = 5/6.
    (Pixel-weighted overlap would give 0.8 for A instead of 0.5, i.e. 14/15.)
    """
    mask1 = np.zeros((5, 5), dtype=bool)
    mask1[:2, :2] = True
    mask1[4, 4] = True
    map1 = np.where(mask1, 0.5, 0.0)
    map1[:2, :2] = 0.9
    mask2 = np.zeros((4, 5), dtype=bool)
    map2 = np.zeros((4, 5))
    map2[0, :4] = 0.7
    return [mask1, mask2], [map1, map2]


def test_aupro_two_regions_by_hand():
    masks, maps = two_region_case()
    assert aupro(masks, maps) == pytest.approx(5 / 6)
    # Only the (0, 0.5) -> (0.1, 0.5) segment below FPR 0.05: 0.05 * 0.5 / 0.05.
    assert aupro(masks, maps, fpr_limit=0.05) == pytest.approx(0.5)
    # Full curve: 0.1 * 0.5 + 0.9 * 1.0.
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.95)


def test_aupro_uses_8_connectivity():
    # 2x2 block plus a diagonally touching pixel: one region of 5 pixels.
    mask = np.zeros((5, 5), dtype=bool)
    mask[:2, :2] = True
    mask[2, 2] = True
    amap = np.zeros((5, 5))
    amap[:2, :2] = 1.0
    # Curve (0,0) -> (0,0.8) -> (1,1): PRO(0.3) = 0.86, area 0.3*(0.8+0.86)/2 = 0.249.
    # (With 4-connectivity, two regions: PRO 0.5 and AUPRO 0.575.)
    assert aupro([mask], [amap]) == pytest.approx(0.83)


def test_aupro_perfect_and_constant_maps():
    masks, _ = random_images(seed=2, ties=False)
    perfect = [(mask > 0).astype(np.float32) for mask in masks]
    assert aupro(masks, perfect) == pytest.approx(1.0)
    # A constant map jumps straight from (0, 0) to (1, 1): area 0.3 * 0.3 / 2.
    constant = [np.ones(mask.shape) for mask in masks]
    assert aupro(masks, constant) == pytest.approx(0.15)


def test_pixel_metrics_keep_float64_maps_apart():
    """Distinct float64 values 2e-4 apart near 10,000 are one float32 value: pooled as float32 they tied."""
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    amap = 10_000.0 + np.where(mask, 2e-4, 0.0) + np.arange(64).reshape(8, 8) * 1e-6
    assert pixel_auroc([mask], [amap]) == 1.0 and aupro([mask], [amap]) == pytest.approx(1.0)
    assert pixel_auroc([mask], [np.where(mask, 2e39, 1e39)]) == 1.0  # beyond float32, still finite
    assert pixel_auroc([mask], [mask.astype(np.int64) + 2**30]) == 1.0  # integers one apart, which float32 ties


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_aupro_matches_brute_force_reference(seed, ties):
    masks, maps = random_images(seed, ties)
    assert aupro(masks, maps) == pytest.approx(reference_aupro(masks, maps), abs=1e-9)
    assert aupro(masks, maps, fpr_limit=0.1) == pytest.approx(
        reference_aupro(masks, maps, fpr_limit=0.1), abs=1e-9
    )


def mvtec_reference_aupro(masks, maps, fpr_limit=0.3):
    """AUPRO as the MVTec AD evaluation script computes it (Bergmann et al., IJCV 2021).

    Every normal pixel adds 1 / (normal pixels) to the FPR and every pixel of a connected
    defect region adds 1 / (regions * region size) to the PRO once the threshold reaches its
    score. All pixels are sorted by score, high to low, and the increments summed; of each run of
    tied scores only the last sum is kept (one threshold cannot split ties). The curve starts at
    (0, 0); its area up to fpr_limit, with the segment crossing fpr_limit cut by linear
    interpolation, is divided by fpr_limit.
    """
    fp_step, pro_step = [], []
    components = [ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3), int)) for mask in masks]
    n_components = sum(n for _, n in components)
    n_normal = sum(int((labels == 0).sum()) for labels, _ in components)
    for labels, n in components:
        sizes = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
        fp_step.append(np.where(labels == 0, 1.0 / n_normal, 0.0).ravel())
        per_region = np.concatenate(([0.0], 1.0 / (n_components * sizes[1:])))
        pro_step.append(per_region[labels].ravel())
    scores = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    fprs = np.cumsum(np.concatenate(fp_step)[order])
    pros = np.cumsum(np.concatenate(pro_step)[order])
    last_of_tie = np.append(np.diff(scores) != 0, True)
    fprs = np.concatenate(([0.0], np.clip(fprs[last_of_tie], 0, 1)))
    pros = np.concatenate(([0.0], np.clip(pros[last_of_tie], 0, 1)))

    inside = fprs <= fpr_limit
    area = np.sum((fprs[inside][1:] - fprs[inside][:-1]) * (pros[inside][1:] + pros[inside][:-1]) / 2)
    beyond = np.flatnonzero(~inside)
    if beyond.size:  # the segment that crosses fpr_limit, up to fpr_limit
        i = beyond[0]
        x0, x1, y0, y1 = fprs[i - 1], fprs[i], pros[i - 1], pros[i]
        y_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += (fpr_limit - x0) * (y0 + y_limit) / 2
    return area / fpr_limit


def random_masks_and_maps(seed, levels):
    """Images of several sizes: speckled masks with many small regions (one image all normal) and
    maps weakly related to them, rounded to `levels` values per unit so ties are common."""
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for i in range(6):
        shape = tuple(rng.integers(8, 30, size=2))
        mask = ndimage.gaussian_filter(rng.normal(size=shape), 1.0) > 0.35 if i else np.zeros(shape, bool)
        mask |= rng.random(shape) > 0.97  # single-pixel regions
        amap = rng.normal(size=shape) + 1.5 * mask
        masks.append(mask)
        maps.append(np.round(amap * levels) / levels if levels else amap)
    return masks, maps


@pytest.mark.parametrize("levels", [None, 10, 2])
@pytest.mark.parametrize("seed", range(4))
def test_aupro_matches_the_mvtec_reference_procedure(seed, levels):
    masks, maps = random_masks_and_maps(seed, levels)
    assert sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks) > 10  # many regions to weigh
    for fpr_limit in (0.3, 0.05, 1.0):
        assert aupro(masks, maps, fpr_limit=fpr_limit) == pytest.approx(
            mvtec_reference_aupro(masks, maps, fpr_limit), abs=1e-9
        ), fpr_limit


def test_aupro_threshold_grid():
    masks, maps = random_images(seed=3, ties=False)
    flat = np.concatenate([m.ravel() for m in maps])
    grid = np.linspace(flat.min(), flat.max(), 50)
    # The grid variant is exact for its own thresholds and close to the exact curve.
    assert aupro(masks, maps, num_thresholds=50) == pytest.approx(
        reference_aupro(masks, maps, thresholds=grid), abs=1e-9
    )
    assert aupro(masks, maps, num_thresholds=2000) == pytest.approx(aupro(masks, maps), abs=1e-2)


def test_aupro_errors():
    empty = [np.zeros((4, 4), dtype=bool)] * 2
    maps = [np.random.default_rng(0).random((4, 4))] * 2
    with pytest.raises(ValueError, match="anomalous pixel"):
        aupro(empty, maps)
    with pytest.raises(ValueError, match="normal pixels"):
        aupro([np.ones((4, 4))] * 2, maps)
    masks, maps = two_region_case()
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, maps, fpr_limit=0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, maps, fpr_limit=1.5)
    with pytest.raises(ValueError, match="num_thresholds"):
        aupro(masks, maps, num_thresholds=1)
    with pytest.raises(ValueError, match="mask shape"):
        aupro(masks, [maps[0], maps[0]])


# --- summarize --------------------------------------------------------------


def test_summarize():
    masks, maps = random_images(seed=4, ties=False)
    labels = [int(mask.any()) for mask in masks]
    scores = [float(amap.max()) for amap in maps]
    result = summarize(labels, scores, masks, maps)
    assert result == {
        "image_auroc": pytest.approx(roc_auc_score(labels, scores)),
        "image_f1max": pytest.approx(sklearn_f1_max(labels, scores)),
        "pixel_auroc": pytest.approx(pixel_auroc(masks, maps)),
        "aupro": pytest.approx(reference_aupro(masks, maps), abs=1e-9),
    }


def test_summarize_without_pixel_metrics():
    labels, scores = [0, 1, 0, 1], [0.1, 0.9, 0.3, 0.4]
    expected = {"image_auroc": 1.0, "image_f1max": 1.0, "pixel_auroc": None, "aupro": None}
    assert summarize(labels, scores) == expected
    empty = [np.zeros((3, 3))] * 4
    assert summarize(labels, scores, empty, [np.ones((3, 3))] * 4) == expected
    with pytest.raises(ValueError, match="maps are required"):
        summarize(labels, scores, empty)
    with pytest.raises(ValueError, match="3 masks for 4"):
        summarize(labels, scores, empty[:3], empty[:3])
