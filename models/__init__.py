"""Stage 3: scoring heads (CoFInAl, FSPN, MLP, ridge, an ensemble of them), their losses and the evaluation metrics.

Build a head by name: ``build_head("cofinal", "rg-ball", input_dim=1024)``; every head has the
face of :class:`ScoringHead` (``forward`` / ``loss`` / ``predict_details``). Importing this
package registers the heads.
"""

from aqa.models import cofinal, ensemble, fspn, mlp, ridge  # noqa: F401  (registers the heads)
from aqa.models.normalization import ScoreNormalizer
from aqa.models.registry import (
    PRESETS,
    HeadConfigError,
    ScoringHead,
    UnknownHeadError,
    build_head,
    config_type,
    dataset_preset,
    head_config,
    list_heads,
    list_presets,
    preset_key,
    register_head,
)

__all__ = [
    "PRESETS",
    "HeadConfigError",
    "ScoreNormalizer",
    "ScoringHead",
    "UnknownHeadError",
    "build_head",
    "config_type",
    "dataset_preset",
    "head_config",
    "preset_key",
    "list_heads",
    "list_presets",
    "register_head",
]
