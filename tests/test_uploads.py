import io
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from conftest import make_category
from rbd.datasets import mvtec_test_set
from rbd.errors import DatasetLayoutError, NoImagesError
from rbd.errors import UploadError
from rbd import uploads
from rbd.uploads import extract_zip, find_mvtec_root, gather_images, is_renumbered, picked_names, unique_name


def _zip_bytes(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding `members`: (name or ZipInfo, data) pairs, names written as given (unsanitised)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for member, data in members:
            archive.writestr(member, data)
    return buffer.getvalue()


def _write_zip(path: Path, members, compression=zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_zip_bytes(members, compression))
    return path


def _files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file() or path.is_symlink()}


def test_extract_keeps_nested_folders(tmp_path):
    upload = _write_zip(tmp_path / "parts.zip", [("top.png", b"1"), ("a/b/deep.png", b"2"), ("a/empty/", b"")])
    dest = tmp_path / "dest"
    assert extract_zip(upload, dest) == [dest / "a" / "b" / "deep.png", dest / "top.png"]
    assert (dest / "a" / "b" / "deep.png").read_bytes() == b"2"


@pytest.mark.parametrize("evil", ["../x.png", "/abs/x.png", "//abs/x.png", "a/../../x.png", "..\\x.png", "C:/x.png", "C:x.png"])
def test_members_outside_dest_are_skipped_with_a_warning(tmp_path, evil):
    upload = _write_zip(tmp_path / "up.zip", [(evil, b"evil"), ("ok.png", b"ok")])
    dest = tmp_path / "out" / "dest"  # `..` from dest lands in tmp_path/out, two lands in tmp_path
    with pytest.warns(UserWarning, match="up.zip: skipped") as record:
        assert extract_zip(upload, dest) == [dest / "ok.png"]
    assert evil in str(record[0].message)
    assert _files_under(tmp_path) == {upload, dest / "ok.png"}
    assert not Path("/abs/x.png").exists()


def test_names_keep_their_letters_with_or_without_the_zips_utf8_flag(tmp_path):
    """Info-ZIP on Linux writes UTF-8 names without the flag that says so, where the format reads cp437: such a name
    is read as UTF-8 (Python's own reading gave "fissure ├⌐ 裂纹" names); a true cp437 name stays cp437."""
    utf8, cp437 = "fissure é 裂纹.png".encode(), "café.png".encode("cp437")
    placeholders = [b"x" * len(utf8), b"y" * len(cp437)]
    data = _zip_bytes([(name.decode(), b"1") for name in placeholders]).replace(placeholders[0], utf8).replace(placeholders[1], cp437)
    assert all(not member.flag_bits & 0x800 for member in zipfile.ZipFile(io.BytesIO(data)).infolist())  # as Info-ZIP writes
    (tmp_path / "names.zip").write_bytes(data)
    dest = tmp_path / "dest"
    assert sorted(extract_zip(tmp_path / "names.zip", dest)) == sorted([dest / "fissure é 裂纹.png", dest / "café.png"])
    flagged = _write_zip(tmp_path / "flagged.zip", [("fissure é 裂纹.png", b"1")])  # Python sets the flag
    assert extract_zip(flagged, tmp_path / "flagged") == [tmp_path / "flagged" / "fissure é 裂纹.png"]


def test_symlink_member_is_skipped(tmp_path):
    link = zipfile.ZipInfo("link.png")
    link.external_attr = 0o120777 << 16
    upload = _write_zip(tmp_path / "up.zip", [(link, "/etc/passwd"), ("ok.png", b"ok")])
    dest = tmp_path / "dest"
    with pytest.warns(UserWarning, match=r"link\.png \(symbolic link\)"):
        assert extract_zip(upload, dest) == [dest / "ok.png"]
    assert not (dest / "link.png").exists() and not (dest / "link.png").is_symlink()


def test_zip_of_only_unsafe_members_is_refused(tmp_path):
    upload = _write_zip(tmp_path / "up.zip", [("../x.png", b"evil")])
    with pytest.raises(UploadError, match="nothing could be extracted safely"):
        extract_zip(upload, tmp_path / "dest")
    assert not (tmp_path / "x.png").exists()


def test_macos_junk_and_hidden_files_are_skipped_silently(tmp_path):
    junk = ["__MACOSX/._a.png", "__MACOSX/sub/b.png", "._a.png", ".DS_Store", "sub/.DS_Store", ".git/c.png"]
    upload = _write_zip(tmp_path / "up.zip", [(name, b"junk") for name in junk] + [("a.png", b"a"), ("sub/b.png", b"b")])
    dest = tmp_path / "dest"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extract_zip(upload, dest) == [dest / "a.png", dest / "sub" / "b.png"]
    assert _files_under(dest) == {dest / "a.png", dest / "sub" / "b.png"}


def test_zip_expanding_past_the_cap_is_refused(tmp_path):
    upload = _write_zip(tmp_path / "bomb.zip", [("a.png", b"small"), ("b.png", bytes(5000))])
    assert upload.stat().st_size < 1000  # small on disk, large once expanded
    with pytest.raises(UploadError, match="bomb.zip expands to more than 1000 bytes"):
        extract_zip(upload, tmp_path / "dest", max_total_bytes=1000)
    assert _files_under(tmp_path) == {upload}


def test_the_cap_holds_for_the_whole_upload_not_for_each_zip(tmp_path, monkeypatch):
    """A request may carry a thousand files: a thousand zips each under the cap would still fill the disk."""
    monkeypatch.setattr(uploads, "MAX_TOTAL_BYTES", 10_000)
    zips = [_write_zip(tmp_path / f"part{i}.zip", [("a.png", bytes(4000))]) for i in range(3)]
    assert len(gather_images(zips[:2], tmp_path / "two")) == 2  # 8000 bytes: within the cap
    with pytest.raises(UploadError, match=r"^the upload takes more than"):  # not "part2.zip ... a possible zip bomb"
        gather_images(zips, tmp_path / "three")
    with pytest.raises(UploadError, match="big.zip expands to .* a possible zip bomb"):
        gather_images([_write_zip(tmp_path / "big.zip", [("a.png", bytes(12_000))])], tmp_path / "alone")
    loose = tmp_path / "big.png"
    loose.write_bytes(bytes(3000))
    with pytest.raises(UploadError, match="the upload takes more than"):
        gather_images([*zips[:2], loose], tmp_path / "four")


def test_folders_count_against_the_cap_and_members_are_counted_over_the_upload(tmp_path, monkeypatch):
    """A 25 KB zip of one-byte members 300 folders deep made 6,041 folders (24 MB) under a 20-byte count."""
    deep = "/".join(["d"] * 300)
    nested = _write_zip(tmp_path / "deep.zip", [(f"{deep}/{i}.png", b"x") for i in range(3)])
    monkeypatch.setattr(uploads, "MAX_TOTAL_BYTES", 100 * uploads.FOLDER_BYTES)
    with pytest.raises(UploadError, match="deep.zip expands to more than"):
        gather_images([nested], tmp_path / "a")
    assert not (tmp_path / "a" / "deep").exists() or not any((tmp_path / "a" / "deep").rglob("*.png"))
    monkeypatch.setattr(uploads, "MAX_MEMBERS", 5)
    parts = [_write_zip(tmp_path / f"p{i}.zip", [(f"{j}.png", b"x") for j in range(3)]) for i in range(2)]
    assert len(gather_images(parts[:1], tmp_path / "b")) == 3
    with pytest.raises(UploadError, match="^the upload takes more than .* or holds more than 5 files"):
        gather_images(parts, tmp_path / "c")  # 3 + 3 members: each zip within the cap, the upload over it


def test_a_member_lying_about_its_size_is_skipped_unexpanded(tmp_path):
    """The central directory claims 10 bytes for a member that expands to 100 000: no more than 10 come out,
    their checksum fails, and the member is skipped as corrupt."""
    data = bytearray(_zip_bytes([("a.png", b"first"), ("b.png", bytes(100_000))]))
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # b.png's central directory entry
    struct.pack_into("<I", data, entry + 24, 10)  # its uncompressed size
    upload = tmp_path / "liar.zip"
    upload.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"liar.zip: skipped b.png \(corrupt"):
        assert extract_zip(upload, tmp_path / "dest", max_total_bytes=1000) == [tmp_path / "dest" / "a.png"]
    assert _files_under(tmp_path) == {upload, tmp_path / "dest" / "a.png"}


def test_zip_with_too_many_members_is_refused(tmp_path):
    upload = _write_zip(tmp_path / "many.zip", [(f"{i}.png", b"x") for i in range(3)])
    with pytest.raises(UploadError, match="3 entries; at most 2"):
        extract_zip(upload, tmp_path / "dest", max_members=2)


@pytest.mark.parametrize("listed", [3, 70_000])  # the second past 65,534: counted in zip64's end record
def test_a_zip_listing_too_many_entries_is_refused_before_they_are_read(tmp_path, monkeypatch, listed):
    """zipfile makes an object of every entry the zip lists: a 51 MB zip listing a million took 15 s and 480 MB before
    the count refused it, and one of the app's 2 GB could take a Space down."""
    name = b"x.png"
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    directory = entry * listed  # no data: only the list
    if listed <= 0xFFFE:
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, listed, listed, len(directory), 0, 0)
    else:
        end = (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, listed, listed, len(directory), 0)
               + struct.pack("<4sLQL", b"PK\x06\x07", 0, len(directory), 1)
               + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    (tmp_path / "many.zip").write_bytes(directory + end)
    monkeypatch.setattr(uploads.zipfile, "ZipFile", lambda *args, **kwargs: pytest.fail("the zip was opened"))
    with pytest.raises(UploadError, match=f"many.zip holds {listed:,} entries; at most 2 are accepted"):
        extract_zip(tmp_path / "many.zip", tmp_path / "dest", max_members=2)


def test_a_folder_named_past_the_file_systems_limit_costs_only_its_files(tmp_path):
    """A folder of 90 CJK characters (270 bytes, which Windows allows) failed the whole upload with "File name too
    long": Python 3.11's Path.exists raises for such a name where it returns False for a missing one."""
    long = "検査" * 45
    image = tmp_path / "a.png"
    image.write_bytes(b"image")
    zipped = _write_zip(tmp_path / "lot.zip", [(f"{long}/b.png", b"1"), ("ok/c.png", b"2")])
    dest = tmp_path / "work"
    with pytest.warns(UserWarning, match=f"lot.zip: skipped {long}/b.png \\(File name too long\\)"):
        found = gather_images([image, zipped], dest, [f"lot/{long}/a.png", "lot.zip"])
    assert found == [dest / "a.png", dest / "lot" / "ok" / "c.png"]  # the picked file by its own name, as a clash falls back
    inside = tmp_path / "inside"  # a zip picked in such a folder: extracted under its own name
    assert gather_images([zipped], inside, [f"lot/{long}/lot.zip"]) == [inside / "lot" / "ok" / "c.png"]


def test_a_zip_named_with_a_character_the_web_server_drops_is_unwrapped_by_its_own_name(tmp_path):
    """`lot5!.zip` of `lot5!/good/000.png`, stored by Gradio as `lot5.zip`: its images were `lot5!/lot5!/good/000.png`."""
    stored = _write_zip(tmp_path / "lot5.zip", [("lot5!/good/000.png", b"1")])
    dest = tmp_path / "work"
    assert gather_images([stored], dest, ["lot5!.zip"]) == [dest / "lot5!" / "good" / "000.png"]


def test_a_corrupt_member_costs_only_itself_and_is_named(tmp_path):
    data = _zip_bytes([("a.png", b"A" * 100), ("b.png", b"B" * 100)], compression=zipfile.ZIP_STORED)
    upload = tmp_path / "broken.zip"
    upload.write_bytes(data.replace(b"B" * 100, b"C" * 100))  # stored data no longer matches its CRC
    with pytest.warns(UserWarning, match=r"broken.zip: skipped b.png \(corrupt or compressed in an unsupported way\)"):
        assert extract_zip(upload, tmp_path / "dest") == [tmp_path / "dest" / "a.png"]
    assert _files_under(tmp_path) == {upload, tmp_path / "dest" / "a.png"}  # no partly written b.png
    only = tmp_path / "only.zip"
    only.write_bytes(_zip_bytes([("b.png", b"B" * 100)], compression=zipfile.ZIP_STORED).replace(b"B" * 100, b"C" * 100))
    with pytest.raises(UploadError, match="nothing could be extracted safely"):
        extract_zip(only, tmp_path / "dest2")


@pytest.mark.parametrize("content", [b"this is not a zip", b""])
def test_file_that_is_not_a_zip_raises_upload_error_naming_it(tmp_path, content):
    upload = tmp_path / "photos.zip"
    upload.write_bytes(content)
    with pytest.raises(UploadError, match="photos.zip is not a readable zip file"):
        extract_zip(upload, tmp_path / "dest")
    with pytest.raises(UploadError, match="photos.zip"):
        gather_images([upload], tmp_path / "dest")


def test_gather_images_keeps_images_renames_duplicates_and_warns_about_the_rest(tmp_path):
    uploads = tmp_path / "uploads"
    for name, data in [("1/a.png", b"first a"), ("2/a.png", b"second a"), ("1/b.JPG", b"b"), ("1/notes.txt", b"notes")]:
        (uploads / name).parent.mkdir(parents=True, exist_ok=True)
        (uploads / name).write_bytes(data)
    photos = _write_zip(uploads / "1" / "photos.zip", [("x/c.png", b"c"), ("x/readme.txt", b"r"), ("__MACOSX/x/._c.png", b"j")])
    paths = [uploads / "2" / "a.png", uploads / "1" / "notes.txt", photos, uploads / "1" / "a.png", uploads / "1" / "b.JPG",
             uploads / "1" / "gone.png"]
    dest = tmp_path / "work"
    with pytest.warns(UserWarning) as record:
        images = gather_images([str(path) for path in paths], dest)
    assert images == [dest / "a.png", dest / "a_1.png", dest / "b.JPG", dest / "photos" / "x" / "c.png"]
    skipped, renamed = (str(r.message) for r in record)
    assert "notes.txt (not an image type rbd reads, nor a zip)" in skipped and "gone.png" in skipped and "readme" not in skipped
    # a browser sends loose files by name alone: the second a.png is shown as a_1.png, and that is said
    assert "1 uploaded file(s) had the name of another, different file" in renamed and "a.png as a_1.png" in renamed
    shutil.rmtree(uploads)  # the browser's temporary files vanish; the copies must not
    assert [image.read_bytes() for image in images] == [b"second a", b"first a", b"b", b"c"]


def test_gather_images_extracts_same_named_zips_into_separate_folders(tmp_path):
    first = _write_zip(tmp_path / "1" / "data.zip", [("a.png", b"1")])
    second = _write_zip(tmp_path / "2" / "data.zip", [("a.png", b"2")])
    dest = tmp_path / "work"
    assert gather_images([first, second], dest) == [dest / "data" / "a.png", dest / "data_1" / "a.png"]
    assert (dest / "data_1" / "a.png").read_bytes() == b"2"


def test_a_zip_of_a_folder_of_its_own_name_is_named_once_not_twice(tmp_path):
    """`zip -r bottle.zip bottle` (or a desktop's "compress"): its images were `bottle/bottle/good/000.png`."""
    wrapped = _write_zip(tmp_path / "Bottle.zip", [("bottle/", b""), ("bottle/good/000.png", b"1"), ("bottle/broken/000.png", b"2"),
                                                   ("__MACOSX/bottle/._000.png", b"x")])
    again = _write_zip(tmp_path / "again" / "Bottle.zip", [("bottle/good/000.png", b"3")])
    lot = _write_zip(tmp_path / "lot.zip", [("lot7/good/000.png", b"4")])  # another folder's name: kept
    part = _write_zip(tmp_path / "part.zip", [("part/a.png", b"5"), ("b.png", b"6")])  # not all in it: kept
    dest = tmp_path / "work"
    assert gather_images([wrapped, again, lot, part], dest) == [
        dest / "Bottle" / "broken" / "000.png", dest / "Bottle" / "good" / "000.png", dest / "Bottle_1" / "good" / "000.png",
        dest / "lot" / "lot7" / "good" / "000.png", dest / "part" / "b.png", dest / "part" / "part" / "a.png"]
    assert extract_zip(wrapped, tmp_path / "kept") == [tmp_path / "kept" / "bottle" / "broken" / "000.png",
                                                        tmp_path / "kept" / "bottle" / "good" / "000.png"]  # as zipped


def test_a_zip_without_images_beside_other_files_is_named(tmp_path):
    """It was dropped without a word when other files of the upload held images."""
    image = tmp_path / "a.png"
    image.write_bytes(b"image")
    notes = _write_zip(tmp_path / "notes.zip", [("readme.txt", b"text")])
    empty = _write_zip(tmp_path / "empty.zip", [])
    with pytest.warns(UserWarning, match=r"skipped 2 uploaded file\(s\): notes.zip \(no image inside\); empty.zip \(no image inside\)"):
        assert gather_images([image, notes, empty], tmp_path / "work") == [tmp_path / "work" / "a.png"]


def _browser_upload(root: Path, files: dict[str, bytes]) -> list[Path]:
    """Files as a browser uploads a picked folder: each under its name alone, in a temporary folder of its own."""
    uploaded = []
    for i, (name, data) in enumerate(files.items()):
        path = root / str(i) / Path(name).name
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        uploaded.append(path)
    return uploaded


def test_a_picked_folder_keeps_its_folders_so_same_named_images_stay_apart(tmp_path):
    files = {"bottle/good/000.png": b"good 0", "bottle/broken/000.png": b"broken 0", "bottle/good/001.png": b"good 1",
             "bottle/.thumbs/000.png": b"hidden", "bottle/good/notes.txt": b"notes"}
    uploaded = _browser_upload(tmp_path / "uploads", files)
    picked = [[name, len(data)] for name, data in files.items()]
    names = picked_names(uploaded, picked)
    assert names == list(files)
    dest = tmp_path / "work"
    with pytest.warns(UserWarning, match="bottle/good/notes.txt"):  # named as in the folder
        images = gather_images(uploaded, dest, names)
    assert [image.relative_to(dest).as_posix() for image in images] == [
        "bottle/broken/000.png", "bottle/good/000.png", "bottle/good/001.png"]  # the hidden folder's file skipped, as in zips
    assert [image.read_bytes() for image in images] == [b"broken 0", b"good 0", b"good 1"]


def test_picked_names_pairs_files_by_name_and_size_in_order_and_never_guesses(tmp_path):
    uploaded = _browser_upload(tmp_path, {"a/x.png": b"12", "b/x.png": b"1234", "c/y.png": b"1"})
    picked = [["d/x.png", 4], ["e/x.png", 2], "junk", ["f/x.png", "2"], ["g/z.png", 1], ["h/y.png", 5]]
    assert picked_names(uploaded, picked) == ["e/x.png", "d/x.png", None]
    twins = _browser_upload(tmp_path / "twins", {"a/s.png": b"1", "b/s.png": b"2"})  # equal names and sizes
    assert picked_names(twins, [["a/s.png", 1], ["b/s.png", 1]]) == ["a/s.png", "b/s.png"]  # in the order picked
    # one of two twins removed from the upload box: which one is left cannot be told, so neither is named
    assert picked_names(twins[1:], [["a/s.png", 1], ["b/s.png", 1]]) == [None]
    assert picked_names(twins[1:], [["a/s.png", 1], ["b/s.png", 1], ["c/t.png", 1]]) == [None]
    # byte-identical files share one temporary upload: each occurrence still takes its own path
    assert picked_names([twins[0], twins[0]], [["a/s.png", 1], ["b/s.png", 1]]) == ["a/s.png", "b/s.png"]
    assert picked_names(uploaded, None) == [None] * 3 and picked_names([tmp_path / "gone.png"], [["gone.png", 1]]) == [None]


@pytest.mark.parametrize("name", ["../../escape.png", "/etc/escape.png", "C:/escape.png", "a/../../escape.png", "", None])
def test_a_picked_path_that_would_leave_the_upload_folder_is_not_followed(tmp_path, name):
    uploaded = _browser_upload(tmp_path / "uploads", {"escape.png": b"x"})
    dest = tmp_path / "deep" / "work"
    assert gather_images(uploaded, dest, [name]) == [dest / "escape.png"]
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "deep" / "escape.png").exists()


def test_a_zip_in_a_picked_folder_is_extracted_where_it_lies(tmp_path):
    """`lot/test/crack/crack.zip` went to the top of the upload as `crack/`, out of its category: its defects were
    then trained on as normal images. And a picked file named as one of its images is numbered, not written over it."""
    crack = _write_zip(tmp_path / "up0" / "crack.zip", [("001.png", b"DEFECT")])
    good = tmp_path / "up1" / "000.png"
    good.parent.mkdir()
    good.write_bytes(b"good")
    clash = tmp_path / "up2" / "001.png"
    clash.parent.mkdir()
    clash.write_bytes(b"folder")
    dest = tmp_path / "dest"
    found = gather_images([crack, good, clash], dest, ["lot/test/crack/crack.zip", "lot/train/good/000.png", "lot/test/crack/crack/001.png"])
    assert [p.relative_to(dest).as_posix() for p in found] == [
        "lot/test/crack/crack/001.png", "lot/test/crack/crack/001_1.png", "lot/train/good/000.png"]
    assert (dest / "lot/test/crack/crack/001.png").read_bytes() == b"DEFECT"  # the zip's image kept


def test_a_picked_zip_whose_folder_runs_through_an_uploaded_file_falls_back_to_its_name(tmp_path):
    image = tmp_path / "up0" / "lot.png"
    image.parent.mkdir()
    image.write_bytes(b"image")
    inner = _write_zip(tmp_path / "up1" / "x.zip", [("y.png", b"y")])
    dest = tmp_path / "dest"
    found = gather_images([image, inner], dest, [None, "lot.png/x.zip"])  # a NotADirectoryError naming a server path
    assert [p.relative_to(dest).as_posix() for p in found] == ["lot.png", "x/y.png"]


def test_a_gone_or_nul_named_upload_is_skipped_or_renamed_not_a_failure(tmp_path):
    image = tmp_path / "up0" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"x")
    dest = tmp_path / "dest"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gather_images([image, tmp_path / "gone.zip"], dest, ["lot/a\x00b.png"]) == [dest / "a.png"]  # its own name
    assert "gone.zip (the uploaded file is gone)" in str(caught[-1].message)


def test_picked_names_match_the_names_the_web_server_stored(tmp_path):
    """Gradio strips characters such as `!` and `:`: `crack!/scratch!.png` arrives as `scratch.png`."""
    uploaded = _browser_upload(tmp_path / "uploads", {"scratch.png": b"12"})
    recorded = [["bottle/test/crack!/scratch!.png", 2]]
    assert picked_names(uploaded, recorded) == [None]  # unmatched: it would land at the top, out of its category
    assert picked_names(uploaded, recorded, lambda name: name.replace("!", "")) == ["bottle/test/crack!/scratch!.png"]


def test_a_picked_path_that_clashes_with_an_upload_falls_back_to_its_name(tmp_path):
    uploads = _browser_upload(tmp_path / "uploads", {"a.png": b"file", "b.png": b"nested"})
    dest = tmp_path / "work"
    images = gather_images(uploads, dest, [None, "a.png/b.png"])  # a folder where a file is
    assert images == [dest / "a.png", dest / "b.png"] and images[1].read_bytes() == b"nested"
    again = _browser_upload(tmp_path / "again", {"c.png": b"c"})
    assert gather_images(again, dest, ["good/c.png"]) == [dest / "good" / "c.png"]
    clash = _browser_upload(tmp_path / "clash", {"good.zip": b""})  # a zip named as a folder made before: its own folder
    _write_zip(clash[0], [("d.png", b"d")])
    mixed = _browser_upload(tmp_path / "mixed", {"e.png": b"e"})
    images = gather_images(mixed + clash, tmp_path / "fresh", ["good/e.png"])
    assert [image.relative_to(tmp_path / "fresh").as_posix() for image in images] == ["good/e.png", "good_1/d.png"]


def test_a_renumbered_name_is_told_from_another_name():
    taken = set()
    first, second = unique_name("dir/A.png", taken), unique_name("dir/a.png", taken)
    assert is_renumbered(second, first) and second == "dir/a_1.png"
    assert not is_renumbered("dir/a copy.png", "dir/a.png") and not is_renumbered("dir/a.png", "dir/a.png")
    assert not is_renumbered("dir/a_1.jpg", "dir/a.png") and not is_renumbered("other/a_1.png", "dir/a.png")
    assert not is_renumbered("a.b_1.png", "a+b.png")  # the name is matched literally, not as a pattern
    assert is_renumbered("batch_1/x.png", "batch/x.png")  # a zip dropped twice
    assert not is_renumbered("batch_1/y.png", "batch/x.png") and not is_renumbered("other_1/x.png", "batch/x.png")


def test_a_second_member_of_one_name_is_skipped_and_named_not_written_over_the_first(tmp_path):
    upload = _write_zip(tmp_path / "parts.zip", [("part.png", b"first"), ("part.png", b"second")])
    with pytest.warns(UserWarning, match=r"parts.zip: skipped part.png \(a second member of that name\)"):
        assert extract_zip(upload, tmp_path / "dest") == [tmp_path / "dest" / "part.png"]
    assert (tmp_path / "dest" / "part.png").read_bytes() == b"first"


def test_a_zip_inside_a_zip_is_named_its_other_files_are_not(tmp_path):
    """Its images would be lost unseen; a readme beside the images is no news."""
    inner = _zip_bytes([("c.png", b"c")])
    upload = _write_zip(tmp_path / "outer.zip", [("a.png", b"a"), ("more/inner.zip", inner), ("notes.pdf", b"%PDF")])
    with pytest.warns(UserWarning) as warned:
        images = gather_images([upload], tmp_path / "dest")
    assert images == [tmp_path / "dest" / "outer" / "a.png"]
    message = " ".join(str(w.message) for w in warned)
    assert "outer/more/inner.zip (a zip inside the zip: unzip it first)" in message and "notes.pdf" not in message


def test_unique_name_numbers_before_the_suffix_ignoring_case_and_records_its_answer():
    taken: set[str] = set()
    names = [unique_name(name, taken) for name in ["a.png", "a_1.png", "a.png", "A.PNG", "b.tar.gz", "b.tar.gz", "c"]]
    assert names == ["a.png", "a_1.png", "a_2.png", "A_3.PNG", "b.tar.gz", "b.tar_1.gz", "c"]
    assert taken == {"a.png", "a_1.png", "a_2.png", "a_3.png", "b.tar.gz", "b.tar_1.gz", "c"}
    folders = {"v1.2"}
    assert unique_name("v1.2", folders, split_suffix=False) == "v1.2_1"  # a folder or stem: no suffix to keep
    assert unique_name("V1.2", folders, split_suffix=False) == "V1.2_2" and folders == {"v1.2", "v1.2_1", "v1.2_2"}


def test_gather_images_renames_names_that_differ_only_in_case_and_keeps_earlier_files(tmp_path):
    uploads = tmp_path / "uploads"
    for name in ["1/a.png", "2/A.png", "3/a.png.zip"]:
        (uploads / name).parent.mkdir(parents=True, exist_ok=True)
    (uploads / "1" / "a.png").write_bytes(b"a")
    (uploads / "2" / "A.png").write_bytes(b"A")
    _write_zip(uploads / "3" / "a.png.zip", [("z.png", b"z")])
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "a.png").write_bytes(b"earlier")  # left by an earlier call: neither overwritten nor reused
    with pytest.warns(UserWarning, match="2 uploaded file.*: a.png as a_1.png, A.png as A_2.png"):
        images = gather_images([uploads / "1" / "a.png", uploads / "2" / "A.png", uploads / "3" / "a.png.zip"], dest)
    assert images == [dest / "A_2.png", dest / "a.png_1" / "z.png", dest / "a_1.png"]
    assert [image.read_bytes() for image in images] == [b"A", b"z", b"a"]
    assert (dest / "a.png").read_bytes() == b"earlier"


@pytest.mark.parametrize("name, content", [
    ("empty.zip", _zip_bytes([])),
    ("docs.zip", _zip_bytes([("readme.txt", b"r"), ("sub/data.csv", b"1,2")])),
    ("notes.txt", b"notes"),
])
def test_upload_without_images_raises_no_images_error(tmp_path, name, content):
    upload = tmp_path / name
    upload.write_bytes(content)
    with pytest.raises(NoImagesError, match="no image files in the upload"):
        gather_images([upload], tmp_path / "work")


@pytest.fixture(scope="module")
def small_category(tmp_path_factory) -> Path:
    return make_category(tmp_path_factory.mktemp("src") / "stripes", n_train=1, n_good=1, n_bad=1)


def _zip_folder(folder: Path, path: Path, prefix: str) -> Path:
    """Zip `folder` the way a user would, its files named `prefix` + their path inside it."""
    members = [(prefix + file.relative_to(folder).as_posix(), file.read_bytes()) for file in sorted(folder.rglob("*")) if file.is_file()]
    return _write_zip(path, members + [("__MACOSX/._junk", b"j")])


@pytest.mark.parametrize("prefix, expected", [("", "."), ("stripes/", "stripes"), ("MVTec AD/stripes/", "MVTec AD/stripes")])
def test_find_mvtec_root_finds_the_category_in_an_extracted_zip(tmp_path, small_category, prefix, expected):
    dest = tmp_path / "dest"
    extract_zip(_zip_folder(small_category, tmp_path / "upload.zip", prefix), dest)
    root = find_mvtec_root(dest)
    assert root == dest / expected
    assert [item.defect for item in mvtec_test_set(root)] == ["good", "hole"]


@pytest.mark.parametrize("name", [
    "a/b/c/stripes/test/good/000.png",
    "a/b/c/stripes/test/hole/000.png",  # not named as a category without test/good: given one, it would not be found
])
def test_find_mvtec_root_four_folders_down_is_no_category(tmp_path, name):
    dest = tmp_path / "dest"
    extract_zip(_write_zip(tmp_path / "upload.zip", [(name, b"x")]), dest)
    with pytest.raises(DatasetLayoutError, match="no MVTec AD category in the upload: expected a folder holding test/good/"):
        find_mvtec_root(dest)


@pytest.mark.parametrize("names, said", [
    (["stripes/train/good/000.png", "stripes/test/hole/000.png"], "stripes/test has"),
    (["test/hole/000.png", "__MACOSX/x/test/._000.png"], "test has"),  # the category at the top; macOS's forks are no category
    (["a/test/hole/test/000.png"], "a/test has"),  # a defect's own folder named test is no category of its own
    (["a/test/hole/000.png", "b/test/hole/000.png"], "a/test, b/test have"),
])
def test_a_category_without_test_good_is_named(tmp_path, names, said):
    """Defects alone were "no MVTec AD category in the upload", as if it held none."""
    dest = tmp_path / "dest"
    extract_zip(_write_zip(tmp_path / "upload.zip", [(name, b"x") for name in names]), dest)
    with pytest.raises(DatasetLayoutError, match=f"^{said} no good/ folder: evaluation needs good test images"):
        find_mvtec_root(dest)


@pytest.mark.parametrize("members, said", [
    ([("stripes.zip", b"PK")], r"; it holds a zip \(stripes.zip\): unzip it first"),  # a zipped category zipped again
    ([], "; the upload is empty"),
])
def test_find_mvtec_root_says_when_the_upload_is_a_zip_of_a_zip_or_empty(tmp_path, members, said):
    dest = tmp_path / "dest"
    extract_zip(_write_zip(tmp_path / "upload.zip", members), dest)
    with pytest.raises(DatasetLayoutError, match=f"no MVTec AD category in the upload: .*{said}$"):
        find_mvtec_root(dest)


def test_find_mvtec_root_with_several_categories_lists_them(tmp_path):
    dest = tmp_path / "dest"
    extract_zip(_write_zip(tmp_path / "upload.zip", [("mvtec/bottle/test/good/0.png", b"x"), ("mvtec/cable/test/good/0.png", b"x")]), dest)
    with pytest.raises(DatasetLayoutError, match="2 MVTec AD categories \\(mvtec/bottle, mvtec/cable\\)"):
        find_mvtec_root(dest)


def test_a_second_drop_of_one_file_is_numbered_without_a_word(tmp_path, recwarn):
    """Inspect takes the same bytes once; a notice of a name taken would only puzzle."""
    (tmp_path / "a.png").write_bytes(b"a")
    images = gather_images([tmp_path / "a.png", tmp_path / "a.png"], tmp_path / "work")
    assert [image.name for image in images] == ["a.png", "a_1.png"] and not recwarn.list
    for name, data in (("1/a.png", b"x"), ("2/a.png", b"y")):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_bytes(data)
    with pytest.warns(UserWarning, match=r"^1 uploaded file\(s\).*: a.png as a_1.png \("):  # the third is the second again
        gather_images([tmp_path / "1" / "a.png", tmp_path / "2" / "a.png", tmp_path / "2" / "a.png"], tmp_path / "again")
