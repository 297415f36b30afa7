"""How a store's streams become a head's input, and what a head does with a difficulty.

These define a trained model as much as its weights: training feeds the head through them and
the checkpoint records the choice (``streams``, the head's config), so prediction and the web
page call the same functions, without depending on the training-data code.

A store holds a scene stream and (when extracted here) an actor stream per video. A head sees one
``[T, D']`` sequence, so :func:`combine_streams` decides how the streams are fed:

- ``"scene"`` / ``"actor"``: one stream, ``D' = D``;
- ``"both"``: scene and actor concatenated per clip, scene first, ``D' = 2 D`` (a head that treats
  the streams separately, as FSPN does, splits the last axis in halves);
- ``"auto"``: ``"both"`` when the store has an actor stream, else ``"scene"``.

FSPN takes ``"both"`` and splits it into its scene and actor halves itself.

Difficulty, as a head's config declares it (``HeadNeeds``; FSPN's settings): dividing by it ("w/
DD", MTL-AQA), the head learns ``score / difficulty`` and the prediction is multiplied back;
grouping by it, the difficulty is the exemplar group key (:func:`difficulty_use`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from aqa.errors import AqaError
from aqa.models.registry import HeadConfig

Streams = Literal["auto", "scene", "actor", "both"]


class StreamsError(AqaError):
    """The streams asked for are not in these features; the message says what is there instead."""


def resolve_streams(streams: str, has_actor: bool) -> str:
    """``"auto"`` -> ``"both"`` or ``"scene"``; asking for the actor stream of a store without one fails."""
    if streams == "auto":
        return "both" if has_actor else "scene"
    if streams in ("actor", "both") and not has_actor:
        raise StreamsError(f"streams={streams!r} needs an actor stream, but these features have only the "
                           "scene stream (imported features have no actor stream); use streams=scene")
    if streams not in ("scene", "actor", "both"):
        raise StreamsError(f"streams must be auto, scene, actor or both, got {streams!r}")
    return streams


def combine_streams(scene: Tensor, actor: Tensor | None, streams: str) -> Tensor:
    """One video's model input: ``scene`` / ``actor`` ``[T, D]`` -> ``[T, D]`` or ``[T, 2D]`` (see module doc)."""
    if streams == "scene":
        return scene
    if actor is None:
        raise StreamsError(f"streams={streams!r} needs the actor stream, which this video does not have")
    if actor.shape != scene.shape:
        raise StreamsError(f"scene {tuple(scene.shape)} and actor {tuple(actor.shape)} streams differ in shape")
    return actor if streams == "actor" else torch.cat([scene, actor], dim=-1)


def difficulty_use(head_config: HeadConfig) -> tuple[bool, bool]:
    """(train on score / difficulty, group exemplars by difficulty), as the head's config declares them
    (:class:`~models.registry.HeadNeeds`; FSPN's ``train_divide_by_difficulty`` and
    ``train_exemplar_groups``)."""
    needs = head_config.needs()
    return needs.divide_by_difficulty, needs.group_by_difficulty
