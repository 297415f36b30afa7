"""Checkpoints of trained heads: written by aqa-train, read by aqa-predict, never unpickled as code.

A checkpoint is one ``torch.save``'d dict of tensors and plain containers only, so it loads with
``torch.load(weights_only=True)`` and a file from a stranger cannot run code. Layout::

    format            "aqa-checkpoint"        format_version   1
    package_version   aqa version that wrote it
    head_name         registry name ("cofinal", "mlp", ...)
    head_config       the head's config as plain data (rebuilt with aqa.config.config_from_dict)
    input_dim         D' the head takes (2 D when streams == "both")
    streams           how scene/actor features become the head's input (models.streams)
    score_name        the score this head predicts ("TES", "total", ...)
    normalizer        {"low", "high"}: the training range that maps scores to [0, 1)
    provenance        what made the training features (data.provenance.Provenance.to_dict())
    config            the resolved aqa-train config     config_hash   its short sha256
    state_dict        {name: tensor}, fixed buffers included (CoFInAl's ETF)
    extra             plain data: seed, selected epoch, selection rule, metrics; for an ensemble
                      members (the member labels, in the order of its member_scores); for a pairwise head
                      exemplar_names (the training videos in its exemplar bank, in bank order; the
                      bank's features, scores and groups are buffers in state_dict)
    description       optional: the model's one-line description (its model card's; ``--description``)
    scale             optional: the scores seen in training, {"low", "high", "videos"} (the training
                      split's lowest and highest true score and how many videos it holds)

``description`` and ``scale`` travel in the checkpoint as well as in the model card beside it, so
that a ``model.pt`` moved without its card still says what it is; checkpoints written before they
existed load without them (:attr:`CheckpointInfo.description` None).

:func:`predict_features` is the one way to score a video's features with a loaded head, so
prediction combines streams and maps scores back exactly as training did.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aqa.atomic import written_then_renamed
from aqa.config import config_from_dict, config_to_dict
from aqa.data.provenance import Provenance
from aqa.errors import AqaError, CorruptFileError, MissingFileError
from aqa.models import ScoreNormalizer, ScoringHead, build_head, config_type
from aqa.models.streams import combine_streams, difficulty_use
from aqa.version import __version__

log = logging.getLogger(__name__)

FORMAT = "aqa-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "package_version", "head_name", "head_config", "input_dim", "streams",
             "score_name", "normalizer", "provenance", "config", "config_hash", "state_dict")


# Settings added to a head after checkpoints of it existed, whose new default would change what an
# older checkpoint computes: the value that keeps its meaning when the checkpoint lacks the key.
LEGACY_HEAD_SETTINGS: dict[str, dict[str, Any]] = {"fspn": {"parse_max_steps": 0}}


class MissingDifficultyError(AqaError):
    """The head was trained on score / difficulty ("w/ DD") and no difficulty was given."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything in a checkpoint besides the weights and the score range."""

    head_name: str
    score_name: str
    streams: str
    input_dim: int
    provenance: Provenance
    config: dict[str, Any]
    config_hash: str
    package_version: str
    extra: dict[str, Any] = field(default_factory=dict)
    description: str | None = None  # None: a checkpoint from before descriptions were recorded
    scale: dict[str, Any] | None = None  # {"low", "high", "videos"}: scores seen in training; None when not recorded


def save_checkpoint(path: str | Path, head: ScoringHead, normalizer: ScoreNormalizer, *, score_name: str,
                    streams: str, provenance: Provenance, config: dict[str, Any], config_hash: str,
                    extra: dict[str, Any] | None = None, description: str | None = None,
                    scale: dict[str, Any] | None = None) -> Path:
    """Write ``head`` and what it needs to be used again; atomic (temp file, then rename).
    ``description`` and ``scale``: see the module doc (left out when None)."""
    path = Path(path)
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "head_name": head.head_name, "head_config": config_to_dict(head.config), "input_dim": head.input_dim,
        "streams": streams, "score_name": score_name, "normalizer": normalizer.to_dict(),
        "provenance": provenance.to_dict(), "config": config, "config_hash": config_hash,
        "state_dict": {name: value.detach().cpu().clone() for name, value in head.state_dict().items()},
        "extra": extra or {},
        **({"description": description} if description is not None else {}),
        **({"scale": dict(scale)} if scale is not None else {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_then_renamed(path) as temporary:  # a failed or interrupted save leaves no file behind
        torch.save(payload, temporary)
    return path


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu"
                    ) -> tuple[ScoringHead, ScoreNormalizer, CheckpointInfo]:
    """Rebuild the head (in eval mode, on ``device``), its score range and its metadata.

    Loads with ``weights_only=True``. A missing file is a :class:`MissingFileError`; anything that
    is not a complete aqa checkpoint (truncated, another format, tensors that do not fit the head)
    a one-line :class:`CorruptFileError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about a file it then refuses: the refusal is the message
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file: all mean the same to a user
        raise CorruptFileError(_load_failure(path, error)) from None
    _check_layout(payload, path)
    try:
        stored = {**LEGACY_HEAD_SETTINGS.get(payload["head_name"], {}), **payload["head_config"]}
        head_config = config_from_dict(config_type(payload["head_name"]), stored)
        with torch.random.fork_rng(devices=[]):  # building initialises weights; keep the caller's RNG as it was
            head = build_head(payload["head_name"], head_config, input_dim=int(payload["input_dim"]))
        # Checkpoints from before input standardisation have no statistics: identity keeps their meaning.
        state = {"input_shift": head.input_shift, "input_scale": head.input_scale, **payload["state_dict"]}
        head.load_state_dict(state)
        normalizer = ScoreNormalizer.from_dict(payload["normalizer"])
        provenance = Provenance.from_dict(payload["provenance"])
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CorruptFileError(f"{path}: checkpoint does not fit its head {payload['head_name']!r}: {first}") from None
    info = CheckpointInfo(
        head_name=payload["head_name"], score_name=payload["score_name"], streams=payload["streams"],
        input_dim=int(payload["input_dim"]), provenance=provenance, config=payload["config"],
        config_hash=payload["config_hash"], package_version=payload["package_version"], extra=payload["extra"],
        description=payload.get("description"), scale=payload.get("scale"),
    )
    return head.to(device).eval(), normalizer, info


def _load_failure(path: Path, error: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` refused. Never torch's own advice for a
    pickle with objects in it ("re-run with weights_only=False"): that would run a stranger's code."""
    text = str(error)
    # "Unsupported global: GLOBAL posix.system" (torch 2.6) or "unsupported GLOBAL posix.system whose..." (2.14)
    found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text)
    if found:
        return (f"{path} is refused: it holds a Python object ({found.group(1)}) beyond tensors and plain values, "
                "and loading it could run code; an aqa checkpoint never does")
    reason = re.search(r"WeightsUnpickler error:\s*(.+)", text)  # the cause, without torch's advice around it
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line
             and "Weights only load failed" not in line]
    first = reason.group(1).strip() if reason else (lines or ["not a torch checkpoint"])[0]
    return f"{path} is not a readable aqa checkpoint ({type(error).__name__}: {first})"


def _check_layout(payload: Any, path: Path) -> None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not an aqa checkpoint (no format={FORMAT!r} entry)")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CorruptFileError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if int(payload["format_version"]) > FORMAT_VERSION:
        raise CorruptFileError(f"{path} has checkpoint format {payload['format_version']}, newer than this aqa "
                               f"reads ({FORMAT_VERSION}); upgrade aqa")
    if not isinstance(payload.get("description", ""), str):
        raise CorruptFileError(f"{path}: checkpoint description is not text")
    scale = payload.get("scale", {"low": 0.0, "high": 0.0, "videos": 0})
    if not (isinstance(scale, dict) and all(_is_number(scale.get(key)) for key in ("low", "high", "videos"))):
        raise CorruptFileError(f"{path}: checkpoint scale is not {{low, high, videos}} numbers")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_difficulty(head: ScoringHead, difficulty: float | None) -> None:
    """A head trained on score / difficulty ("w/ DD") needs a positive difficulty to predict a score;
    a difficulty given to any head is a positive number (``nan`` once reached the JSON report)."""
    if difficulty is not None and not (math.isfinite(difficulty) and difficulty > 0):
        raise MissingDifficultyError(f"difficulty {difficulty}: a difficulty degree is a positive number")
    if difficulty_use(head.config)[0] and difficulty is None:
        raise MissingDifficultyError(f"this {head.head_name} head predicts score / difficulty (trained w/ DD): give "
                                     f"the video's positive difficulty (aqa-predict --difficulty), got {difficulty}")


SCORE_READINGS = ("score", "score_expectation", "score_argmax")
"""The score-valued entries of a head's details (CoFInAl reads its score two ways beside the one it
gives): each is moved from the head's [0, 1) scale to the original one."""


@torch.no_grad()
def predict_features(head: ScoringHead, normalizer: ScoreNormalizer, scene: Tensor | np.ndarray,
                     actor: Tensor | np.ndarray | None = None, *, streams: str,
                     difficulty: float | None = None) -> tuple[float, dict[str, Any]]:
    """Score one video's clip features with every clip: ``scene`` / ``actor`` ``[T, D]``.

    ``streams`` must be the checkpoint's (``CheckpointInfo.streams``): it says how the streams
    were fed in training. ``difficulty``: the video's difficulty degree; a head trained "w/ DD"
    needs it (its prediction is multiplied by it), and a pairwise head grouped by difficulty votes
    over the exemplars of that difficulty (else its shared set). Returns the score on the original
    scale and the head's details with the batch axis removed (tensors on the CPU); each of
    :data:`SCORE_READINGS` a head gives is a float and ``votes`` (an ensemble: ``member_scores``) a tensor on the
    original scale, and ``score_unit`` is the raw [0, 1) prediction. Puts the head in eval mode.
    """
    check_difficulty(head, difficulty)
    divide, grouped = difficulty_use(head.config)
    clips = combine_streams(torch.as_tensor(scene, dtype=torch.float32),
                            None if actor is None else torch.as_tensor(actor, dtype=torch.float32), streams)
    device = head.input_shift.device  # a buffer every head has (a closed-form head has no parameters)
    head.eval()
    by_group = head.pairwise and grouped and difficulty is not None
    forward = {"groups": torch.tensor([float(difficulty)])} if by_group else {}
    outputs = head(clips.unsqueeze(0).to(device), None, **forward)
    details: dict[str, Any] = {key: value[0].cpu() for key, value in head.predict_details(outputs).items()}
    details["score_unit"] = float(outputs["score"][0])
    factor = float(difficulty) if divide else 1.0
    for key in [key for key in SCORE_READINGS if key in details]:
        details[key] = float(normalizer.from_unit(float(details[key]))) * factor
    for key in ("votes", "member_scores"):  # an FSPN head's exemplar votes, an ensemble's members' scores
        if key in details:
            details[key] = normalizer.from_unit(details[key].double()) * factor
    return details["score"], details
