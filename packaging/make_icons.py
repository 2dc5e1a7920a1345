"""Draw the application icon: studio/resources/icons/classification-studio.svg and PNGs at the usual sizes.

The SVG and the PNGs come from the same shapes listed below, so they stay alike. Run again after
changing a shape: python packaging/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "studio" / "resources" / "icons"
NAME = "classification-studio"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
BACKGROUND = "#24507a"
# Four labelled pictures sorted into two piles: (x, y, size, fill) on a 256 grid.
TILES = [(40, 44, 76, "#f2c14e"), (140, 44, 76, "#f2c14e"), (40, 140, 76, "#7cc6d6"), (140, 140, 76, "#7cc6d6")]
CHECK = [(156, 180), (174, 198), (204, 160)]  # a tick on the last tile: the model's answer


def svg() -> str:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">',
             f'  <rect x="8" y="8" width="240" height="240" rx="48" fill="{BACKGROUND}"/>']
    for x, y, s, fill in TILES:
        parts.append(f'  <rect x="{x}" y="{y}" width="{s}" height="{s}" rx="12" fill="{fill}"/>')
        parts.append(f'  <circle cx="{x + s * 0.32:.0f}" cy="{y + s * 0.34:.0f}" r="{s * 0.12:.0f}" fill="#ffffff" '
                     'fill-opacity="0.8"/>')
    points = " ".join(f"{x},{y}" for x, y in CHECK)
    parts.append(f'  <polyline points="{points}" fill="none" stroke="#1d7a3a" stroke-width="14" '
                 'stroke-linecap="round" stroke-linejoin="round"/>')
    return "\n".join(parts + ["</svg>", ""])


def png(size: int) -> Image.Image:
    scale = 4  # draw large, then shrink: smooth edges without an SVG renderer
    k = size * scale / 256
    img = Image.new("RGBA", (size * scale, size * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle([8 * k, 8 * k, 248 * k, 248 * k], radius=48 * k, fill=BACKGROUND)
    for x, y, s, fill in TILES:
        draw.rounded_rectangle([x * k, y * k, (x + s) * k, (y + s) * k], radius=12 * k, fill=fill)
        cx, cy, r = (x + s * 0.32) * k, (y + s * 0.34) * k, s * 0.12 * k
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 255, 255, 204))
    draw.line([(x * k, y * k) for x, y in CHECK], fill="#1d7a3a", width=round(14 * k), joint="curve")
    for x, y in (CHECK[0], CHECK[-1]):  # round caps
        r = 7 * k
        draw.ellipse([x * k - r, y * k - r, x * k + r, y * k + r], fill="#1d7a3a")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{NAME}.svg").write_text(svg(), encoding="utf-8")
    for size in SIZES:
        png(size).save(OUT / f"{NAME}-{size}.png", optimize=True)
    print(f"wrote {NAME}.svg and {len(SIZES)} PNGs to {OUT}")


if __name__ == "__main__":
    main()
