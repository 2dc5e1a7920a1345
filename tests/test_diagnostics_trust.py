"""Each diagnostic fires on a constructed run whose cause is known, and stays silent on a healthy run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studio.core.leakage import split_similarity
from studio.core.metrics import compute_metrics, diagnose, still_improving


def _rows(train_acc, val_acc, train_loss, val_loss):
    return [{"epoch": i + 1, "train_acc": ta, "val_acc": va, "train_loss": tl, "val_loss": vl, "lr": 0.001}
            for i, (ta, va, tl, vl) in enumerate(zip(train_acc, val_acc, train_loss, val_loss))]


def _metrics(correct: list[int], total: int = 20):
    n = len(correct)
    cm = np.zeros((n, n), dtype=np.int64)
    for i, ok in enumerate(correct):
        cm[i, i], cm[i, (i + 1) % n] = ok, total - ok
    return compute_metrics(cm, [f"c{i}" for i in range(n)])


BALANCED = {"c0": 60, "c1": 60, "c2": 60}
HEALTHY = _rows([0.80, 0.93, 0.97, 0.98, 0.98], [0.82, 0.92, 0.95, 0.95, 0.95],
                [0.6, 0.25, 0.12, 0.10, 0.10], [0.55, 0.28, 0.18, 0.19, 0.19])
UNDERTRAINED = _rows([0.40, 0.50, 0.57, 0.62], [0.42, 0.49, 0.55, 0.60], [1.3, 1.1, 0.95, 0.85],
                     [1.25, 1.08, 0.96, 0.86])
OVERFIT = _rows([0.7, 0.9, 0.99, 1.0], [0.62, 0.66, 0.66, 0.65], [0.8, 0.3, 0.05, 0.01], [0.9, 0.8, 0.9, 1.1])
CHANCE = _rows([0.34, 0.33, 0.35], [0.33, 0.34, 0.33], [1.1, 1.1, 1.1], [1.1, 1.1, 1.1])
NAN = _rows([0.5, 0.6], [0.5, 0.6], [0.9, math.nan], [0.9, math.nan])
LEAKY = _rows([0.9, 0.97, 0.99], [0.91, 0.97, 0.99], [0.3, 0.1, 0.05], [0.3, 0.1, 0.06])


def titles(found) -> set[str]:
    return {d.title for d in found}


def test_healthy_run_is_silent() -> None:
    assert titles(diagnose(HEALTHY, _metrics([19, 19, 19]), BALANCED, 3,
                           similarity={"near_copy_share": 0.0, "acc_near": None, "acc_far": 0.95})) \
        == {"No problems found"}


def test_undertrained_run_says_train_longer_and_blames_no_class() -> None:
    found = diagnose(UNDERTRAINED, _metrics([18, 4, 14]), BALANCED, 3)
    [more] = [d for d in found if d.title == "Still improving when training ended"]
    assert more.severity == "warning" and "Train longer" in more.advice and "about 10 minutes" in more.advice
    assert not any("often missed" in t for t in titles(found))
    assert still_improving(UNDERTRAINED) and not still_improving(HEALTHY)


def test_an_exact_solve_is_not_told_to_train_longer() -> None:
    # The rounds of a last layer solved exactly end where it converges: more time changes nothing.
    assert "Still improving when training ended" in titles(diagnose(UNDERTRAINED, _metrics([18, 4, 14]), BALANCED, 3))
    assert "Still improving when training ended" not in titles(
        diagnose(UNDERTRAINED, _metrics([18, 4, 14]), BALANCED, 3, solved=True))


def test_overfitting_is_not_called_still_improving() -> None:
    found = titles(diagnose(OVERFIT, _metrics([13, 13, 13]), BALANCED, 3))
    assert "Overfitting: training is far ahead of validation" in found
    assert "Still improving when training ended" not in found


@pytest.mark.parametrize("history, metrics, counts, title", [
    (CHANCE, _metrics([7, 7, 7]), BALANCED, "Accuracy is stuck at chance"),
    (NAN, None, BALANCED, "The loss became NaN"),
    (HEALTHY, _metrics([19, 19, 19]), {"c0": 300, "c1": 60, "c2": 60}, "Classes are imbalanced"),
])
def test_each_known_cause_fires_its_diagnostic(history, metrics, counts, title) -> None:
    assert title in titles(diagnose(history, metrics, counts, 3))


def test_leaky_split_is_named_in_plain_words() -> None:
    found = diagnose(LEAKY, _metrics([20, 20, 19]), BALANCED, 3,
                     similarity={"near_copy_share": 0.6, "acc_near": 1.0, "acc_far": 0.7})
    names = titles(found)
    assert "The split may leak: validation images have near-copies in training" in names
    assert "Accuracy is higher than the images' similarity justifies" in names
    leak = next(d for d in found if d.title.startswith("The split may leak"))
    assert "60%" in leak.detail and "Data page" in leak.advice
    quiet = diagnose(LEAKY, _metrics([20, 20, 19]), BALANCED, 3,
                     similarity={"near_copy_share": 0.02, "acc_near": 1.0, "acc_far": 0.98})
    assert not any("leak" in t or "similarity" in t for t in titles(quiet))


def test_split_similarity_counts_twins_and_accuracy_on_each_side() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 16)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    twins = train[:10] + 0.01 * rng.normal(size=(10, 16)).astype(np.float32)
    strangers = rng.normal(size=(10, 16)).astype(np.float32)
    evals = np.concatenate([twins, strangers])
    evals /= np.linalg.norm(evals, axis=1, keepdims=True)
    sim = split_similarity(train, evals, [True] * 10 + [True] * 5 + [False] * 5)
    assert sim["near_copy_share"] == pytest.approx(0.5)
    assert sim["acc_near"] == pytest.approx(1.0) and sim["acc_far"] == pytest.approx(0.5)


def test_advice_names_window_controls_not_setting_names() -> None:
    runs = [(UNDERTRAINED, _metrics([18, 4, 14])), (OVERFIT, _metrics([13, 13, 13])), (CHANCE, _metrics([7, 7, 7]))]
    for history, metrics in runs:
        for d in diagnose(history, metrics, {"c0": 300, "c1": 60, "c2": 8}, 3):
            for name in ("train.", "data.", "model.", "augment.", "_fraction", "weighted-loss"):
                assert name not in d.advice, (d.title, d.advice)


def test_evaluate_names_a_leaky_split_from_the_projects_features(tmp_path) -> None:
    """A run split without near-duplicate grouping on a folder of copies: Evaluate says the split may leak."""
    import shutil

    from studio.core.evaluate import evaluate_run
    from studio.core.features import FeatureStore
    from studio.core.train import Trainer
    from tests.conftest import make_colour_folder
    from tests.test_train import tiny_config

    data = make_colour_folder(tmp_path / "data", per_class=10, size=24)
    for png in sorted(data.rglob("*.png")):
        shutil.copy(png, png.with_name(png.stem + "_copy.png"))  # every picture twice
    project = tmp_path / "project"
    FeatureStore(project).embed_files(sorted(str(p) for p in data.rglob("*.png")))  # as the split's pass leaves them
    cfg = tiny_config(data, epochs=4)  # near-duplicate grouping off: copies land on both sides
    result = Trainer(cfg, project=project).run()
    assert result.status == "finished"
    found = {d.title for d in evaluate_run(result.run_dir, split="val").diagnostics}
    assert "The split may leak: validation images have near-copies in training" in found
