"""The one way an image file becomes pixels.

Training, evaluation, prediction and the folder scan all decode through this
module, so an image looks the same to the model wherever it is read, and a bad
file is refused the same way everywhere: with an `ImageError` naming the file
and a reason a person can act on, never a raw Pillow exception.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import (  # noqa: F401 - imported to register the decoders in _FORMATS
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from studio.core.errors import ImageError

if TYPE_CHECKING:
    import torch

# The extensions torchvision's ImageFolder accepts, so a folder scans the same here and there, plus
# GIF: single-frame GIFs are ordinary (palette) images that users do have in their folders.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
                                     ".gif")

# Pillow's own default, enforced here so the refusal is a reason rather than a warning.
# Read at call time: tests and power users may change it.
MAX_PIXELS: int = 89_478_485

RESIZE_RULE = "shorter-side-then-center-crop"
# How load_for_model decodes before resizing: a JPEG draft at no less than twice the target size.
DRAFT_RULE = "jpeg-draft-at-least-2x"

# Only decoders for ordinary raster formats run on a user's files; Pillow would otherwise
# hand a file that merely claims to be an image to plugins such as EPS, which shells out
# to Ghostscript. Multi-picture camera JPEGs (MPO) open through "JPEG"; GIF is harmless.
# Importing a plugin registers it; `Image.open(formats=...)` does not load them itself.
_FORMATS = tuple(name for name in ("JPEG", "PNG", "PPM", "BMP", "DIB", "TIFF", "WEBP", "GIF")
                 if name in Image.OPEN)

# First bytes of the formats above: a file that starts like an image but fails to open is
# damaged, not "not an image".
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"P1", b"P2",
          b"P3", b"P4", b"P5", b"P6")

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# warnings.catch_warnings swaps process-wide state; two threads entering it at once can leave
# a filter behind. The guarded region (header parsing only) is short, so a lock costs nothing.
_WARNINGS_LOCK = threading.Lock()


def has_image_extension(name: str) -> bool:
    """Case-insensitive, because cameras and Windows both write `.JPG`."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def load_rgb(path: str | Path) -> Image.Image:
    """Decode a file fully into an upright RGB image, or raise `ImageError`."""
    img, _ = _decode(path, None)
    return img


def as_rgb(img: Image.Image) -> Image.Image:
    """An image already in memory (pasted, dragged from another program) made upright RGB.

    The same orientation and mode rules as for files, so a picture gets the same answer
    whether it arrives as a file or from the clipboard.
    """
    orientation = _orientation(img)
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    return _to_rgb(img)


def load_for_model(path: str | Path, size: int) -> Image.Image:
    """The preprocessing every consumer of a model shares, so train and predict see equal pixels.

    A JPEG is decoded at a reduced scale (libjpeg's exact 1/2, 1/4, 1/8 steps) that keeps
    the shorter side at least twice `size`: a 24-megapixel photo then costs a fraction of
    a full decode, and the result is still the same for the same file every time.
    """
    img, _ = _decode(path, (size * 2, size * 2))
    return resize_square(img, size)


def check_image(path: str | Path, *, decode: bool = True) -> tuple[int, int]:
    """Return the upright (width, height) of a usable image, or raise `ImageError`.

    With `decode`, every byte of pixel data is decoded (at the smallest JPEG scale), which is
    the only way to find a truncated file; without it only the header is read.
    """
    _, size = _decode(path, (1, 1), decode=decode)
    return size


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size`, then keep the centre square.

    The crop box is worked out in source coordinates and only that region is resampled,
    so a 10000×10 strip never becomes a 2,000,000-pixel-wide intermediate.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    width, height = img.size
    side = min(width, height)
    left = (width - side) / 2
    top = (height - side) / 2
    box = (left, top, left + side, top + side)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """uint8 [3, H, W]; a writable copy, because torch warns on read-only numpy memory.

    torch is imported here, not at the top, so `studio scan`, `runs` and `sample` (which only
    check and list images) start in well under a second instead of paying torch's import.
    """
    import torch
    if img.mode != "RGB":
        img = _to_rgb(img)
    array = np.array(img, dtype=np.uint8, copy=True)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _decode(path: str | Path, draft: tuple[int, int] | None, *, decode: bool = True
            ) -> tuple[Image.Image, tuple[int, int]]:
    """Open, bound-check, decode, orient and convert; every failure becomes an ImageError."""
    with _open_file(path) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        img = _open(file, path)
        if img.format == "GIF" and getattr(img, "n_frames", 1) > 1:
            # Which frame is "the" picture is a guess; a silent guess would train on the wrong pixels.
            raise ImageError(path, "animated GIF: save the frame you mean as a still image")
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise ImageError(path, _too_large(f"{width}×{height}", MAX_PIXELS))
        orientation = _orientation(img)
        upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        if not decode:
            return img, upright
        try:
            if draft is not None:
                img.draft("RGB", draft)
            img.load()
        except MemoryError:
            raise ImageError(path, "too large to decode (out of memory)") from None
        except Exception:  # Pillow reports bad data as OSError, SyntaxError, struct.error, EOFError, ...
            raise ImageError(path, "corrupt or truncated image data") from None
    if orientation in _TRANSPOSE:
        img = _forget_orientation(img.transpose(_TRANSPOSE[orientation]))
    try:
        return _to_rgb(img), upright
    except ValueError:
        raise ImageError(path, f"unsupported colour mode {img.mode}") from None


def _forget_orientation(img: Image.Image) -> Image.Image:
    """Drop the orientation tag from pixels already turned upright.

    The transposed image keeps the file's EXIF, and `as_rgb` honours that tag for a picture in hand:
    without this, a decoded phone photo handed on as a picture (the reference network's view of a
    file at predict time) was turned a second time.
    """
    img.info.pop("exif", None)
    with contextlib.suppress(Exception):  # a broken EXIF block has no tag to drop
        img.getexif().pop(0x0112, None)
    return img


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                  (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"))


def special_file_reason(mode: int) -> str:
    """Why a non-regular file is skipped: reading a pipe or a device can block forever."""
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
    return f"unreadable: it is {kind}, not a file" if kind != "not a regular file" else f"unreadable: {kind}"


def _open_file(path: str | Path) -> BinaryIO:
    """Open only a regular file (after following links), without ever blocking.

    The mode is checked before opening and again on the open descriptor: opening a named pipe
    for reading waits for a writer, and a device can do anything, so neither is ever read.
    O_NONBLOCK makes even a file swapped for a pipe between the two checks return at once.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(path, special_file_reason(mode))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageError(path, _os_reason(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ImageError(path, special_file_reason(mode))
    return os.fdopen(fd, "rb")


def _open(file: BinaryIO, path: str | Path) -> Image.Image:
    """Parse the header, turning Pillow's own bomb warning and error into our reason."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file, formats=_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow refuses before we see the size; its message carries the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        amount = f"{int(found.group(1)) / 1_000_000:.0f} million" if found else "too many"
        raise ImageError(path, _too_large(amount, MAX_PIXELS)) from None
    except UnidentifiedImageError:
        raise ImageError(path, _unidentified_reason(file)) from None
    except MemoryError:
        raise ImageError(path, "too large to decode (out of memory)") from None
    except (OSError, ValueError, EOFError, SyntaxError, struct.error):  # a plugin choked on the header
        raise ImageError(path, "corrupt image data (damaged header)") from None


def _unidentified_reason(file: BinaryIO) -> str:
    file.seek(0)
    head = file.read(512)
    if head.startswith(_MAGIC):
        return "corrupt image data (damaged header)"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "not an image: the file holds text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a multi-byte character cut by the 512-byte window
                return "not an image: the file holds text"
    return "not an image: unrecognised or corrupt data"


def _orientation(img: Image.Image) -> int:
    """EXIF orientation, or 1 when absent or unreadable: viewers ignore broken EXIF too."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
        return value if value in _TRANSPOSE else 1
    except Exception:
        return 1


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB the way a person would expect to see it.

    Transparency is composited on white (how viewers and browsers show it); high bit-depth
    images are rescaled, not clipped, because Pillow's own I;16 -> L conversion saturates
    anything above 255 and turns a mid-gray 16-bit scan white.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(img).convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Map 16/32-bit integer and float pixels to 0..255 by the range the format implies.

    I;16 is 16-bit by definition. Pillow's "I" and "F" carry no range, so PNG/PPM ("I" is
    their 16-bit grayscale) count as 16-bit, floats within 0..1 as unit range, and anything
    else by its values: up to 255 as is, up to 65535 as 16-bit, beyond that its own min..max.
    """
    values = np.asarray(img, dtype=np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format in ("PNG", "PPM")):
        scaled = values / 257.0
    elif img.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _too_large(amount: str, limit: int) -> str:
    shown = f"{limit / 1_000_000:.0f} million" if limit >= 1_000_000 else f"{limit:,}"
    return f"too large: {amount} pixels (limit {shown})"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "unreadable: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "unreadable: it is a folder"
    if isinstance(exc, FileNotFoundError):
        return "unreadable: file not found"
    return f"unreadable: {(exc.strerror or str(exc)).lower()}"
