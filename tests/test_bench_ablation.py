"""bench/ablation.py's new draws of the memory bank: the student kept, the bank and threshold made again
as training makes them, the same draw for the same seed."""

import math

import torch

from bench.ablation import NeighbourMemory, WhitenedMemory, variant, with_new_bank
from rbd.memory import PatchMemory, flatten_patches, patch_features


def test_a_new_bank_keeps_the_student_and_is_drawn_again_reproducibly(detector, category):
    before = {k: v.clone() for k, v in detector.model.trained_state().items()}
    drawn = with_new_bank(detector, category, seed=1)
    again = with_new_bank(detector, category, seed=1)
    after = detector.model.trained_state()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the detector itself is untouched
    student = {k: v for k, v in drawn.model.trained_state().items() if k.startswith("student.")}
    assert student and all(torch.equal(v, before[k]) for k, v in student.items())
    assert torch.equal(drawn.model.memory.bank, again.model.memory.bank)
    assert drawn.calibration.threshold == again.calibration.threshold
    # this set has fewer patches than the bank has places: every draw keeps them all, so the
    # standardisation and threshold made again must be training's own (the same images, split and rules)
    assert torch.equal(torch.unique(drawn.model.memory.bank, dim=0), torch.unique(before["memory.bank"], dim=0))
    assert torch.allclose(drawn.model.normal_mean, before["normal_mean"]) and torch.allclose(drawn.model.normal_std, before["normal_std"])
    assert abs(drawn.calibration.threshold - detector.calibration.threshold) < 1e-5


def test_the_half_map_weighs_the_students_part_at_half(detector, category):
    image = torch.rand(1, 3, 64, 64)
    model, half = detector.model, variant(detector, "half").model
    scale_maps, memory_map = model.distances(image)
    student_only = variant(detector, "student").model.combine(scale_maps, None, (64, 64))  # without the full map's edge level
    memory_only = variant(detector, "memory").model.combine(scale_maps, memory_map, (64, 64))
    assert torch.allclose(half.combine(scale_maps, memory_map, (64, 64)), student_only / 2 + memory_only, atol=1e-5)


def test_a_new_bank_learns_todays_edge_level_or_none(detector, category):
    """--edge-bands 0 compares the model without the map's level by distance from the edge; by default it is learned."""
    image = torch.rand(64, 64, 3).numpy()
    none, learned = with_new_bank(detector, category, seed=0, edge_bands=0), with_new_bank(detector, category, seed=0)
    assert none.config.edge_bands == 0 and none.model.edge_profile.numel() == 0
    # learned as training learned it from the same draw, also over the copy's own profile (not from maps already less it)
    torch.testing.assert_close(learned.model.edge_profile, detector.model.edge_profile)
    assert abs(none.predict(image).anomaly_map - learned.predict(image).anomaly_map).max() > 0.05


def test_a_new_bank_can_smooth_the_maps_otherwise(detector, category):
    """--blur-sigma: the copy's maps smoothed by the given width, which its config says (so a saved copy predicts alike)."""
    narrow = with_new_bank(detector, category, seed=0, blur_sigma=1.0)
    assert narrow.config.blur_sigma == 1.0 and narrow.model.blur.sigma == 1.0 * detector.config.image_size / 256
    image = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(0)).numpy()
    ordinary = with_new_bank(detector, category, seed=0)
    assert abs(narrow.predict(image).anomaly_map - ordinary.predict(image).anomaly_map).max() > 0.05
    assert detector.model.blur.sigma == detector.config.blur_sigma * detector.config.image_size / 256  # the original untouched


def test_a_new_bank_can_hold_another_number_of_patches(detector, category):
    drawn = with_new_bank(detector, category, seed=0, memory_size=8)
    assert drawn.model.memory.bank.shape == (8, detector.model.memory.bank.shape[1])
    assert drawn.model.config.memory_size == 8 and detector.model.config.memory_size != 8
    assert drawn.predict(torch.rand(64, 64, 3).numpy()).anomaly_map.shape == (64, 64)  # a working detector with it


def test_centred_maps_sit_on_their_image_median_and_are_standardised_again(detector, category):
    image = torch.rand(1, 3, 64, 64)
    plain = with_new_bank(detector, category, seed=0)
    centred = with_new_bank(detector, category, seed=0, centre="all")
    scale_maps, memory_map = centred.model.distances(image)
    assert all(abs(float(m.median())) < 1e-6 for m in scale_maps + [memory_map])  # every map on its own median
    plain_maps, plain_memory = plain.model.distances(image)
    assert torch.allclose(scale_maps[0], plain_maps[0] - plain_maps[0].median(), atol=1e-6)
    assert not torch.allclose(centred.model.normal_mean, plain.model.normal_mean)  # the standardisation set on centred maps
    student_only = with_new_bank(detector, category, seed=0, centre="student").model.distances(image)[1]
    assert torch.allclose(student_only, plain_memory)  # "student" leaves the memory's map as it was


def test_the_whitened_memory_searches_by_mahalanobis_distance():
    spreads = torch.tensor([10.0, 3.0, 1.0, 0.1])
    candidates = torch.randn(4000, 4, generator=torch.Generator().manual_seed(0)) * spreads
    # teacher-like features whose patches (patch_features: 3x3 means) are the queries; two dimensions a grid
    features = [torch.zeros(1), torch.randn(2, 2, 6, 10, generator=torch.Generator().manual_seed(1)) * spreads[:2].view(1, 2, 1, 1) * 3,
                torch.randn(2, 2, 3, 5, generator=torch.Generator().manual_seed(1)) * spreads[2:].view(1, 2, 1, 1) * 3]
    queries = patch_features(features)
    whitened = WhitenedMemory(4, 4000, shrinkage=0.0)  # a bank of every candidate: the exact nearest one
    whitened.fit(candidates, torch.Generator().manual_seed(2))
    assert torch.allclose(torch.cov(whitened.transform(candidates).T), torch.eye(4), atol=1e-4)
    mahalanobis = torch.cdist(flatten_patches(queries) / spreads, candidates / spreads).amin(dim=1).view(2, 1, 6, 10)
    assert torch.allclose(whitened(features), mahalanobis, rtol=0.05)  # the sample's spreads, not the true ones
    # shrunk all the way, the search is the plain one up to a scale, the same nearest patches
    plain, shrunk = PatchMemory(4, 4000), WhitenedMemory(4, 4000, shrinkage=1.0)
    plain.fit(candidates, torch.Generator().manual_seed(2)), shrunk.fit(candidates, torch.Generator().manual_seed(2))
    ratio = shrunk(features) / plain(features)
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-3)


def test_the_neighbour_memory_averages_the_nearest_entries():
    features = [torch.zeros(1), torch.randn(2, 3, 6, 10, generator=torch.Generator().manual_seed(1)),
                torch.randn(2, 2, 3, 5, generator=torch.Generator().manual_seed(2))]
    candidates = torch.randn(500, 5, generator=torch.Generator().manual_seed(0))
    plain, one, three = PatchMemory(5, 64), NeighbourMemory(5, 64, neighbours=1), NeighbourMemory(5, 64, neighbours=3)
    for memory in (plain, one, three):
        memory.fit(candidates, torch.Generator().manual_seed(3))
    assert torch.allclose(one(features), plain(features), atol=1e-4)  # one neighbour: the plain search
    distances = torch.cdist(flatten_patches(patch_features(features)), three.bank)
    expected = distances.sort(dim=1).values[:, :3].mean(dim=1).view(2, 1, 6, 10)
    assert torch.allclose(three(features), expected, atol=1e-5)
    assert (three(features) > one(features) + 1e-3).all()  # three distinct draws: the mean lies above the nearest
    exclude = torch.zeros(64, dtype=torch.bool)
    exclude[:32] = True
    kept = torch.cdist(flatten_patches(patch_features(features)), three.bank[32:]).sort(dim=1).values[:, :3].mean(dim=1)
    assert torch.allclose(three(features, exclude).flatten(), kept, atol=1e-5)


def test_a_new_bank_can_be_searched_by_neighbours(detector, category):
    drawn = with_new_bank(detector, category, seed=0, neighbours=2)
    assert isinstance(drawn.model.memory, NeighbourMemory) and drawn.model.memory.neighbours == 2
    assert drawn.predict(torch.rand(64, 64, 3).numpy()).anomaly_map.shape == (64, 64)


def test_a_whitened_bank_is_drawn_as_training_draws_one(detector, category):
    """`with_new_bank(..., whiten=)` went through training's fit_memory, which now passes a Cancel on: its memory must take it."""
    drawn = with_new_bank(detector, category, seed=0, whiten=0.5)
    assert isinstance(drawn.model.memory, WhitenedMemory) and math.isfinite(drawn.threshold)
