"""Running the bundled backbone fast: ONNX Runtime when this install has it, else PyTorch.

The feature pass (one EfficientNet-Lite0 forward per image) is the largest fixed cost of a
run: leak-free splitting, the unfamiliar-image check and the audit all need it. On a 2-core
CPU, ONNX Runtime ran this network 2.6-4x faster than PyTorch's eager mode, with features
equal to 1e-5 (benchmarks/feature_engine.py), so it is used whenever it can be: the graph is
exported once per weights file into the user's cache folder. Any failure on that path (no
onnxruntime, an exporter that refuses) falls back to PyTorch: slower, never wrong.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

Engine = Callable[[np.ndarray], np.ndarray]  # float32 [n,3,S,S], normalised -> float32 [n,1280]
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def network() -> torch.nn.Module:
    """The backbone without its classifier, built once per process (about 15 MB of weights)."""
    from studio.core.effnet_lite import lite0_features
    from studio.core.weights import imagenet_state_dict

    net, _, _ = lite0_features(imagenet_state_dict("efficientnet_lite0"))
    # channels_last: the depthwise convolutions run about 1.5x faster on CPU in this layout.
    return net.eval().to(memory_format=torch.channels_last)


def torch_engine(x: np.ndarray) -> np.ndarray:
    with _LOCK, torch.inference_mode():
        tensor = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        return network()(tensor).float().numpy()


@functools.lru_cache(maxsize=4)  # one graph per input size a process meets: 160 px, and small images' own
def engine(weights_identity: str, input_size: int) -> tuple[Engine, str]:
    """(the function that runs the backbone, "onnxruntime" or "pytorch")."""
    try:
        return _session_engine(_graph_file(weights_identity, input_size)), "onnxruntime"
    except Exception:  # noqa: BLE001 — any failure here only costs speed
        return torch_engine, "pytorch"


def _session_engine(graph: Path) -> Engine:
    """An exported graph run by ONNX Runtime on the CPU, as many threads as PyTorch uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # honours OMP_NUM_THREADS like PyTorch does
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixels": np.ascontiguousarray(x, dtype=np.float32)})[0]

    return run


def _graph_file(weights_identity: str, input_size: int) -> Path:
    """The exported graph, made once per weights file and input size and kept in the user's cache."""
    key = hashlib.sha256(f"{weights_identity}|{input_size}|{torch.__version__}".encode()).hexdigest()[:16]
    return _exported(network(), _graph_folder() / f"lite0-features-{key}.onnx", input_size)


def _graph_folder() -> Path:
    from studio.core.userdirs import cache_folder

    return Path(os.environ.get("STUDIO_BACKBONE_DIR") or cache_folder() / "backbone")  # override: a shared copy


def _exported(net: torch.nn.Module, path: Path, input_size: int) -> Path:
    from studio.core.atomic import write_bytes

    if not path.is_file():
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(1, 3, input_size, input_size),), buffer, dynamo=False,
                              input_names=["pixels"], output_names=["features"],
                              dynamic_axes={"pixels": {0: "images"}, "features": {0: "images"}})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getvalue())
    return path


def frozen_engine(backbone: torch.nn.Module, input_size: int) -> Engine | None:
    """ONNX Runtime for a run's frozen backbone, whose features are computed once per image; None where it
    cannot run (no onnxruntime, an exporter that refuses): the caller then uses PyTorch.

    Lite0 reading every stage ran at 220 images/s here against 80 in PyTorch (2 cores, 160 px), equal to
    1e-6 of the largest feature. The graph is keyed by the backbone's own weights, so whatever froze it
    (ImageNet weights, a checkpoint) gets its own, exported once (about 1 s) and kept in the user's cache.
    """
    was_training = backbone.training
    try:
        digest = hashlib.sha256(f"{type(backbone).__name__}|{input_size}|{torch.__version__}".encode())
        for name, tensor in backbone.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        path = _graph_folder() / f"frozen-{digest.hexdigest()[:20]}.onnx"
        backbone.eval()
        return _session_engine(_exported(backbone, path, input_size))
    except Exception:  # noqa: BLE001 — any failure here only costs speed
        return None
    finally:
        backbone.train(was_training)
