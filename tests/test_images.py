"""images: every hostile file either becomes the right RGB pixels or a typed, worded refusal."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision.datasets.folder import IMG_EXTENSIONS

from studio.core import images
from studio.core.images import ImageError, check_image, load_for_model, load_rgb, resize_square, to_tensor
from tests.hostile import BOMB_SIZE, EXPECTED_REASONS, make_hostile_folder, write_bomb_png


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile")
    return root, make_hostile_folder(root)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int32)


def test_extensions_match_torchvision() -> None:
    assert set(images.IMAGE_EXTENSIONS) == set(IMG_EXTENSIONS) | {".gif"}
    assert images.has_image_extension("IMG_0001.JPG") and not images.has_image_extension("notes.txt")


def test_every_usable_hostile_file_loads_as_rgb(hostile: tuple[Path, dict[str, str]]) -> None:
    root, expected = hostile
    usable = [rel for rel, outcome in expected.items() if outcome == "ok"]
    assert len(usable) >= 12
    for rel in usable:
        img = load_rgb(root / rel)
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1, rel
        assert load_for_model(root / rel, 16).size == (16, 16), rel


def test_every_bad_hostile_file_is_refused_with_its_reason(hostile: tuple[Path, dict[str, str]]) -> None:
    root, expected = hostile
    images_bad = [rel for rel, outcome in expected.items() if outcome == "bad" and not rel.endswith(".txt")]
    assert len(images_bad) == 7 if hasattr(os, "mkfifo") else 6
    for rel in images_bad:
        path = root / rel
        for load in (load_rgb, lambda p: load_for_model(p, 32), check_image):
            with pytest.raises(ImageError) as caught:
                load(path)
            assert EXPECTED_REASONS[rel] in caught.value.reason, (rel, caught.value.reason)
            assert caught.value.path == str(path)
            assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_sixteen_bit_gray_is_scaled_not_clipped(hostile: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = hostile
    assert Image.open(root / "dogs/gray16.png").mode == "I;16"
    assert np.all(_pixels(load_rgb(root / "dogs/gray16.png")) == 128)  # 32768 / 257, not 255
    Image.fromarray(np.full((4, 4), 16384, np.uint16)).save(tmp_path / "quarter.pgm")  # opens as mode "I"
    assert np.all(_pixels(load_rgb(tmp_path / "quarter.pgm")) == 64)


@pytest.mark.parametrize(
    ("image", "fmt", "gray"),
    [
        (Image.fromarray(np.full((4, 4), 0.5, np.float32), "F"), "TIFF", 128),
        (Image.fromarray(np.full((4, 4), 200, np.int32), "I"), "TIFF", 200),
        (Image.new("1", (4, 4), 1), "PNG", 255),
        (Image.new("L", (4, 4), 77), "JPEG", 77),
        (Image.new("LA", (4, 4), (0, 0)), "PNG", 255),  # fully transparent black shows as white
    ],
    ids=["float", "int32", "bilevel", "gray", "gray-alpha"],
)
def test_other_modes_become_the_expected_gray(image: Image.Image, fmt: str, gray: int, tmp_path: Path) -> None:
    path = tmp_path / f"img.{fmt.lower()}"
    image.save(path, format=fmt)
    assert np.all(np.abs(_pixels(load_rgb(path)) - gray) <= 1)


def test_transparency_is_composited_on_white(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    palette = _pixels(load_rgb(root / "dogs/palette_transparent.png"))
    assert palette[0, 0].tolist() == [255, 255, 255]
    assert palette[8, 8].tolist() == [30, 60, 180]
    rgba = _pixels(load_rgb(root / "cats/rgba.png"))
    assert np.all(rgba[:, : rgba.shape[1] // 2] == 255)
    assert rgba[:, -1, 0].mean() > 150 and rgba[:, -1, 2].mean() < 120  # the opaque red half is kept


def test_cmyk_becomes_rgb_of_the_same_colour(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    assert Image.open(root / "cats/cmyk.jpg").mode == "CMYK"
    red, green, blue = _pixels(load_rgb(root / "cats/cmyk.jpg")).reshape(-1, 3).mean(axis=0)
    assert red > 150 and green < 120 and blue < 120


def test_exif_orientation_is_applied(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    path = root / "cats/exif_rotated.jpg"
    assert Image.open(path).size == (30, 16)
    img = load_rgb(path)
    assert img.size == (16, 30)
    assert check_image(path) == (16, 30) == check_image(path, decode=False)
    pixels = _pixels(img)
    assert pixels[:4].mean() < 80 and pixels[-10:, :, 0].mean() > 150  # the stored left band is now on top


def test_an_upright_decoded_photo_is_not_turned_again_when_handed_on(hostile: tuple[Path, dict[str, str]]) -> None:
    """The familiarity check takes the decoded file as a picture in hand, which honours orientation tags."""
    path = hostile[0] / "cats/exif_rotated.jpg"
    decoded = load_for_model(path, 16)
    assert np.array_equal(_pixels(images.as_rgb(decoded)), _pixels(decoded))


def test_truncated_file_fails_only_when_pixels_are_decoded(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    assert check_image(root / "cats/truncated.jpg", decode=False) == (64, 64)  # the header is intact
    with pytest.raises(ImageError, match="truncated"):
        check_image(root / "cats/truncated.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_is_refused_before_decoding_and_without_warnings(hostile: tuple[Path, dict[str, str]],
                                                                tmp_path: Path) -> None:
    root, _ = hostile
    filters_before = list(warnings.filters)
    huge = tmp_path / "huge.png"
    write_bomb_png(huge, 20_000, 20_000)  # beyond twice Pillow's bound: Pillow itself raises
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError) as caught:
            load_rgb(root / "dogs/bomb.png")
        assert caught.value.reason == f"too large: {BOMB_SIZE[0]}×{BOMB_SIZE[1]} pixels (limit 89 million)"
        with pytest.raises(ImageError, match=r"too large: 400 million pixels \(limit 89 million\)"):
            load_rgb(huge)
    assert warnings.filters == filters_before


def test_pixel_bound_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match=r"too large: 20×20 pixels \(limit 399\)"):
        load_rgb(tmp_path / "small.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 400)
    assert load_rgb(tmp_path / "small.png").size == (20, 20)


def test_files_that_only_pretend(tmp_path: Path) -> None:
    (tmp_path / "eps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageError, match="not an image"):  # never handed to Ghostscript
        load_rgb(tmp_path / "eps.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(ImageError, match="corrupt"):
        load_rgb(tmp_path / "broken.png")


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unreadable: file not found"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="unreadable: it is a folder"):
        load_rgb(tmp_path)
    locked = tmp_path / "locked.png"
    Image.new("RGB", (2, 2)).save(locked)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user that ignores file permissions")
        with pytest.raises(ImageError, match="unreadable: permission denied"):
            load_rgb(locked)
    finally:
        locked.chmod(0o644)


def test_resize_square_keeps_the_centre() -> None:
    stripes = Image.new("RGB", (40, 20), (255, 0, 0))
    stripes.paste((0, 255, 0), (6, 0, 34, 20))  # the centre 20×20 plus the filter's reach
    stripes.paste((0, 0, 255), (34, 0, 40, 20))
    out = resize_square(stripes, 10)
    assert out.size == (10, 10)
    assert np.all(_pixels(out) == [0, 255, 0])
    tall = resize_square(Image.new("RGB", (10, 10_000), (9, 8, 7)), 64)
    assert tall.size == (64, 64) and np.all(_pixels(tall) == [9, 8, 7])
    assert resize_square(Image.new("RGB", (1, 1), (1, 2, 3)), 5).getpixel((4, 4)) == (1, 2, 3)


def test_resize_square_matches_resize_then_crop() -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).resize((300, 200))
    reference = img.resize((48, 32), Image.Resampling.BILINEAR).crop((8, 0, 40, 32))
    assert np.abs(_pixels(resize_square(img, 32)) - _pixels(reference)).mean() < 3


def test_large_jpeg_is_reduced_deterministically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((1600, 1200), Image.Resampling.BICUBIC).save(tmp_path / "big.jpg", quality=92)
    first = load_for_model(tmp_path / "big.jpg", 64)
    assert first.size == (64, 64)
    assert np.array_equal(_pixels(first), _pixels(load_for_model(tmp_path / "big.jpg", 64)))
    full = resize_square(load_rgb(tmp_path / "big.jpg"), 64)
    assert np.abs(_pixels(first) - _pixels(full)).mean() < 4  # the drafted decode is the same picture


def test_to_tensor_layout() -> None:
    img = Image.new("RGB", (5, 3), (10, 20, 30))
    img.putpixel((4, 2), (1, 2, 3))
    tensor = to_tensor(img)
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 3, 5) and tensor.is_contiguous()
    assert tensor[:, 2, 4].tolist() == [1, 2, 3] and tensor[:, 0, 0].tolist() == [10, 20, 30]
    assert to_tensor(Image.new("L", (2, 2), 7)).shape == (3, 2, 2)


def test_single_frame_gif_is_used_as_rgb(tmp_path: Path) -> None:
    """A palette GIF is an ordinary picture: its pixels, not a refusal."""
    Image.new("RGB", (10, 8), (30, 60, 180)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "blue.gif")
    img = load_rgb(tmp_path / "blue.gif")
    assert img.mode == "RGB" and img.size == (10, 8)
    assert tuple(int(v) for v in _pixels(img)[4, 5]) == (30, 60, 180)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.timeout(20)
def test_special_files_are_never_opened(tmp_path: Path) -> None:
    """A named pipe would block the reader until a writer comes; it must be refused at once."""
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "pipe.png")
    for name in ("pipe.png", "link.png"):
        with pytest.raises(ImageError, match="named pipe"):
            check_image(tmp_path / name)
    with pytest.raises(ImageError, match="device"):
        check_image("/dev/null")
