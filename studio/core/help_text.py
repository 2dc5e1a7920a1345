"""The words the Help menu shows: a short guide from images to a model, a glossary, the versions.

Plain text in core, so the window and the command line tell the same story in the same words,
and the words name the window's own pages and controls.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

GUIDE = (
    ("Data", "Put your images in one folder with one sub-folder per class, for example photos/cat and "
             "photos/dog, and choose that folder on the Data page; the studio checks every image and never "
             "changes, moves or writes anything in that folder."),
    ("Data", "The Data page lists how many usable images each class has and every file it cannot use, with "
             "the reason; aim for at least a few dozen images per class."),
    ("Model", "On the Model page choose a network: EfficientNet-Lite0 with ImageNet weights works offline and "
              "learns from few images, the custom CNN suits small, simple pictures."),
    ("Model", "What learns sets how much of a pretrained network adjusts: only the new last layer is quickest, "
              "two stages (the new layer first, then all) is the safe default."),
    ("Augment", "On the Augment page pick a preset that fits your pictures (Natural photos, Medical, Aerial) "
                "and look at the preview: every change must leave the class recognisable."),
    ("Train", "On the Train page set the epochs and press Start; the curves show loss and accuracy on the "
              "training and validation images after every epoch, and Pause and Stop keep what was learned."),
    ("Train", "When validation accuracy stops rising while training accuracy still climbs, the model is "
              "memorising: add images, turn augmentation on or stop earlier."),
    ("Evaluate", "The Evaluate page shows, for the best model of a run, the confusion matrix, precision and recall "
                 "per class and the images it gets most wrong; the held-out test images are the honest figure."),
    ("Predict", "On the Predict page drop new images or a folder to get the most likely classes with their "
                "probabilities, and export them as a CSV file."),
    ("Inspect", "The Inspect page shows how the network sees one image, block by block, which parts of it "
                "raised a class's score (Grad-CAM) and what each channel has learned to respond to."),
)

GLOSSARY = {
    "Epoch": "One pass over all training images. Training runs for a number of epochs; after each one the model "
             "is measured on the validation images.",
    "Training images": "The images the model learns from. It sees them again and again, so how well it does on "
                       "them says little about new images.",
    "Validation": "Images set aside from training and used after every epoch to measure progress and to choose "
                  "the best epoch. Because they choose the epoch, their accuracy is a little optimistic.",
    "Test": "Images held out from everything: neither training nor choosing settings reads them. Their accuracy "
            "is the honest estimate of how the model does on new images.",
    "Augmentation": "Random changes to training images (mirroring, tilting, zooming, light) so the model learns "
                    "the object, not one particular picture of it. Validation and test images are never changed.",
    "Learning rate": "How big a step each update of the network takes. Too high: the loss jumps about or becomes "
                     "NaN. Too low: learning is slow. The schedule lowers it during a run.",
    "Loss": "A number the training makes smaller: how wrong the model's probabilities are on average. Lower is "
            "better; compare training and validation loss to see memorising.",
    "Accuracy": "The share of images whose most likely class is the right one.",
    "Confusion matrix": "A table of true class (rows) against predicted class (columns): the diagonal holds the "
                        "right answers, every other cell one kind of mistake.",
    "Precision": "For one class: of the images the model called this class, the share that really are. High "
                 "precision means few false alarms.",
    "Recall": "For one class: of the images that really are this class, the share the model found. High recall "
              "means few misses.",
    "F1 and balanced score": "F1 combines precision and recall into one figure that is high only when both are. "
                             "The balanced score averages F1 over classes, so each class counts the same.",
    "Grad-CAM": "A heat map over an image showing which regions raised the score of a chosen class. It shows "
                "where the model looked, not whether it was right.",
    "Pretrained": "A network that already learned to see on a large photo collection (ImageNet, 1.2 million "
                  "photos). Starting from it, a model learns a new task from far fewer images.",
    "Pattern detector (channel)": "One of the many filters of a block: it responds where its pattern appears in "
                                  "the image. Early blocks find edges and colours, later ones parts of objects.",
    "Parameters": "The numbers a network learns. More parameters can learn more, but need more images and time.",
}


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The studio's version and those of what it runs on, for About and for bug reports."""
    found = {"Classification Studio": _version("classification-studio", "studio"),
             "Python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "Pillow", "matplotlib", "PySide6"):
        found[name] = _version(name, name)
    found.update(extra or {})
    found["System"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    return found


def _version(dist: str, module: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        mod = sys.modules.get(module)
        return str(getattr(mod, "__version__", "not installed"))
