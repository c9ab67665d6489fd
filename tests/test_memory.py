"""Tests for rbd.memory: patch features, the greedy coreset and nearest-neighbour distances."""

import torch

from rbd.memory import PatchMemory, flatten_patches, greedy_coreset, patch_features


def _covering_radius(points, chosen):
    return float(torch.cdist(points, points[chosen]).amin(dim=1).max())


def test_coreset_covers_the_points_better_than_a_random_choice():
    g = torch.Generator().manual_seed(0)
    # many points in one tight cluster, a few far-away outliers: a random pick misses the outliers
    points = torch.cat([torch.randn(2000, 16, generator=g) * 0.1, torch.randn(20, 16, generator=g) * 5 + 20])
    chosen = greedy_coreset(points, 40, torch.Generator().manual_seed(1))
    assert len(set(chosen.tolist())) == 40
    random = torch.randperm(points.shape[0], generator=g)[:40]
    assert _covering_radius(points, chosen) < 0.5 * _covering_radius(points, random)
    assert (chosen >= 2000).sum() >= 10  # the outliers are kept


def test_coreset_of_fewer_points_than_asked_keeps_them_all():
    points = torch.randn(7, 4)
    assert sorted(greedy_coreset(points, 10, torch.Generator()).tolist()) == list(range(7))


def test_distances_are_those_to_the_nearest_bank_entry():
    g = torch.Generator().manual_seed(2)
    memory = PatchMemory(dim=6, size=30)
    candidates = torch.randn(500, 6, generator=g)
    kept = memory.fit(candidates, g)
    torch.testing.assert_close(memory.bank, candidates[kept])
    patches = torch.randn(2, 6, 3, 5, generator=g)
    expected = torch.cdist(flatten_patches(patches), memory.bank).amin(dim=1).view(2, 1, 3, 5)
    torch.testing.assert_close(memory(patches), expected, atol=1e-4, rtol=1e-4)


def test_a_search_in_blocks_gives_the_distances_of_one_pass(monkeypatch):
    """More patches than one block of the search holds: split, the distances are the same."""
    import rbd.memory

    g = torch.Generator().manual_seed(4)
    memory = PatchMemory(dim=6, size=30)
    memory.fit(torch.randn(500, 6, generator=g), g)
    patches = torch.randn(3, 6, 7, 9, generator=g)
    expected = torch.cdist(flatten_patches(patches), memory.bank).amin(dim=1).view(3, 1, 7, 9)
    monkeypatch.setattr(rbd.memory, "SEARCH_BLOCK", 30 * 16)  # blocks of 16 of the 189 patches
    torch.testing.assert_close(memory(patches), expected, atol=1e-4, rtol=1e-4)


def test_a_patch_in_the_bank_has_distance_zero_unless_excluded():
    g = torch.Generator().manual_seed(3)
    memory = PatchMemory(dim=4, size=8)
    memory.fit(torch.randn(8, 4, generator=g), g)
    patch = memory.bank[3].view(1, 4, 1, 1)
    assert float(memory(patch)) < 1e-3
    exclude = torch.zeros(8, dtype=torch.bool)
    exclude[3] = True
    assert float(memory(patch, exclude)) > 0.1


def test_fewer_candidates_than_slots_fill_the_bank_with_repeats():
    memory = PatchMemory(dim=3, size=10)
    candidates = torch.eye(3)
    memory.fit(candidates, torch.Generator())
    assert {tuple(row.tolist()) for row in memory.bank} == {tuple(row.tolist()) for row in candidates}


def test_patch_features_join_the_last_two_scales_at_the_finer_grid():
    features = [torch.randn(1, 2, 16, 16), torch.randn(1, 3, 8, 8), torch.randn(1, 5, 4, 4)]
    patches = patch_features(features)
    assert patches.shape == (1, 8, 8, 8)
    # 3x3 averaging: an interior patch of the finer scale is the mean of its neighbourhood
    torch.testing.assert_close(patches[0, :3, 4, 4], features[1][0, :, 3:6, 3:6].mean(dim=(1, 2)))
