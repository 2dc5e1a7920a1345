"""A data folder full of the files real users have: odd modes, lies, damage and junk.

`make_hostile_folder` is shared by every test that reads a data folder (scan, cache,
trainer), so the whole pipeline is exercised against the same nastiness. It stays small
(a few hundred KB, well under a second to write) and still leaves "cats" and "dogs" with
enough usable images to train on.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

# Folder that exists but holds no image: must be reported, never become a class.
EMPTY_CLASS = "empty_class"
UNICODE_CLASS = "ünïcödé_猫"
BOMB_SIZE = (10_000, 10_000)  # 100 million pixels: over images.MAX_PIXELS, under Pillow's own hard error

# Words the scan's reason must contain for each bad file, so a vague message fails a test.
EXPECTED_REASONS: dict[str, str] = {
    "cats/corrupt.jpg": "not an image",
    "cats/truncated.jpg": "truncated",
    "cats/notes.txt": "not an image file (.txt)",
    "dogs/empty.png": "empty file",
    "dogs/text.png": "text",
    "dogs/bomb.png": "too large",
    "dogs/animated.gif": "animated GIF",
    "dogs/pipe.png": "named pipe",
}


def make_hostile_folder(root: Path) -> dict[str, str]:
    """Write the folder under `root` and return {relative POSIX path: expected outcome}.

    Outcomes: "ok" (usable image), "bad" (reported with a reason, see EXPECTED_REASONS),
    "hidden" (skipped silently, counted) and "stray" (a file beside the class folders).
    `EMPTY_CLASS` is an empty folder and so has no entry.
    """
    root = Path(root)
    rng = np.random.default_rng(1234)
    expected: dict[str, str] = {}

    def put(rel: str, outcome: str, write: Callable[[Path], object]) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        expected[rel] = outcome

    def photo(tint: tuple[int, int, int], size: tuple[int, int] = (24, 20)) -> Image.Image:
        noise = rng.integers(0, 60, size=(size[1], size[0], 3))
        return Image.fromarray(np.clip(noise + np.array(tint), 0, 255).astype(np.uint8), "RGB")

    red, blue = (180, 40, 30), (30, 60, 180)

    # cats: ordinary files, then the ones that must still be read correctly, then damage.
    for i in range(3):
        put(f"cats/cat_{i}.png", "ok", photo(red).save)
        put(f"cats/cat_{i + 3}.jpg", "ok", lambda p: photo(red).save(p, quality=90))
    put("cats/UPPER_CASE.PNG", "ok", photo(red).save)
    put("cats/nested/deeper/cat_deep.png", "ok", photo(red).save)
    put("cats/png_disguised.jpg", "ok", lambda p: photo(red).save(p, format="PNG"))
    put("cats/cmyk.jpg", "ok", lambda p: photo(red).convert("CMYK").save(p, format="JPEG"))
    put("cats/exif_rotated.jpg", "ok", _write_exif_rotated)
    put("cats/rgba.png", "ok", lambda p: _rgba(photo(red)).save(p))
    put("cats/corrupt.jpg", "bad", lambda p: p.write_bytes(rng.bytes(3000)))
    put("cats/truncated.jpg", "bad", lambda p: _write_truncated_jpeg(p, rng))
    put("cats/notes.txt", "bad", lambda p: p.write_text("shot on 3 May, lens 50mm\n"))
    put("cats/._cat_0.jpg", "hidden", lambda p: p.write_bytes(b"\x00\x05\x16\x07" + bytes(80)))

    # dogs: the mode zoo, extreme shapes and refusals.
    for i in range(4):
        put(f"dogs/dog_{i}.png", "ok", photo(blue).save)
    put("dogs/dog_4.jpg", "ok", lambda p: photo(blue).save(p, quality=90))
    put("dogs/gray16.png", "ok", lambda p: Image.fromarray(np.full((12, 16), 32768, np.uint16)).save(p))
    put("dogs/palette_transparent.png", "ok", _write_palette_transparent)
    put("dogs/bilevel.png", "ok", lambda p: photo(blue).convert("1").save(p))
    put("dogs/tiny_1x1.png", "ok", lambda p: Image.new("RGB", (1, 1), blue).save(p))
    put("dogs/wide_4000x3.png", "ok", lambda p: photo(blue, (4000, 3)).save(p))
    put("dogs/empty.png", "bad", lambda p: p.write_bytes(b""))
    put("dogs/text.png", "bad", lambda p: p.write_text("<html><body>404 Not Found</body></html>\n"))
    put("dogs/bomb.png", "bad", lambda p: write_bomb_png(p, *BOMB_SIZE))
    put("dogs/palette.gif", "ok", lambda p: photo(blue).convert("P").save(p))
    put("dogs/animated.gif", "bad", _write_animated_gif)
    if hasattr(os, "mkfifo"):  # reading a named pipe waits for a writer: a scan must never open one
        put("dogs/pipe.png", "bad", os.mkfifo)
    put("dogs/.DS_Store", "hidden", lambda p: p.write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64)))

    put(f"{UNICODE_CLASS}/снимок_ü.png", "ok", photo((40, 160, 40)).save)
    put(f"{UNICODE_CLASS}/写真.jpg", "ok", lambda p: photo((40, 160, 40)).save(p))

    (root / EMPTY_CLASS).mkdir(parents=True, exist_ok=True)
    put("README.txt", "stray", lambda p: p.write_text("photos from the 2023 survey\n"))
    put(".DS_Store", "hidden", lambda p: p.write_bytes(bytes(32)))
    return expected


def write_bomb_png(path: Path, width: int, height: int) -> None:
    """A valid all-black 1-bit PNG of any size in a few KB: the classic decompression bomb.

    Written chunk by chunk because Pillow would need the full canvas in memory to save it.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then packed black pixels
    packer = zlib.compressobj(9)
    rows_per_block = 256
    data = []
    for start in range(0, height, rows_per_block):
        data.append(packer.compress(row * min(rows_per_block, height - start)))
    data.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(data))
                     + _chunk(b"IEND", b""))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_exif_rotated(path: Path) -> None:
    """Stored 30 wide × 16 high with orientation 6: a viewer shows it 16 wide × 30 high."""
    img = Image.new("RGB", (30, 16), (200, 50, 50))
    img.paste((20, 20, 20), (0, 0, 5, 16))  # a dark band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, format="JPEG", exif=exif.tobytes(), quality=95)


def _write_truncated_jpeg(path: Path, rng: np.random.Generator) -> None:
    """A real JPEG cut in half, as an interrupted copy or download leaves it."""
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    full = path.with_suffix(".full")
    Image.fromarray(noise, "RGB").save(full, format="JPEG", quality=95)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])


def _write_palette_transparent(path: Path) -> None:
    """Index 0 is transparent: it must come out white, not the palette's black."""
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 30, 60, 180] + [0, 0, 0] * 254)
    img.paste(1, (4, 4, 12, 12))
    img.save(path, transparency=0)


def _write_animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def _rgba(img: Image.Image) -> Image.Image:
    """Left half fully transparent, right half opaque."""
    rgba = img.convert("RGBA")
    alpha = Image.new("L", img.size, 255)
    alpha.paste(0, (0, 0, img.width // 2, img.height))
    rgba.putalpha(alpha)
    return rgba
