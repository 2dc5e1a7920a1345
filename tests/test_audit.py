"""The audit: planted label flips rank first, planted copies are grouped, the folder is only read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from studio.core.audit import (
    dataset_map,
    find_outliers,
    odds_text,
    out_of_fold_probabilities,
    rank_suspects,
    run_audit,
)
from studio.core.cache import Cancelled
from studio.core.dataset import scan
from studio.core.features import FeatureStore
from tests.conftest import make_colour_folder, snapshot


def _clusters(n_per: int = 50, classes: int = 6, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 1.2
    labels = np.repeat(np.arange(classes), n_per)
    feats = centres[labels] + rng.normal(size=(len(labels), dim))
    return (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32), labels


def test_planted_flips_rank_first() -> None:
    feats, truth = _clusters()
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(truth), 15, replace=False)
    given = truth.copy()
    given[flipped] = (truth[flipped] + rng.integers(1, 6, size=15)) % 6
    classes = [f"c{i}" for i in range(6)]
    files = [f"f{i}" for i in range(len(truth))]
    suspects = rank_suspects(out_of_fold_probabilities(feats, given, 6), given, classes, files)
    ranked = [int(s.file[1:]) for s in suspects]
    n = len(flipped)
    # A random ranking would put about 5 % of the flips in either window.
    assert len(set(ranked[:n]) & set(flipped)) / n >= 0.7
    assert len(set(ranked[: 2 * n]) & set(flipped)) / n >= 0.85
    # The suggestion is the true class for most of them.
    right = sum(s.suggested == classes[truth[int(s.file[1:])]] for s in suspects[:n] if int(s.file[1:]) in flipped)
    assert right >= 0.8 * len(set(ranked[:n]) & set(flipped))


def test_one_image_class_is_not_judged_and_outliers_stand_out() -> None:
    feats, labels = _clusters(n_per=20, classes=3)
    feats = np.vstack([feats, -feats.mean(axis=0, keepdims=True) / np.linalg.norm(feats.mean(axis=0))])
    labels = np.append(labels, 3)
    files = [f"f{i}" for i in range(len(labels))]
    probs = out_of_fold_probabilities(feats, labels, 4)
    assert not np.isnan(probs).any()
    assert all(s.given != "d" for s in rank_suspects(probs, labels, ["a", "b", "c", "d"], files))
    assert [o["file"] for o in find_outliers(feats, files, limit=0.05)] == [files[-1]]
    assert dataset_map(feats).shape == (len(files), 2)


def test_audit_of_a_folder_finds_the_flip_and_the_copies(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=8, size=32)
    shutil.move(data / "red" / "red_03.png", data / "blue" / "red_03.png")
    shutil.copy(data / "green" / "green_01.png", data / "green" / "green_01_copy.png")
    shutil.copy(data / "green" / "green_02.png", data / "red" / "green_02_again.png")
    (data / "blue" / "broken.png").write_bytes(b"not a picture")
    before = snapshot(data)
    result = run_audit(scan(data), tmp_path / "project")
    assert snapshot(data) == before
    # The moved image stands out, beside the conflicting pair (either of which may be the wrong one).
    top = {s.file: (s.given, s.suggested) for s in result.suspected_labels[:3]}
    assert top["blue/red_03.png"] == ("blue", "red")
    assert set(top) - {"blue/red_03.png"} <= {"green/green_02.png", "red/green_02_again.png"}
    groups = {tuple(g.files): g.kind for g in result.duplicates}
    assert groups[("green/green_01.png", "green/green_01_copy.png")] == "same class"
    assert groups[("green/green_02.png", "red/green_02_again.png")] == "label conflict"
    assert any(s["file"] == "blue/broken.png" for s in result.skipped)
    data_dict = result.to_dict()
    assert {"file", "given", "suggested", "score"} <= set(data_dict["suspected_labels"][0])
    assert all(len(g) >= 2 for g in data_dict["duplicates"])


def test_cancelled_audit_leaves_only_whole_rows(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=4)
    with pytest.raises(Cancelled):
        run_audit(scan(data), tmp_path / "project", should_stop=lambda: True)
    assert not np.isnan(FeatureStore(tmp_path / "project").embed_files(sorted(data.rglob("*.png")))).any()


def test_clear_suspects_keep_their_order_instead_of_all_scoring_one() -> None:
    """A difference of probabilities shows 1.00 for every clear case; the likelihood ratio still ranks them."""
    given = np.array([0, 0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [1e-3, 1 - 1e-3], [1e-7, 1 - 1e-7],
                      [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    suspects = rank_suspects(probs, given, ["a", "b"], [f"f{i}" for i in range(7)])
    assert [s.file for s in suspects] == ["f3", "f2"]
    assert suspects[0].score == pytest.approx(7, abs=0.01) and suspects[1].score == pytest.approx(3, abs=0.01)
    assert odds_text(suspects[0].score) == "1.0·10⁷×" and odds_text(suspects[1].score) == "1,000×"
