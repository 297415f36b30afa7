"""models.streams: how a store's streams become a head's input."""

from __future__ import annotations

import pytest
import torch

from aqa.models.streams import StreamsError, combine_streams, resolve_streams


def test_streams_combine_scene_first():
    scene, actor = torch.zeros(3, 2), torch.ones(3, 2)
    assert torch.equal(combine_streams(scene, actor, "both"), torch.tensor([[0.0, 0, 1, 1]] * 3))
    assert combine_streams(scene, actor, "actor") is actor and combine_streams(scene, None, "scene") is scene
    with pytest.raises(StreamsError, match="differ in shape"):
        combine_streams(scene, torch.ones(4, 2), "both")
    assert resolve_streams("auto", True) == "both" and resolve_streams("auto", False) == "scene"
    with pytest.raises(StreamsError, match="needs an actor stream"):
        resolve_streams("actor", False)
