"""Tests for rbd.memory: patch features, the greedy coreset and nearest-neighbour distances."""

import torch

from rbd.memory import PatchMemory, _nearest, flatten_patches, greedy_coreset, patch_features, pooled_scales


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


def test_a_coreset_out_of_time_keeps_the_points_chosen_by_then_the_farthest_first():
    """Choosing 2048 of 50,000 patches took 4-15 s: a short budget stops it, keeping those that cover best."""
    from rbd.memory import STOP_CHECK_EVERY

    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(2000, 16, generator=g) * 0.1, torch.randn(20, 16, generator=g) * 5 + 20])
    asked = []
    chosen = greedy_coreset(points, 3 * STOP_CHECK_EVERY, torch.Generator().manual_seed(1), time_up=lambda: asked.append(1) or True)
    assert len(chosen) == STOP_CHECK_EVERY == len(set(chosen.tolist())) and len(asked) == 1
    assert (chosen >= 2000).sum() == 20  # the outliers first
    memory = PatchMemory(16, 3 * STOP_CHECK_EVERY)
    kept = memory.fit(points, torch.Generator().manual_seed(1), time_up=lambda: True)
    assert kept.numel() == memory.size and kept.unique().numel() == STOP_CHECK_EVERY  # the bank filled by repeats


def test_coreset_of_fewer_points_than_asked_keeps_them_all():
    points = torch.randn(7, 4)
    assert sorted(greedy_coreset(points, 10, torch.Generator()).tolist()) == list(range(7))


def _teacher_features(batch, fine_dim, coarse_dim, coarse_h, coarse_w, generator):
    """Teacher-like features, finest first: the memory reads the last two (strides 8 and 16)."""
    return [torch.randn(batch, 2, 4 * coarse_h, 4 * coarse_w, generator=generator),
            torch.randn(batch, fine_dim, 2 * coarse_h, 2 * coarse_w, generator=generator),
            torch.randn(batch, coarse_dim, coarse_h, coarse_w, generator=generator)]


def _nearest_by_cdist(memory, features):
    patches = patch_features(features)
    b, _, h, w = patches.shape
    return torch.cdist(flatten_patches(patches).double(), memory.bank.double()).amin(dim=1).view(b, 1, h, w).float()


def test_distances_are_those_to_the_nearest_bank_entry():
    g = torch.Generator().manual_seed(2)
    memory = PatchMemory(dim=6, size=30)
    candidates = torch.randn(500, 6, generator=g)
    kept = memory.fit(candidates, g)
    torch.testing.assert_close(memory.bank, candidates[kept])
    features = _teacher_features(2, 2, 4, 3, 5, g)
    torch.testing.assert_close(memory(features), _nearest_by_cdist(memory, features), atol=1e-4, rtol=1e-4)


def test_the_search_takes_the_coarser_grid_at_its_own_resolution():
    """Images searched one by one or (exporting) as one batch, and grids of any two sizes (an input whose
    sides are not multiples of the strides): the distances of the whole patches, edges included."""
    g = torch.Generator().manual_seed(4)
    memory = PatchMemory(dim=9, size=30)
    memory.fit(torch.randn(500, 9, generator=g) * 0.3, g)
    features = _teacher_features(3, 4, 5, 7, 5, g)  # 14 x 10 patches an image
    expected = _nearest_by_cdist(memory, features)
    torch.testing.assert_close(memory(features), expected, atol=1e-4, rtol=1e-4)
    finer, coarser = pooled_scales(features)
    batch = _nearest(finer, coarser, memory.bank[:, :4], memory.bank[:, 4:], (memory.bank ** 2).sum(dim=1))
    torch.testing.assert_close((batch + (patch_features(features) ** 2).sum(dim=1)).sqrt(), expected[:, 0], atol=1e-4, rtol=1e-4)
    odd = [features[0], features[1][:, :, :13, :9], features[2]]  # finer 13 x 9, coarser 7 x 5
    torch.testing.assert_close(memory(odd), _nearest_by_cdist(memory, odd), atol=1e-4, rtol=1e-4)


def test_a_patch_in_the_bank_has_distance_zero_unless_excluded():
    g = torch.Generator().manual_seed(3)
    features = _teacher_features(1, 2, 3, 2, 2, g)
    memory = PatchMemory(dim=5, size=16)  # every one of the 4 x 4 patches
    memory.fit(flatten_patches(patch_features(features)), g)
    assert float(memory(features).max()) < 1e-3
    exclude = torch.zeros(16, dtype=torch.bool)
    exclude[memory.bank.sub(flatten_patches(patch_features(features))[5]).abs().sum(dim=1).argmin()] = True
    distances = memory(features, exclude).flatten()
    others = torch.cdist(flatten_patches(patch_features(features))[5:6], memory.bank[~exclude]).min()
    assert float(others) > 0.01 and abs(float(distances[5] - others)) < 1e-4  # now it is the nearest other patch's
    assert float(distances[torch.arange(16) != 5].max()) < 1e-3


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


def test_the_greedy_selection_stops_once_every_point_is_covered():
    """Copies of one image give each patch several times: once each distinct one is chosen the rest
    lie at distance 0, and choosing more would only repeat them (all from the first copy)."""
    distinct = torch.randn(10, 16)
    chosen = greedy_coreset(distinct.repeat(4, 1), 30, torch.Generator().manual_seed(0))
    assert len(chosen) == 10 and sorted((chosen % 10).tolist()) == list(range(10))
