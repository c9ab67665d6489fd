"""bench/same_pixels.py: the files a reader of another revision reads otherwise than this checkout's."""

import types

import numpy as np
import pytest
from PIL import Image

import rbd.images
from bench.same_pixels import differing


def test_it_names_the_files_read_otherwise_and_refuses_other_files_found(tmp_path):
    for name in ("a.png", "sub/b.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((4, 5), 100, np.uint8)).save(tmp_path / name)
    assert differing(tmp_path, rbd.images) == (2, [])

    def brighter(path):  # a reader that reads b.png otherwise
        image, notice = rbd.images.read_image_for_scoring(path)
        return (image + 0.1 if path.name == "b.png" else image), notice

    other = types.SimpleNamespace(find_images=rbd.images.find_images, read_image_for_scoring=brighter)
    assert differing(tmp_path, other) == (2, ["sub/b.png"])
    fewer = types.SimpleNamespace(find_images=lambda root: rbd.images.find_images(root)[:1], read_image_for_scoring=brighter)
    with pytest.raises(SystemExit, match="find other files"):
        differing(tmp_path, fewer)
