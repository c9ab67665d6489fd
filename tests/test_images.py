"""Tests for rbd.images: every kind of input becomes a float32 (H, W, 3) array in [0, 1]."""

import errno
import io
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from rbd.errors import ImageReadError, NoImagesError
from rbd.images import (file_shape, find_images, given_image, read_image, read_image_folder, read_image_for_scoring, read_images, to_rgb_array,
                        upright_size)

RNG = np.random.default_rng(0)


def assert_rgb(array, height, width):
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.float32
    assert array.shape == (height, width, 3)
    assert array.min() >= 0.0 and array.max() <= 1.0


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


# --- PIL modes and files -------------------------------------------------------------------------


def test_grey_image_is_replicated_to_three_equal_channels(tmp_path):
    grey = RNG.integers(0, 256, (12, 20), dtype=np.uint8)
    path = save(Image.fromarray(grey, mode="L"), tmp_path / "grey.png")
    array = read_image(path)
    assert_rgb(array, 12, 20)
    for c in range(3):
        np.testing.assert_allclose(array[..., c], grey / 255.0, atol=1e-6)


def test_rgb_png_is_read_losslessly(tmp_path):
    rgb = RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    array = read_image(save(Image.fromarray(rgb), tmp_path / "rgb.png"))
    assert_rgb(array, 10, 14)
    np.testing.assert_allclose(array, rgb / 255.0, atol=1e-6)


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgba = RNG.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: colour must still be the stored RGB, not black/white
    array = read_image(save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png"))
    assert_rgb(array, 8, 9)
    np.testing.assert_allclose(array, rgba[..., :3] / 255.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_keep_their_colour_when_the_image_is_shrunk(tmp_path, mode):
    """Shrunk with its alpha, Pillow premultiplies it: a cut-out part's background came out black on a photo past
    MAX_SIDE and in the review's picture, where the file at its own size was scored in its own colour."""
    rgba = np.full((40, 60, 4), 255, np.uint8)
    rgba[:20, :, 3] = 0  # the top half transparent, white kept under it
    path = save(Image.fromarray(rgba, mode="RGBA").convert(mode), tmp_path / f"{mode}.png")
    for array in (read_image(path), read_image(path, size=(20, 30)), read_image(path, max_side=30)):
        np.testing.assert_allclose(array, 1.0, atol=1e-6)


def test_a_damaged_exif_block_only_loses_the_turn(tmp_path):
    """Pillow reads such a block as a JPEG opens, but refuses it in a converted or resized copy: a caller's resized
    image, and the file shown at another size (the review's mask editor), failed."""
    pixels = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    path = save(Image.fromarray(pixels), tmp_path / "damaged.jpg", exif=b"Exif\x00\x00garbage-garbage", quality=95)
    whole = read_image(path)
    assert_rgb(whole, 24, 40)
    assert_rgb(read_image(path, size=(12, 20)), 12, 20)
    with Image.open(path) as image:
        np.testing.assert_allclose(to_rgb_array(image.convert("RGB")), whole)
        assert_rgb(to_rgb_array(image.resize((20, 12))), 12, 20)


def test_palette_image_is_expanded_to_its_colours(tmp_path):
    palette_image = Image.new("P", (6, 4))
    palette = [0, 0, 0, 255, 0, 0, 0, 128, 255] + [0] * (256 * 3 - 9)
    palette_image.putpalette(palette)
    indices = np.array([[0, 1, 2, 1, 0, 2]] * 4, dtype=np.uint8)
    palette_image.putdata(indices.ravel().tolist())
    array = read_image(save(palette_image, tmp_path / "palette.png"))
    assert_rgb(array, 4, 6)
    colours = np.array(palette[:9], dtype=np.float32).reshape(3, 3) / 255.0
    np.testing.assert_allclose(array, colours[indices], atol=1e-6)


def test_16bit_grey_png_keeps_full_range(tmp_path):
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    path = save(image, tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # really stored as 16-bit
    array = read_image(path)
    assert_rgb(array, 2, 2)
    assert array[1, 0, 0] == pytest.approx(1.0)
    assert array[0, 1, 0] == pytest.approx(0.5, abs=1e-4)
    assert array[1, 1, 0] == pytest.approx(1000 / 65535, abs=1e-6)
    assert array[0, 0, 0] == 0.0
    # 1000/65535 would be lost entirely by an 8-bit conversion (1000 >> 8 == 3 -> 3/255 != value)
    assert array[1, 1, 0] != pytest.approx(3 / 255, abs=1e-4)


def test_16bit_grey_png_with_max_side_is_downscaled(tmp_path):
    """A large 16-bit inspection image must shrink like any other, not be called corrupt."""
    ramp = np.tile(np.linspace(0, 65535, 200).astype(np.uint16), (100, 1))  # 200 wide, 100 high
    path = save(Image.fromarray(ramp), tmp_path / "deep_large.png")
    array = read_image(path, max_side=50)
    assert_rgb(array, 25, 50)
    assert array[:, 0, 0].mean() < 0.05 and array[:, -1, 0].mean() > 0.95  # ramp survives, full range


# 16-bit colour: Pillow has no such mode and keeps only the high byte, so these files are decoded at full depth.
# The low bytes below differ while the high bytes are equal: an 8-bit reading could not tell them apart.
DEEP = np.array([[[0x1200, 0x1280, 0x12FF], [65535, 0, 1]], [[0x8001, 0x8002, 0x8003], [1000, 2000, 3000]]], np.uint16)


def _deep_png(array, path):
    import imagecodecs

    path.write_bytes(imagecodecs.png_encode(array))
    assert Image.open(path).mode in ("RGB", "RGBA")  # what Pillow makes of it: 8 bits a channel
    return path


@pytest.mark.parametrize("write", [
    lambda a, path: _deep_png(a, path.with_suffix(".png")),
    lambda a, path: _deep_png(np.dstack([a, np.zeros_like(a[..., :1])]), path.with_suffix(".png")),  # alpha 0 is dropped
    lambda a, path: _tiff(a, path, photometric="rgb"),
    lambda a, path: _tiff(a, path, photometric="rgb", compression="zlib"),
    lambda a, path: _tiff(np.moveaxis(a, 2, 0), path, photometric="rgb", planarconfig="separate"),  # one plane per channel
], ids=["png", "png-rgba", "tiff", "tiff-zlib", "tiff-planar"])
def test_16bit_colour_is_read_at_full_depth(tmp_path, write):
    array = read_image(write(DEEP, tmp_path / "deep.tif"))
    assert_rgb(array, 2, 2)
    np.testing.assert_allclose(array, DEEP / 65535.0, atol=1e-7)
    assert len(np.unique(array[0, 0])) == 3  # 0x1200, 0x1280, 0x12FF: one value at 8 bits


def test_an_opened_16bit_colour_file_is_read_at_full_depth_too(tmp_path):
    """Pillow opens it 8 bits a channel: a caller's PIL image scored 10 levels of 12-bit camera data where its path gave 150."""
    for path in (_deep_png(DEEP, tmp_path / "deep.png"), _tiff(DEEP, tmp_path / "deep.tif", photometric="rgb")):
        with Image.open(path) as image:
            np.testing.assert_array_equal(to_rgb_array(image), read_image(path))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
@pytest.mark.parametrize("orientation", [1, 3])
def test_a_tiff_whose_0_is_white_is_read_as_its_picture(tmp_path, dtype, orientation):
    """X-ray detectors write 16-bit and float grey with 0 as white: Pillow reads their samples as stored, and tifffile
    (which reads turned TIFFs) every depth so; the picture came out a negative."""
    picture = np.tile(np.linspace(0, 1, 16), (6, 1))  # dark left, bright right, as shown
    top = 1 if dtype in (np.float32, bool) else np.iinfo(dtype).max
    stored = picture < 0.5 if dtype is bool else ((1 - picture) * top).astype(dtype) if dtype is np.float32 else \
        ((1 - picture) * top).round().astype(dtype)
    tifffile.imwrite(tmp_path / "xray.tif", stored, photometric="miniswhite", extratags=[(274, "H", 1, orientation, True)])
    expected = (picture >= 0.5) if dtype is bool else picture
    turned = expected[::-1, ::-1] if orientation == 3 else expected
    array = read_image(tmp_path / "xray.tif")
    np.testing.assert_allclose(array[..., 0], turned, atol=1 / 255)
    with Image.open(tmp_path / "xray.tif") as image:  # a caller's opened file reads as its path does
        np.testing.assert_array_equal(to_rgb_array(image), array)


@pytest.mark.parametrize("photometric", ["palette", "separated"])
def test_a_turned_palette_or_cmyk_tiff_is_read_as_its_colours(tmp_path, photometric):
    """tifffile reads a turned TIFF (Pillow scrambles it): a palette's indices came out grey, CMYK's inks as RGB."""
    rgb = RNG.integers(0, 4, (6, 8)).astype(np.uint8)  # four colours
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [255, 255, 255]], np.uint8)
    if photometric == "palette":
        colormap = np.zeros((3, 256), np.uint16)
        colormap[:, :4] = colours.T.astype(np.uint16) * 257
        stored, kwargs = rgb, {"colormap": colormap}
    else:
        stored, kwargs = np.dstack([255 - colours[rgb], np.zeros((6, 8), np.uint8)]), {}  # no black ink
    for orientation in (1, 3):
        path = tmp_path / f"{orientation}.tif"
        tifffile.imwrite(path, stored, photometric=photometric, extratags=[(274, "H", 1, orientation, True)], **kwargs)
        expected = colours[rgb] / 255.0
        np.testing.assert_allclose(read_image(path), expected[::-1, ::-1] if orientation == 3 else expected, atol=1e-6)


def test_a_tiff_tag_out_of_range_is_read_as_absent_without_a_log_line(tmp_path, caplog):
    """tifffile logged "<tifffile.TiffTag 274> raised ValueError('9 is not a valid ORIENTATION')" on each read."""
    tifffile.imwrite(tmp_path / "o9.tif", np.zeros((5, 6), np.uint16), extratags=[(274, "H", 1, 9, True)])
    assert_rgb(read_image(tmp_path / "o9.tif"), 5, 6)
    assert upright_size(tmp_path / "o9.tif") == (6, 5)
    assert not caplog.records, caplog.records


def test_a_callers_changed_16bit_image_is_read_as_changed_not_from_its_file(tmp_path):
    """Read from its file where Pillow would cut it to 8 bits or show its negative, an image the caller thumbnailed or
    drew on (it keeps its file's name) came back as the file was."""
    from PIL import ImageDraw

    path = _tiff(DEEP, tmp_path / "deep.tif", photometric="rgb")
    with Image.open(path) as image:
        image.thumbnail((1, 1))
        assert_rgb(to_rgb_array(image), 1, 1)
    tifffile.imwrite(tmp_path / "xray.tif", np.full((6, 8), 60000, np.uint16), photometric="miniswhite")  # dark
    with Image.open(tmp_path / "xray.tif") as image:
        image.load()
        ImageDraw.Draw(image).rectangle((0, 0, 1, 1), fill=0)  # 0: white in such a file
        array = to_rgb_array(image)
    assert array[0, 0, 0] == 1.0 and array[5, 7, 0] == pytest.approx(1 - 60000 / 65535)


def _png(array, path):
    import imagecodecs

    path.write_bytes(imagecodecs.png_encode(array))
    return path


def _tiff(array, path, **kwargs):
    import tifffile

    tifffile.imwrite(path, array, **kwargs)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["grey8", "rgb8", "grey16", "rgb16"])
def test_a_turned_tiff_reads_as_the_same_pixels_turned_in_a_png(tmp_path, orientation, kind):
    """The TIFF orientation tag turns the image as EXIF turns a PNG (Pillow's exif_transpose), and the
    header's size is the turned one: Pillow 12 turns a TIFF's size already and scrambles grey ones."""
    pixels = RNG.integers(0, 256, (5, 7, 3) if kind.startswith("rgb") else (5, 7), dtype=np.uint8)
    deep = pixels.astype(np.uint16) * 257 if kind.endswith("16") else pixels
    tiff = _tiff(deep, tmp_path / "turned.tif", photometric="rgb" if kind.startswith("rgb") else "minisblack",
                 extratags=[(0x0112, "H", 1, orientation, False)])
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    expected = read_image(tmp_path / "turned.png")
    assert expected.shape[:2] == ((5, 7) if orientation < 5 else (7, 5))
    np.testing.assert_allclose(read_image(tiff), expected, atol=1e-6)
    assert file_shape(tiff) == expected.shape[:2]
    with Image.open(tiff) as opened:  # handed over opened (`predict(Image.open(path))`): the same pixels, not Pillow's scramble
        np.testing.assert_allclose(given_image(opened), expected, atol=1e-6)


@pytest.mark.parametrize("orientation", [1, 6])
def test_float_colour_tiff_which_pillow_cannot_open_is_read(tmp_path, orientation):
    pixels = RNG.random((5, 7, 3)).astype(np.float32)
    path = _tiff(pixels, tmp_path / "float.tif", photometric="rgb", extratags=[(0x0112, "H", 1, orientation, False)])
    with pytest.raises(OSError):
        Image.open(path)
    upright = pixels if orientation == 1 else np.rot90(pixels, -1)
    np.testing.assert_allclose(read_image(path), upright, atol=1e-7)
    assert upright_size(path) == upright.shape[1::-1]
    assert read_image_for_scoring(path, max_side=3)[0].shape == ((3, 2, 3) if orientation == 6 else (2, 3, 3))
    path.write_bytes(b"II*\x00" + b"\xff" * 40)  # a TIFF's signature, then nothing readable
    with pytest.raises(ImageReadError, match="float.tif: corrupt or"):
        read_image(path)


def test_16bit_colour_with_max_side_is_downscaled(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 200).astype(np.uint16)[None, :, None], (100, 1, 3))  # 200 wide, 100 high
    array = read_image(_deep_png(ramp, tmp_path / "wide.png"), max_side=50)
    assert_rgb(array, 25, 50)
    assert array[:, 0].mean() < 0.05 and array[:, -1].mean() > 0.95 and np.allclose(array[..., 0], array[..., 2])


def test_truncated_16bit_colour_png_is_an_image_read_error(tmp_path):
    path = _deep_png(DEEP, tmp_path / "deep.png")
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="deep.png: corrupt or truncated"):
        read_image(path)


def test_grey_with_alpha_drops_alpha(tmp_path):
    la = np.stack([np.full((3, 4), 200, np.uint8), np.zeros((3, 4), np.uint8)], axis=2)
    array = read_image(save(Image.fromarray(la, mode="LA"), tmp_path / "la.png"))
    np.testing.assert_allclose(array, np.full((3, 4, 3), 200 / 255.0), atol=1e-6)
    opaque = Image.fromarray(np.dstack([la[..., 0], np.full((3, 4), 255, np.uint8)]), mode="LA")
    np.testing.assert_allclose(to_rgb_array(opaque.convert("La")), np.full((3, 4, 3), 200 / 255.0), atol=1e-6)  # Pillow has no La -> L


@pytest.mark.parametrize("write", [
    lambda a, path: _png(a, path.with_suffix(".png")),
    lambda a, path: _tiff(a, path, photometric="minisblack", extrasamples=["unassalpha"]),
], ids=["png", "tiff"])
def test_16bit_grey_with_alpha_drops_alpha_at_full_depth(tmp_path, write):
    grey = RNG.integers(0, 65536, (3, 4), dtype=np.uint16)
    array = read_image(write(np.dstack([grey, np.zeros_like(grey)]), tmp_path / "la16.tif"))
    np.testing.assert_allclose(array, np.repeat(grey[..., None] / 65535.0, 3, axis=2), atol=1e-7)


@pytest.mark.parametrize("write", [
    lambda a, path: save(Image.fromarray(a, mode="F"), path),  # Pillow's mode "F"
    lambda a, path: _tiff(np.dstack([a] * 3), path, photometric="rgb"),  # float colour, which tifffile reads
    lambda a, path: Image.fromarray(a, mode="F"),  # a caller's PIL image
], ids=["grey-tiff", "colour-tiff", "pil"])
def test_a_float_file_reaching_below_black_is_refused_as_a_callers_array_is(tmp_path, write):
    """A height map or a picture normalised for a network (-3 to 2) was clipped to a dark picture, while the same
    array handed in was refused; a resampling's undershoot is still clipped."""
    heights = np.array([[-3.0, -2.9, 0.5, 2.0]], np.float32)
    with pytest.raises(ImageReadError, match=r"floats must hold values from 0 \(black\) up, its lowest is -3: .* a height map"):
        given_image(write(heights, tmp_path / "height.tif"))
    undershoot = np.array([[-0.05, 0.25, 1.0]], np.float32)
    np.testing.assert_allclose(given_image(write(undershoot, tmp_path / "under.tif"))[0, :, 0], [0.0, 0.25, 1.0])


def test_32_bit_integer_samples_are_read_by_their_values_and_16_bit_files_by_their_depth(tmp_path):
    """A 32-bit TIFF's depth says nothing of its range: read as 16-bit, one of 8-bit values (Pillow's `Image.fromarray`
    of int32 values, saved) came out nearly black. A 16-bit file stays 16-bit, however dark, also shrunk."""
    eight = np.array([[0, 128, 255]], np.int32)
    save(Image.fromarray(eight), tmp_path / "pillow.tif")
    _tiff(eight.astype(np.uint32), tmp_path / "tifffile.tif")
    _tiff(np.dstack([eight] * 3).astype(np.uint32), tmp_path / "colour.tif", photometric="rgb")  # which tifffile reads
    opened = [given_image(Image.open(tmp_path / "pillow.tif")), given_image(Image.open(tmp_path / "pillow.tif").copy())]  # no file
    for image in [read_image(tmp_path / name) for name in ("pillow.tif", "tifffile.tif", "colour.tif")] + opened:
        np.testing.assert_allclose(image[0, :, 0], [0.0, 128 / 255, 1.0], atol=1e-6)
    np.testing.assert_allclose(read_image(_tiff(np.array([[0, 300, 65535]], np.int32), tmp_path / "deep.tif"))[0, :, 0],
                               [0.0, 300 / 65535, 1.0], atol=1e-7)
    with pytest.raises(ImageReadError, match=r"wide.tif: an image of integers must hold values from 0 to 255 .8-bit. or 65535"):
        read_image(_tiff(np.array([[0, 70000]], np.int32), tmp_path / "wide.tif"))
    dark = np.full((4, 8), 200, np.uint16)
    for sixteen in (_png(dark, tmp_path / "dark.png"), _tiff(dark.astype(np.int16), tmp_path / "signed.tif")):  # Pillow: "I;16", "I"
        np.testing.assert_allclose(read_image(sixteen), 200 / 65535, atol=1e-7)
        np.testing.assert_allclose(read_image(sixteen, max_side=4), 200 / 65535, atol=1e-7)
        np.testing.assert_allclose(read_image(sixteen, size=(2, 4)), 200 / 65535, atol=1e-7)


def _png16_keyed(samples, key, path):
    """A 16-bit grey or RGB PNG with transparent colour `key` (a tRNS chunk, which no writer at hand makes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = samples.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 16, 0 if samples.ndim == 2 else 2, 0, 0, 0)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", struct.pack(f">{np.size(key)}H", *np.ravel(key)))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("samples, key", [
    (np.array([[0, 40000, 40001, 65535]], np.uint16), 40000),  # Pillow matched no pixel
    (np.array([[255, 1000, 65535, 0]], np.uint16), 255),  # Pillow matched every pixel of 255 and brighter
    (np.array([[[1000, 2000, 3000], [1000, 2000, 3001], [3, 7, 11], [768, 1792, 2816]]], np.uint16), (1000, 2000, 3000)),
], ids=["grey-40000", "grey-255", "rgb"])
def test_a_16_bit_pngs_transparent_colour_is_matched_at_full_depth(tmp_path, samples, key):
    """Pillow compares a 16-bit PNG's transparent colour with the 8 bits it keeps of each pixel: a mask's hidden
    pixels were shown and shown ones hidden (`read_truth_mask`)."""
    from rbd.images import alpha_channel

    path = _png16_keyed(samples, key, tmp_path / "keyed.png")
    alpha, keyed = alpha_channel(path)
    np.testing.assert_array_equal(alpha, [[255 * (not np.all(pixel == key)) for pixel in samples[0]]])
    assert keyed
    np.testing.assert_allclose(read_image(path), np.broadcast_to((samples / 65535.0)[..., None] if samples.ndim == 2 else samples / 65535.0,
                                                                 (1, 4, 3)), atol=1e-7)


def test_a_gif_is_an_image_and_an_animated_one_is_scored_by_its_first_frame_with_a_notice(tmp_path):
    grey = np.array([[0, 128, 255]], np.uint8)
    save(Image.fromarray(grey), tmp_path / "one.gif")
    frames = [Image.fromarray(np.full((2, 3), value, np.uint8)) for value in (10, 200)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    assert find_images(tmp_path) == [tmp_path / "animated.gif", tmp_path / "one.gif"]
    image, notice = read_image_for_scoring(tmp_path / "one.gif")
    np.testing.assert_allclose(image[0, :, 0], grey[0] / 255.0, atol=1e-6)
    assert notice is None
    image, notice = read_image_for_scoring(tmp_path / "animated.gif", max_side=2)
    np.testing.assert_allclose(image, 10 / 255.0, atol=1e-6)
    assert notice == "animated.gif is 3x2: downscaled to 2x1; animated.gif is animated: its first frame is scored"
    (tmp_path / "cut.gif").write_bytes((tmp_path / "animated.gif").read_bytes()[:40])
    with pytest.raises(ImageReadError, match=r"cut.gif: corrupt or truncated image"):
        read_image(tmp_path / "cut.gif")


@pytest.mark.parametrize("pixels, photometric", [(np.array([[0.5, np.nan]], np.float32), "minisblack"),
                                                 (np.full((2, 2, 3), np.nan, np.float32), "rgb")],  # which Pillow cannot open
                         ids=["grey", "colour"])
def test_a_file_decoded_into_no_usable_image_is_named_in_its_error(tmp_path, pixels, photometric):
    path = _tiff(pixels, tmp_path / "nan.tif", photometric=photometric)
    with pytest.raises(ImageReadError, match=r"nan\.tif: image contains NaN"):
        read_image(path)


def test_exif_orientation_is_applied(tmp_path):
    # Stored landscape 40x24 (w x h), left half black, right half white.
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = save(image, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    array = read_image(path)
    assert_rgb(array, 40, 24)  # height and width swapped
    # Rotating 90 deg clockwise moves the stored right (white) half to the bottom.
    assert array[:15].mean() < 0.1
    assert array[-15:].mean() > 0.9


def test_exif_orientation_8_rotates_the_other_way(tmp_path):
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    array = read_image(save(Image.fromarray(pixels), tmp_path / "r8.jpg", exif=exif.tobytes(), quality=95))
    assert_rgb(array, 40, 24)
    assert array[:15].mean() > 0.9  # right half goes to the top
    assert array[-15:].mean() < 0.1


def test_an_opened_pil_image_is_rotated_by_its_exif_too(tmp_path):
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(save(Image.fromarray(pixels), tmp_path / "r6.jpg", exif=exif.tobytes(), quality=95)) as image:
        array = to_rgb_array(image)
    assert_rgb(array, 40, 24)
    np.testing.assert_allclose(array, read_image(tmp_path / "r6.jpg"))


def test_upright_size_reads_the_exif_orientation_from_the_header(tmp_path):
    from rbd.images import upright_size

    exif = Image.Exif()
    exif[0x0112] = 6
    turned = save(Image.new("RGB", (40, 24)), tmp_path / "r6.jpg", exif=exif.tobytes())
    plain = save(Image.new("RGB", (40, 24)), tmp_path / "plain.jpg")
    assert upright_size(turned) == (24, 40) == read_image(turned).shape[1::-1]
    assert upright_size(plain) == (40, 24)
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ImageReadError, match="junk.png"):
        upright_size(tmp_path / "junk.png")


def test_one_pixel_image(tmp_path):
    path = save(Image.new("RGB", (1, 1), (255, 0, 51)), tmp_path / "dot.png")
    array = read_image(path)
    assert_rgb(array, 1, 1)
    np.testing.assert_allclose(array[0, 0], [1.0, 0.0, 0.2], atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_max_side_downscales_keeping_aspect(tmp_path, suffix):
    path = save(Image.new("RGB", (400, 100), (10, 200, 30)), tmp_path / f"wide{suffix}")
    array = read_image(path, max_side=80)
    assert array.dtype == np.float32 and array.ndim == 3 and array.shape[2] == 3
    height, width = array.shape[:2]
    assert max(height, width) == 80
    assert width / height == pytest.approx(4.0, rel=0.05)
    np.testing.assert_allclose(array.mean(axis=(0, 1)), np.array([10, 200, 30]) / 255.0, atol=0.03)


def test_max_side_leaves_small_images_alone(tmp_path):
    path = save(Image.new("RGB", (30, 20)), tmp_path / "small.png")
    assert read_image(path, max_side=80).shape == (20, 30, 3)



@pytest.mark.parametrize("orientation", [1, 6])
def test_size_decodes_a_jpeg_at_a_reduced_scale_that_covers_it(tmp_path, orientation, monkeypatch):
    from PIL import JpegImagePlugin

    pixels = np.zeros((400, 640, 3), dtype=np.uint8)  # stored 640 wide, 400 high; right half white
    pixels[:, 320:] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(pixels), tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    drafted = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    size = (100, 150) if orientation == 1 else (150, 100)  # (height, width) of the upright picture
    array = read_image(path, size=size)
    assert_rgb(array, *size)
    assert drafted == [(160, 100)]  # a quarter of the stored sides: the smallest scale still covering 150 x 100
    full = read_image(path)
    expected = np.asarray(Image.fromarray((full * 255).round().astype(np.uint8)).resize(size[::-1], Image.Resampling.BILINEAR))
    assert np.abs(array * 255 - expected).mean() < 3  # the same picture as a full decode, resized


def test_size_resizes_16bit_grey_and_colour_at_full_depth(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 200).astype(np.uint16)[None, :], (100, 1))  # 200 wide, 100 high
    grey = save(Image.fromarray(ramp), tmp_path / "grey16.png")
    colour = _deep_png(np.dstack([ramp] * 3), tmp_path / "colour16.png")
    for path in (grey, colour):
        array = read_image(path, size=(30, 40))
        assert_rgb(array, 30, 40)
        assert array[:, 0].mean() < 0.05 and array[:, -1].mean() > 0.95
        assert len(np.unique(array[0])) == 40  # a smooth ramp, not cut to 8 bits


def test_size_of_the_image_itself_is_the_plain_decode(tmp_path):
    path = save(Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)), tmp_path / "small.png")
    np.testing.assert_array_equal(read_image(path, size=(20, 30)), read_image(path))

# --- unreadable files --------------------------------------------------------------------------


def test_random_bytes_named_png(tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.png"):
        read_image(path)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path, fmt, suffix):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format=fmt)
    data = buffer.getvalue()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"cut{suffix}"):
        read_image(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(ImageReadError, match="notes.txt"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="absent.png"):
        read_image(tmp_path / "absent.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        read_image(path)


# --- arrays ----------------------------------------------------------------------------------


def test_uint8_grey_array():
    grey = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    array = to_rgb_array(grey)
    assert_rgb(array, 2, 2)
    np.testing.assert_allclose(array, np.repeat((grey / 255.0)[..., None], 3, axis=2), atol=1e-6)


def test_uint16_array_scaled_by_65535():
    values = np.array([[65535, 32768, 0]], dtype=np.uint16)
    array = to_rgb_array(values)
    assert_rgb(array, 1, 3)
    np.testing.assert_allclose(array[0, :, 0], [1.0, 32768 / 65535, 0.0], atol=1e-6)


@pytest.mark.parametrize("as_given", [lambda a: a.astype(np.int64), lambda a: a.astype(np.int16), lambda a: a.astype(np.uint32),
                                      lambda a: a.tolist(), lambda a: (a // 2).astype(np.int8) * 1])
def test_a_callers_integers_that_fit_8_bits_are_8_bit_data(as_given):
    """`np.array(picture, dtype=int)` or a list of lists was read by its type's range, as 16-bit: nearly black."""
    picture = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    picture[0, 0] = 255
    given = as_given(picture)
    np.testing.assert_array_equal(given_image(given), to_rgb_array(np.asarray(given).astype(np.uint8)))


def test_a_callers_integers_beyond_8_bits_are_16_bit_data_and_beyond_that_refused():
    deep = np.array([[0, 300, 65535]], dtype=np.int32)
    np.testing.assert_array_equal(given_image(deep), to_rgb_array(deep.astype(np.uint16)))
    for sixteen in (np.array([[0, 100]], np.uint16), np.array([[0, 100]], ">u2")):  # its type says, in either byte order
        np.testing.assert_array_equal(given_image(sixteen), to_rgb_array(np.array([[0, 100]], np.uint16)))
    for values in ([[-1, 10]], [[0, 70000]]):
        with pytest.raises(ImageReadError, match="must hold values from 0 to 255 .8-bit. or 65535 .16-bit., got"):
            given_image(np.array(values))
    with pytest.raises(ImageReadError, match="expected a path, an image array or a PIL image, got bytes"):
        given_image(b"part.png")


def test_an_open_file_is_refused_and_left_as_it_was(tmp_path):
    """A file object has a detach() too: taken for a tensor, it lost its stream to it (the caller's file was unusable
    after), and the error was an AttributeError."""
    import io

    path = tmp_path / "part.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with open(path, "rb") as opened:
        for given in (opened, io.BytesIO(path.read_bytes())):
            with pytest.raises(ImageReadError, match=r"got (BufferedReader|BytesIO) \(a file object: pass its path, or PIL.Image.open\(it\)\)"):
                given_image(given)
            assert given.read(4) == b"\x89PNG"  # still the caller's, readable


@pytest.mark.parametrize("values", [np.full((8, 8, 3), 0.5 + 0.5j), np.full((8, 8), "a"), np.full((8, 8), 0.5, dtype=object)])
def test_an_array_of_other_things_than_numbers_is_refused(values):
    """Complex values were scored without their imaginary part, with numpy's warning alone; text raised a bare ValueError."""
    with pytest.raises(ImageReadError, match=f"expected an image array of numbers .uint8, uint16 or floats from 0 to 1., got {values.dtype}"):
        given_image(values)


def test_a_callers_floats_normalised_for_a_network_are_refused_and_a_resamplings_undershoot_is_not():
    """Mean and spread taken out (-1.1 to 1.1): clipped to 0, the picture was judged as a dark one, defective, silently."""
    picture = RNG.random((8, 8, 3)).astype(np.float32)
    with pytest.raises(ImageReadError, match=r"floats must hold values from 0 \(black\) up, its lowest is -1.1: a picture normalised"):
        given_image(picture * 2.2 - 1.1)
    undershoot = picture * 1.1 - 0.05  # a bicubic resize's few hundredths below black stay, clipped
    np.testing.assert_array_equal(given_image(undershoot), to_rgb_array(undershoot))
    camera = picture * 255 - 0.27  # the same of a picture in 0-255 floats: a thousandth of its range
    np.testing.assert_array_equal(given_image(camera), to_rgb_array(camera))


def test_rgba_array_drops_alpha():
    rgba = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_allclose(to_rgb_array(rgba), rgba[..., :3] / 255.0, atol=1e-6)


def test_single_channel_array():
    grey = RNG.integers(0, 256, (3, 5, 1), dtype=np.uint8)
    array = to_rgb_array(grey)
    assert_rgb(array, 3, 5)
    np.testing.assert_allclose(array, np.repeat(grey / 255.0, 3, axis=2), atol=1e-6)


def test_float_array_in_unit_range_is_unchanged():
    values = RNG.random((4, 5, 3)).astype(np.float64)
    array = to_rgb_array(values)
    assert_rgb(array, 4, 5)
    np.testing.assert_allclose(array, values, atol=1e-6)


def test_float_arrays_scale_by_the_range_their_values_fit_never_by_their_own_maximum():
    """The same pixels as uint8 and as floats read alike, also for a dark image (its maximum scaled them up before), and a
    bright spot on a [0, 1] image no longer darkens the rest."""
    values = np.array([[0.0, 127.5, 255.0]], dtype=np.float32)
    np.testing.assert_allclose(to_rgb_array(values)[0, :, 0], [0.0, 0.5, 1.0], atol=1e-6)
    overshoot = np.array([[0.25, 0.5, 1.02]], dtype=np.float32)  # a resampling's overshoot: clipped
    np.testing.assert_allclose(to_rgb_array(overshoot)[0, :, 0], [0.25, 0.5, 1.0], atol=1e-6)
    twelve_bit = np.array([[0.0, 300.0, 4000.0]], dtype=np.float32)  # past the overshoot: its own maximum, never a step
    np.testing.assert_allclose(to_rgb_array(twelve_bit)[0, :, 0], [0.0, 0.075, 1.0], atol=1e-6)
    wider = np.array([[0.0, 1e5, 2e5]], dtype=np.float32)  # past 16 bits: its own maximum
    np.testing.assert_allclose(to_rgb_array(wider)[0, :, 0], [0.0, 0.5, 1.0], atol=1e-6)


def test_negative_floats_are_clipped():
    array = to_rgb_array(np.array([[-0.5, 0.25]], dtype=np.float32))
    np.testing.assert_allclose(array[0, :, 0], [0.0, 0.25])


def test_nan_array_is_rejected():
    with pytest.raises(ImageReadError):
        to_rgb_array(np.array([[0.1, np.nan]], dtype=np.float32))


def test_bool_array():
    mask = np.array([[True, False], [False, True]])
    array = to_rgb_array(mask)
    assert_rgb(array, 2, 2)
    np.testing.assert_array_equal(array[..., 0], mask.astype(np.float32))


def test_pil_image_input():
    image = Image.new("RGB", (3, 2), (0, 255, 0))
    np.testing.assert_allclose(to_rgb_array(image), np.broadcast_to([0.0, 1.0, 0.0], (2, 3, 3)))


def test_path_input_is_read(tmp_path):
    path = save(Image.new("L", (5, 4), 255), tmp_path / "white.png")
    np.testing.assert_allclose(to_rgb_array(str(path)), np.ones((4, 5, 3)))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5), (1, 2, 3, 3), (0, 4), (4, 0, 3), ()])
def test_bad_array_shapes(shape):
    with pytest.raises(ImageReadError):
        to_rgb_array(np.zeros(shape, dtype=np.uint8))


# --- folders ---------------------------------------------------------------------------------


def make_tree(root):
    """A folder with images at two depths plus things find_images must ignore."""
    Image.new("RGB", (4, 4)).save(root / "b.png")
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "sub" / "a.JPG")
    Image.new("L", (4, 4)).save(root / "sub" / "deeper" / "c.bmp")
    Image.new("RGB", (4, 4)).save(root / ".hidden.png")
    (root / ".cache").mkdir()
    Image.new("RGB", (4, 4)).save(root / ".cache" / "d.png")
    (root / "sub" / ".git").mkdir()
    Image.new("RGB", (4, 4)).save(root / "sub" / ".git" / "e.png")
    (root / "readme.txt").write_text("hello")
    (root / "data.npy").write_bytes(b"\x93NUMPY")
    (root / "folder.png").mkdir()  # a directory with an image suffix is not a file


def test_find_images_recursive_and_filtered(tmp_path):
    make_tree(tmp_path)
    found = find_images(tmp_path)
    expected = [tmp_path / "b.png", tmp_path / "sub" / "a.JPG", tmp_path / "sub" / "deeper" / "c.bmp"]
    assert sorted(found) == sorted(expected)
    assert found == sorted(found)


def test_netpbm_and_jfif_files_are_found_and_read(tmp_path):
    """A machine-vision camera's .pgm and a browser's .jfif were read when named, and left out of a folder and an upload."""
    grey = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
    save(Image.fromarray(grey), tmp_path / "camera.pgm")
    save(Image.fromarray(np.dstack([grey] * 3)), tmp_path / "camera.ppm")
    save(Image.fromarray(np.dstack([grey] * 3)), tmp_path / "photo.jfif", format="JPEG", quality=95)
    assert [p.name for p in find_images(tmp_path)] == ["camera.pgm", "camera.ppm", "photo.jfif"]
    np.testing.assert_allclose(read_image(tmp_path / "camera.pgm")[..., 0], grey / 255.0, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "camera.ppm"), read_image(tmp_path / "camera.pgm"))


def test_find_images_searches_linked_folders_once_each(tmp_path):
    """A lot linked in from a share is searched (rglob skipped it without a word), and a link loop ends."""
    (tmp_path / "share").mkdir()
    make_tree(tmp_path / "share")
    data = tmp_path / "data"
    (data / "lotB").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(data / "lotB" / "x.png")
    (data / "lotA").symlink_to(tmp_path / "share")
    (data / "lotB" / "loop").symlink_to(data)
    found = find_images(data)
    assert {p.relative_to(data).as_posix() for p in found} >= {"lotA/b.png", "lotA/sub/a.JPG", "lotA/sub/deeper/c.bmp", "lotB/x.png"}
    assert len(found) == 4  # the loop back to data is not searched again


def test_find_images_does_not_leave_the_folder_by_a_link_to_one_above_it(tmp_path):
    """`lot1/up -> ..`: the walk followed it to the parent and listed the sibling lots as lot1's images."""
    for lot in ("lot1", "lot2"):
        Image.new("RGB", (4, 4)).save((tmp_path / lot).mkdir() or tmp_path / lot / "a.png")
    (tmp_path / "lot1" / "up").symlink_to(tmp_path)
    (tmp_path / "lot1" / "self").symlink_to(tmp_path / "lot1")
    assert find_images(tmp_path / "lot1") == [tmp_path / "lot1" / "a.png"]
    (tmp_path / "data").mkdir()  # reached by a link: a link back to the folder the path names above it is not followed
    (tmp_path / "data" / "line").symlink_to(tmp_path / "lot1")
    (tmp_path / "lot1" / "up").unlink()
    (tmp_path / "lot1" / "up").symlink_to(tmp_path / "data")
    Image.new("RGB", (4, 4)).save(tmp_path / "data" / "b.png")
    assert find_images(tmp_path / "data" / "line") == [tmp_path / "data" / "line" / "a.png"]


@pytest.mark.parametrize("link", ["aa/link", "zz/link", "aa", "zz"])
def test_find_images_finds_a_folder_by_its_own_path_not_by_a_link_to_it(tmp_path, link):
    """With `aa/link -> real`, `real` was never listed where the file system listed `aa` first: outputs and masks
    were named by the link's path, or by the real one, as the listing's order fell."""
    Image.new("RGB", (4, 4)).save((tmp_path / "real").mkdir() or tmp_path / "real" / "a.png")
    (tmp_path / link).parent.mkdir(exist_ok=True)
    (tmp_path / link).symlink_to(tmp_path / "real")
    assert find_images(tmp_path) == [tmp_path / "real" / "a.png"]
    assert find_images(tmp_path / link.split("/")[0]) == [tmp_path / link / "a.png"]  # reached only by the link: by it
    (tmp_path / "yy").mkdir()
    (tmp_path / "yy" / "link").symlink_to(tmp_path / "real")
    (tmp_path / "yy" / "ab").symlink_to(tmp_path / "real")  # two links and no real path: the first by name
    assert find_images(tmp_path / "yy") == [tmp_path / "yy" / "ab" / "a.png"]


def test_find_images_finds_a_visible_link_to_a_hidden_folder_and_names_a_folder_it_cannot_list(tmp_path, monkeypatch):
    """`parts -> .store/lot1`: the hidden folder was searched first, its images dropped as hidden, and the link then
    skipped as a folder already searched. A folder that cannot be listed was left out without a word."""
    Image.new("RGB", (4, 4)).save((tmp_path / ".store" / "lot1").mkdir(parents=True) or tmp_path / ".store" / "lot1" / "a.png")
    (tmp_path / "parts").symlink_to(tmp_path / ".store" / "lot1")
    assert find_images(tmp_path) == [tmp_path / "parts" / "a.png"]
    Image.new("RGB", (4, 4)).save((tmp_path / "locked").mkdir() or tmp_path / "locked" / "b.png")
    scandir = os.scandir

    def no_permission(path="."):  # as for a folder without read permission (the tests may run as root, who reads it)
        if os.path.basename(path) == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", no_permission)
    with pytest.warns(UserWarning, match=r"could not list 1 folder\(s\), whose images are left out \(no permission\?\): locked$"):
        assert find_images(tmp_path) == [tmp_path / "parts" / "a.png"]


def test_find_images_names_a_broken_link_it_skips(tmp_path):
    """A link whose target moved: a set that shrank without a word would be scored as if whole."""
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "moved" / "gone.jpg")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "moved" / "notes.txt")  # not an image name: nothing to say
    with pytest.warns(UserWarning, match=r"skipped 1 image name\(s\) that lead to no regular file \(a broken link, a pipe\?\): gone.jpg$"):
        assert find_images(tmp_path) == [tmp_path / "x.png"]


def test_a_pipe_named_as_an_image_is_refused_not_waited_on(tmp_path):
    """`mkfifo p.png; rbd predict ckpt p.png`: reading waited for a writer for ever."""
    os.mkfifo(tmp_path / "p.png")
    with pytest.raises(ImageReadError, match="p.png: not a regular file \\(a pipe or a device\\)"):
        read_image(tmp_path / "p.png")


def test_find_images_in_hidden_parent_folder_still_works(tmp_path):
    """Only parts below the searched folder count as hidden."""
    root = tmp_path / ".data" / "good"
    root.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "x.png")
    assert find_images(root) == [root / "x.png"]


def test_find_images_not_a_folder(tmp_path):
    with pytest.raises(NoImagesError):
        find_images(tmp_path / "missing")


def test_read_images_skips_bad_files_with_one_warning(tmp_path):
    good = [save(Image.new("RGB", (6, 5), (255, 255, 255)), tmp_path / f"good{i}.png") for i in range(2)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    missing = tmp_path / "gone.jpg"
    with pytest.warns(UserWarning, match="skipped 2") as record:
        images, used = read_images([good[0], bad, good[1], missing])
    assert len(record) == 1
    message = str(record[0].message)
    assert "broken.png" in message and "gone.jpg" in message
    assert used == good
    assert len(images) == 2
    for image in images:
        assert_rgb(image, 5, 6)


def test_read_images_all_bad(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"xx")
    with pytest.raises(NoImagesError, match="broken.png"):
        read_images([bad])


def test_read_images_empty_list():
    with pytest.raises(NoImagesError):
        read_images([])


def test_read_image_folder_empty(tmp_path):
    with pytest.raises(NoImagesError):
        read_image_folder(tmp_path)


def test_read_image_folder_of_non_images(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.csv").write_text("1,2")
    with pytest.raises(NoImagesError):
        read_image_folder(tmp_path)


def test_read_image_folder_with_only_corrupt_images(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(NoImagesError, match="a.png"):
        read_image_folder(tmp_path)


def test_read_image_folder_reads_all(tmp_path):
    make_tree(tmp_path)
    with pytest.warns(UserWarning, match="b.png is 4x4: downscaled to 2x2"):
        images, used = read_image_folder(tmp_path, max_side=2)
    assert used == find_images(tmp_path)
    assert all(image.shape == (2, 2, 3) for image in images)


def test_huge_images_are_scored_on_a_downscaled_copy_with_a_notice(tmp_path):
    from rbd.images import read_image_for_scoring

    path = tmp_path / "huge.png"
    Image.new("L", (5000, 1200), 128).save(path)
    image, notice = read_image_for_scoring(path, max_side=1000)
    assert image.shape == (240, 1000, 3)
    assert "5000x1200" in notice and "1000x240" in notice
    small = tmp_path / "small.png"
    Image.new("L", (50, 12), 128).save(small)
    image, notice = read_image_for_scoring(small, max_side=1000)
    assert image.shape == (12, 50, 3) and notice is None


def test_a_float_tiff_over_pillows_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """Pillow cannot open float colour TIFFs and tifffile has no pixel limit: a 370 KB tiled file asked for 10 GB.
    The same limit is checked from the header (here lowered, so a small file is over it)."""
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((64, 64, 3), np.float32), photometric="rgb")
    assert read_image(tmp_path / "float.tif").shape == (64, 64, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match=r"float.tif: too large to decode safely \(4096 pixels, over the limit of 2000\)"):
        read_image(tmp_path / "float.tif")


def test_a_tiff_of_many_samples_a_pixel_is_refused_and_a_lifted_limit_is_honoured(tmp_path, monkeypatch):
    """64 float planes a pixel: gigabytes from a 16-megapixel file. And Image.MAX_IMAGE_PIXELS = None (Pillow's way
    to lift its limit) reads every TIFF, as before the check."""
    tifffile.imwrite(tmp_path / "planes.tif", np.zeros((8, 8, 64), np.float32), planarconfig="contig")
    with pytest.raises(ImageReadError, match="planes.tif: 64 samples a pixel; an image has 1 to 4"):
        read_image(tmp_path / "planes.tif")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((8, 8, 3), np.float32), photometric="rgb")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert read_image(tmp_path / "float.tif").shape == (8, 8, 3)


def test_an_image_over_pillows_decompression_bomb_limit_is_a_clear_error(tmp_path):
    """The README states the limit (about 179 megapixels): a line-scan strip over it says what to do."""
    Image.new("1", (20_000, 9_000)).save(tmp_path / "strip.png")  # 180 megapixels, a few kilobytes
    for read in (read_image, upright_size):  # also its header alone (what evaluate reads of a defect with no mask)
        with pytest.raises(ImageReadError, match=r"strip.png: too large to decode safely \(.*\): split it, or downscale it, first"):
            read(tmp_path / "strip.png")


def test_a_tensor_that_needs_gradients_or_is_bfloat16_is_read_as_its_values():
    """numpy refused both with torch's own error."""
    import torch

    picture = torch.rand(8, 10, 3)
    expected = given_image(picture.numpy())
    np.testing.assert_array_equal(given_image(picture.clone().requires_grad_(True)), expected)
    np.testing.assert_allclose(given_image(picture.bfloat16()), given_image(picture.bfloat16().float().numpy()))


@pytest.mark.parametrize("given, said", [
    (["part.png"], "expected one image .* got a list of 1: Detector.predict_batch and rbd.predict_files take several"),  # "(1,)"
    ([np.zeros((8, 8)), np.zeros((8, 8))], "got a list of 2"),
])
def test_several_images_given_as_one_are_told_where_several_go(given, said):
    with pytest.raises(ImageReadError, match=said):
        given_image(given)


def test_an_empty_path_is_said_as_such():
    with pytest.raises(ImageReadError, match="^an empty path, not an image file$"):  # was ": no such file"
        read_image("")
