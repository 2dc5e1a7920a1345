"""Metrics against values worked out by hand, and diagnostics that say the right thing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from studio.core.metrics import (
    compute_metrics,
    confusion_matrix,
    diagnose,
    most_wrong,
    per_class_metrics,
)

# rows true, columns predicted:      pred 0  1  2
Y_TRUE = [0, 0, 0, 1, 1, 2]  # true 0: 2  1  0
Y_PRED = [0, 0, 1, 1, 2, 2]  # true 1: 0  1  1
#                                   true 2: 0  0  1


def test_confusion_matrix_and_per_class_metrics_match_hand_computed_values() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    rows = per_class_metrics(cm, ["a", "b", "c"])
    assert [r.name for r in rows] == ["a", "b", "c"]
    assert [r.precision for r in rows] == pytest.approx([1.0, 0.5, 0.5])
    assert [r.recall for r in rows] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [r.f1 for r in rows] == pytest.approx([0.8, 0.5, 2 / 3])
    assert [r.support for r in rows] == [3, 2, 1] and [r.predicted for r in rows] == [2, 2, 2]
    m = compute_metrics(cm, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.macro_precision == pytest.approx(2 / 3)
    assert m.macro_recall == pytest.approx(13 / 18)
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m.weighted_f1 == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)
    assert m.total == 6
    assert m.to_dict()["confusion"] == cm.tolist()


def test_empty_classes_give_zeros_without_warnings_and_do_not_drag_macro_averages() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = confusion_matrix(Y_TRUE, Y_PRED, 4)  # class 3: never true, never predicted
        m = compute_metrics(cm)
        empty = compute_metrics(confusion_matrix([], [], 2))
    assert m.per_class[3].precision == m.per_class[3].recall == m.per_class[3].f1 == 0.0
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert empty.accuracy == 0.0 and empty.total == 0
    # A class predicted but never true counts in the macro average (with recall 0), as in scikit-learn.
    m2 = compute_metrics(confusion_matrix([0, 0], [0, 1], 2))
    assert m2.per_class[1].precision == 0.0 and m2.macro_precision == pytest.approx(0.5)


def test_metrics_agree_with_scikit_learn_on_random_labels() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    m = compute_metrics(confusion_matrix(t, p, 5))
    assert m.macro_f1 == pytest.approx(sklearn.f1_score(t, p, average="macro"))
    assert m.weighted_f1 == pytest.approx(sklearn.f1_score(t, p, average="weighted"))
    assert [r.precision for r in m.per_class] == pytest.approx(list(sklearn.precision_score(t, p, average=None)))


def test_confusion_matrix_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix([0, 1], [0], 3)


def test_most_wrong_ranked_by_confidence_in_the_wrong_answer() -> None:
    paths = ["a.png", "b.png", "c.png", "d.png"]
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.05, 0.95], [0.45, 0.55]])
    wrong = most_wrong(paths, [0, 0, 0, 1], probs, k=5)
    assert [w.path for w in wrong] == ["c.png", "b.png"]  # d is right; a is right
    assert wrong[0].true == 0 and wrong[0].predicted == 1
    assert wrong[0].p_predicted == pytest.approx(0.95) and wrong[0].p_true == pytest.approx(0.05)
    assert len(most_wrong(paths, [0, 0, 0, 1], probs, k=1)) == 1
    assert most_wrong([], [], np.zeros((0, 2))) == []


def _history(train: list[float], val: list[float], loss: float = 0.5) -> list[dict]:
    return [{"epoch": i + 1, "train_loss": loss, "train_acc": t, "val_loss": loss, "val_acc": v, "lr": 0.01}
            for i, (t, v) in enumerate(zip(train, val))]


def _metrics(acc_per_class: list[tuple[int, int]]):
    """(correct, total) per class; mistakes go to the next class."""
    n = len(acc_per_class)
    cm = np.zeros((n, n), dtype=np.int64)
    for i, (ok, total) in enumerate(acc_per_class):
        cm[i, i] = ok
        cm[i, (i + 1) % n] = total - ok
    return compute_metrics(cm, [f"c{i}" for i in range(n)])


BALANCED = {"c0": 40, "c1": 40, "c2": 40}


def titles(found) -> list[str]:
    return [d.title for d in found]


def test_diagnose_stuck_at_chance() -> None:
    found = diagnose(_history([0.34, 0.33, 0.35], [0.33, 0.34, 0.33]), _metrics([(4, 12), (4, 12), (4, 12)]),
                     BALANCED, 3)
    assert found[0].severity == "error" and found[0].title == "Accuracy is stuck at chance"
    assert "learning rate" in found[0].advice


def test_diagnose_overfitting_suggests_augmentation_and_pretrained_backbone() -> None:
    found = diagnose(_history([0.7, 0.9, 0.99], [0.6, 0.65, 0.7]), _metrics([(9, 12), (8, 12), (8, 12)]),
                     BALANCED, 3)
    [over] = [d for d in found if d.title.startswith("Overfitting")]
    assert over.severity == "warning"
    assert "augmentation" in over.advice and "pretrained" in over.advice
    assert "99%" in over.detail


def test_diagnose_memorised_training_set_at_chance_on_validation() -> None:
    found = diagnose(_history([0.8, 1.0], [0.33, 0.3]), _metrics([(4, 12), (4, 12), (4, 12)]), BALANCED, 3)
    assert found[0].title == "Training images are learned, new ones are not"


def test_diagnose_nan_loss_from_history_and_from_the_run_message() -> None:
    hist = _history([0.5, 0.6], [0.5, 0.6])
    hist.append({"epoch": 3, "train_loss": math.nan, "train_acc": 0.3, "val_loss": None, "val_acc": None, "lr": 0.1})
    found = diagnose(hist, None, BALANCED, 3)
    assert found[0].severity == "error" and found[0].title == "The loss became NaN"
    assert "epoch 3" in found[0].detail and "0.001" in found[0].advice  # a tenth of the first lr
    by_message = diagnose(_history([0.5], [0.5]), None, BALANCED, 3,
                          message="Training stopped: the loss became NaN (not a number) at epoch 2")
    assert "The loss became NaN" in titles(by_message)
    assert "The loss became NaN" not in titles(diagnose(_history([0.9], [0.9]), None, BALANCED, 3))


def test_diagnose_small_and_imbalanced_classes() -> None:
    good = _history([0.95, 0.97], [0.94, 0.96])
    found = diagnose(good, _metrics([(40, 40), (5, 5), (10, 10)]), {"c0": 120, "c1": 6, "c2": 30}, 3)
    [small] = [d for d in found if d.title == "Some classes have very few images"]
    assert "c1 (6)" in small.detail and "c0" not in small.detail
    [imb] = [d for d in found if d.title == "Classes are imbalanced"]
    assert imb.severity == "warning" and "Class sizes: weighted loss" in imb.advice and "20.0×" in imb.detail
    already = diagnose(good, None, {"c0": 120, "c1": 30}, 2, imbalance_setting="weighted-loss")
    [imb] = [d for d in already if d.title == "Classes are imbalanced"]
    assert imb.severity == "info" and "already on" in imb.advice


def test_diagnose_names_a_missed_class_and_what_it_is_taken_for() -> None:
    found = diagnose(_history([0.9, 0.92], [0.85, 0.86]), _metrics([(20, 20), (4, 20), (20, 20)]), BALANCED, 3)
    [weak] = [d for d in found if d.title == "c1 is often missed"]
    assert "20%" in weak.detail and "taken for c2" in weak.detail


def test_diagnose_healthy_run_reports_no_problems_and_is_json_ready() -> None:
    import json

    found = diagnose(_history([0.9, 0.97], [0.93, 0.95]), _metrics([(19, 20), (20, 20), (19, 20)]), BALANCED, 3)
    assert titles(found) == ["No problems found"]
    json.dumps([d.to_dict() for d in found])
