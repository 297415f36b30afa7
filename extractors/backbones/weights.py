"""Finding, hashing and loading pretrained weights files, offline.

Shared by every backbone: the torch hub cache lookup (where torchvision and pytorchvideo would
have downloaded a checkpoint), a cached sha256 for provenance, and strict state-dict loading that
turns every failure into an error naming the file. Nothing here downloads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from aqa.errors import CorruptFileError, WeightsMismatchError, WeightsNotFoundError

log = logging.getLogger(__name__)


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url(url)`` keeps its download: ``<hub dir>/checkpoints/<file>``.

    ``torch.hub.get_dir()`` honours ``$TORCH_HOME`` (default ``~/.cache/torch``).
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def hub_cache_resolver(name: str, url: str) -> Callable[[], Path]:
    """A ``default_weights`` resolver: the torch hub cache file for ``url``, else a clear error.

    The error names both ways to provide the file: ``weights=PATH`` (``--weights``) and the cache
    path, plus the URL to fetch it from on a machine with internet.
    """

    def resolve() -> Path:
        cached = hub_checkpoint_path(url)
        if cached.is_file():
            return cached
        raise WeightsNotFoundError(
            f"{name}: no weights file. Pass weights=PATH (--weights PATH) or put the file at {cached} "
            f"(the torch hub cache, $TORCH_HOME/hub/checkpoints); download it from {url}"
        )

    return resolve


def load_torch_state_dict(path: Path, *, wrapper_key: str | None = None) -> dict[str, Tensor]:
    """A state dict from a torch file, loaded with ``weights_only=True`` (no code runs).

    ``wrapper_key``: checkpoints that nest the state dict (pytorchvideo's ``{"model_state": ...}``)
    are unwrapped when the key is present; a bare state dict is accepted too.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, or a pickle with code in it
        raise CorruptFileError(f"{path}: not a loadable torch weights file ({type(exc).__name__}: {exc})") from exc
    if wrapper_key is not None and isinstance(loaded, Mapping) and wrapper_key in loaded:
        loaded = loaded[wrapper_key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CorruptFileError(f"{path}: expected a state dict of tensors, found {type(loaded).__name__}")
    return dict(loaded)


def load_state_dict_strictly(module: nn.Module, state_dict: Mapping[str, Tensor], source: Path) -> None:
    """``module.load_state_dict(strict=True)`` with shape checks first, failing with the keys named.

    Works on a module built under ``torch.device("meta")`` (the tensors are assigned, not copied).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = [
        f"{key} {tuple(state_dict[key].shape)} != {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(state_dict))
        if state_dict[key].shape != own[key].shape
    ]
    problems = [
        f"{label}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''} ({len(items)})"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped))
        if items
    ]
    if problems:
        raise WeightsMismatchError(f"{source} does not fit {type(module).__name__}: {'; '.join(problems)}")
    # assign=True also fills a module built on the meta device; keep the module's dtype and device.
    placed = {
        key: value.to(dtype=own[key].dtype, device=value.device if own[key].is_meta else own[key].device)
        for key, value in state_dict.items()
    }
    module.load_state_dict(placed, strict=True, assign=True)
