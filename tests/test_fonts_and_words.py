"""Figures a person reads: plain axis units, class names in any script the system has a font for; counts in words."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from studio.core import fonts
from studio.core.evaluation_report import plot_confusion
from studio.core.words import axis_scale, count, fraction, plain_number, power_of_ten


def test_counts_and_units_read_as_words() -> None:
    assert count(0, "class folder") == "0 class folders" and count(1, "class folder") == "1 class folder"
    assert count(2, "class", "classes") == "2 classes"
    assert plain_number(5124) == "5,124" and plain_number(3_376_132) == "3.4 million"
    assert fraction(0.1) == "1/10 of the" and fraction(1) == "the full"
    assert power_of_ten(-4) == "× 10⁻⁴"
    assert axis_scale([3e-4, 1e-4, 2.5e-5]) == (pytest.approx(1e-4), "× 10⁻⁴")
    assert axis_scale([0.1, 0.05]) == (1.0, "")


def test_fallback_fonts_follow_the_default_one() -> None:
    listed = fonts.use_system_fonts()
    assert listed[0] == "DejaVu Sans"
    assert list(listed[1:1 + len(fonts.available_fallbacks())]) == list(fonts.available_fallbacks())
    assert matplotlib.rcParams["font.family"][-1] == "sans-serif"
    assert fonts.use_system_fonts() == listed  # idempotent
    assert fonts.missing_glyphs("Latin, Ελληνικά, кириллица") == ""


def _drawn(text: str, family: list[str] | None = None) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1), dpi=50)
    figure.text(0.1, 0.3, text, fontsize=30, **({"family": family} if family else {}))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


@pytest.mark.filterwarnings("ignore:Glyph")
def test_cjk_class_names_draw_when_the_system_has_a_cjk_font(tmp_path) -> None:
    if not any("CJK" in name or "Hei" in name for name in fonts.available_fallbacks()):
        pytest.skip("no CJK font on this system (Debian: apt-get install fonts-noto-cjk)")
    assert fonts.missing_glyphs("組織 咖啡杯") == ""
    fonts.use_system_fonts()
    # DejaVu Sans alone draws "組" and "織" as the same empty box; with the fallback they are two glyphs.
    assert np.array_equal(_drawn("組", ["DejaVu Sans"]), _drawn("織", ["DejaVu Sans"]))
    assert not np.array_equal(_drawn("組"), _drawn("織"))
    plot_confusion(np.array([[3, 1], [0, 4]]), ["組織 tissue", "咖啡杯"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_cli_reaches_the_backbone_rate_first_stage_and_one_gpu(tmp_path) -> None:
    from studio.cli import _config_from_args, build_parser
    from studio.core.config import ConfigError

    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--backbone-lr-scale", "0.25",
                                      "--head-epochs", "3", "--device", "cuda:1"])
    cfg = _config_from_args(args)
    assert (cfg.train.backbone_lr_scale, cfg.train.head_epochs, cfg.train.device) == (0.25, 3, "cuda:1")
    cfg.train.validate()
    cfg.train.device = "gpu"
    with pytest.raises(ConfigError, match="train.device"):
        cfg.train.validate()
