"""The shipped checkpoints: small (under 6.1 MB), safetensors + JSON, offline teacher, and they tell the shipped
examples apart (each defective example outscores the good example of its set, and the app's first example of each
set's defects is one its model flags: a demo whose every defect passed would show a detector that finds nothing)."""

from pathlib import Path

import pytest

import rbd
from rbd.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
SETS = ("bottle", "ksdd", "weld")


@pytest.mark.parametrize("name", SETS)
def test_shipped_checkpoint_scores_its_examples(name):
    folder = ROOT / "checkpoints" / name
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 6.1e6  # issue 6's size target
    detector = rbd.load(folder)
    assert detector.config.backbone == "tf_efficientnet_lite0"
    good = detector.predict(ROOT / "examples" / f"{name}_good.jpg")
    defective = [detector.predict(p) for p in sorted((ROOT / "examples").glob(f"{name}_*.jpg")) if p.stem != f"{name}_good"]
    assert defective and all(p.score > good.score for p in defective)
    assert not good.is_anomalous
    assert detector.predict(ROOT / "examples" / {"bottle": "bottle_broken_large.jpg", "ksdd": "ksdd_crack.jpg",
                                                 "weld": "weld_defective.jpg"}[name]).is_anomalous


def test_the_shipped_checkpoints_say_what_their_test_found():
    """A model line saying only "catches 73% of synthetic defects" let ksdd pass for one that finds most cracks: the
    checkpoints record their own test (`rbd evaluate` on their set's test/), and the app's model line says it."""
    from rbd.thresholds import tested

    ksdd = rbd.load(ROOT / "checkpoints" / "ksdd")
    assert tested(ksdd.metrics) == ("on its test set (119 images) at raw threshold 8.4354: flagged 38% of the defective "
                                    "parts and 2.9% of the good ones")
    assert ksdd.metrics["threshold"] == ksdd.threshold  # tested at the threshold it judges by
    assert tested({}) is None and tested({"recall": 0.5}) is None


def test_the_app_starts_on_the_bottle_checkpoint(tmp_path):
    catalog = Catalog(ROOT / "checkpoints", tmp_path / "models")
    assert [label for label, _ in catalog.entries()] == [f"{name} (shipped)" for name in SETS]
    assert catalog.default_key() == str(ROOT / "checkpoints" / "bottle")
