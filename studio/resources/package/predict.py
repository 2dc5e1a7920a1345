"""Classify images with this model package. Needs only onnxruntime, Pillow and numpy.

    pip install onnxruntime pillow numpy
    python predict.py photo.jpg more_photos/ [--top-k 3] [--json]

Prints, for each image, the most likely classes with their calibrated probabilities and whether
the image is like the model's training images: the same answers, in the same format, as
`studio predict` gives for the model this package was made from.

model.onnx resizes, normalizes and applies softmax itself; it takes RGB images (uint8, 0..255,
shape [N, 3, H, W]). What a graph cannot do happens here, exactly as the studio does it:
EXIF orientation, transparency shown on white, 16-bit images scaled to 8 bits, and the
studio's resize (shorter side to the model's size, centre square, PIL's bilinear filter).
When model.json has a "reference_input", the familiarity check looks at the image through a second
network at its own size: the file is prepared a second time at that size and given as that input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = Path(__file__).resolve().parent
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}


def orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF: viewers ignore it, so do we
        return 1
    return value if value in TRANSPOSE else 1


def eight_bit(img: Image.Image) -> Image.Image:
    """16/32-bit and float pixels to 0..255 by the range the format implies (not clipped)."""
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format in ("PNG", "PPM")):
        values = values / 257.0
    elif img.mode == "F" and low >= 0.0 and high <= 1.0:
        values = values * 255.0
    elif not (low >= 0.0 and high <= 255.0):
        values = values / 257.0 if low >= 0.0 and high <= 65535.0 else (values - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def rgb(img: Image.Image) -> Image.Image:
    """Any mode to RGB as a viewer shows it: transparency on white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return eight_bit(img).convert("RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def prepare(path: str | Path, size: int) -> np.ndarray:
    """uint8 [3, size, size]: decoded, upright, RGB, and resized the way the studio does it."""
    with Image.open(path) as img:
        if img.format == "GIF" and getattr(img, "n_frames", 1) > 1:
            raise ValueError("animated GIF: save the frame you mean as a still image")
        turn = orientation(img)
        img.draft("RGB", (size * 2, size * 2))  # big JPEGs decode at 1/2..1/8 scale, as in the studio
        img.load()
        if turn in TRANSPOSE:
            img = img.transpose(TRANSPOSE[turn])
        img = rgb(img)
    width, height = img.size
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


class Model:
    def __init__(self, folder: Path = HERE) -> None:
        self.info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        self.classes: list[str] = self.info["classes"]
        self.size = int(self.info["preprocessing"]["image_size"])
        self.session = ort.InferenceSession(str(folder / self.info["model_file"]), providers=["CPUExecutionProvider"])
        familiarity = self.info.get("familiarity") or {}
        self.space = familiarity.get("space", "") if familiarity.get("output") else ""
        self.space_words = familiarity.get("space_meaning", "")
        reference = self.info.get("reference_input") or {}
        self.reference_size = int(reference["image_size"]) if reference else 0

    def probabilities(self, pixels: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """uint8 [N, 3, H, W] → float [N, classes], calibrated as in the studio."""
        return self.answer(pixels, reference)[0]

    def answer(self, pixels: np.ndarray, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities, and the unfamiliarity score when the model has one (above 1: unlike its training images).

        `reference`: the images at `reference_size`, for a model whose check looks through the second network.
        """
        feeds = {self.info["input"]["name"]: pixels}
        if self.reference_size:
            if reference is None:
                raise ValueError(f"this model also needs the images at {self.reference_size} px")
            feeds[self.info["reference_input"]["name"]] = reference
        outputs = self.session.run(None, feeds)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.classes[i], float(probs[i])) for i in order]


def expand(inputs: list[str]) -> list[Path]:
    """Files as given; folders walked in sorted order, hidden entries skipped (as the studio does)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(Path(dirpath) / f for f in sorted(filenames)
                       if not f.startswith(".") and f.lower().endswith(EXTENSIONS))
    return out


LIMIT = 1.0  # model.json: familiarity.threshold
UNFAMILIAR = "Not like the training images — treat the answer with care"


def line(r: dict) -> str:
    """One image's answer, worded as `studio predict` words it."""
    if r["error"]:
        return f"{r['path']}: unusable — {r['error']}"
    classes = ", ".join(f"{c} {100 * v:.1f}%" for c, v in r["top"])
    if r["unfamiliar"]:
        return f"{r['path']}: UNFAMILIAR (score {r['unfamiliar_score']:.2f}) — {UNFAMILIAR}; its guess: {classes}"
    if r["unfamiliar"] is None:
        return f"{r['path']}: {classes}"
    return f"{r['path']}: {classes} (familiar, score {r['unfamiliar_score']:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with this model package.")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_or_DIR")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the answers as JSON")
    args = parser.parse_args(argv)
    model = Model()
    if model.space and not args.json:
        print(f"note: each image is compared with the training images by {model.space_words}", file=sys.stderr)
    results = []
    for path in expand(args.inputs):
        try:
            pixels = prepare(path, model.size)[None]
            reference = prepare(path, model.reference_size)[None] if model.reference_size else None
        except Exception as exc:  # one unreadable file must not stop the rest
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            results.append({"path": str(path), "top": [], "error": reason, "unfamiliar": None,
                            "unfamiliar_score": None, "compared_with": ""})
            continue
        probs, score = model.answer(pixels, reference)
        value = None if score is None else float(score[0])
        results.append({"path": str(path), "top": model.top(probs[0], args.top_k), "error": "",
                        "unfamiliar": None if value is None else value > LIMIT, "unfamiliar_score": value,
                        "compared_with": model.space if value is not None else ""})
    for r in results if not args.json else []:
        print(line(r))
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if results and all(r["error"] for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `python predict.py ... | head`: the reader left
        sys.stderr.close()
