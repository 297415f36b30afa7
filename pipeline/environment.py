"""Where libraries may write: keep settings and caches out of the user's home.

ultralytics writes a settings file on import and matplotlib a font cache on first use, both
under ``~`` by default. Before either is imported we point them at ``AQA_CACHE_DIR``: the
repository's ``.cache/`` when running from a checkout, else a per-user temporary folder.
Variables the user already set are respected; a folder that cannot be made there is an error
naming the variable (one line at the tools' edge), never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aqa.errors import AqaError

_REPO_ROOT = Path(__file__).resolve().parent.parent


class CacheFolderError(AqaError):
    """A library cache folder (under ``AQA_CACHE_DIR``, or one the user named) cannot be made."""


def default_cache_dir() -> Path:
    """``$AQA_CACHE_DIR``, else ``<checkout>/.cache`` in a source checkout, else a temp folder."""
    if os.environ.get("AQA_CACHE_DIR"):
        return Path(os.environ["AQA_CACHE_DIR"])
    if (_REPO_ROOT / "setup.cfg").is_file() and os.access(_REPO_ROOT, os.W_OK):
        return _REPO_ROOT / ".cache"
    return Path(tempfile.gettempdir()) / f"aqa-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def configure_library_environment(*, offline: bool = False) -> Path:
    """Set the library cache variables (unless already set) and return the cache folder.

    ``offline=True`` also tells ultralytics never to fetch weights, fonts or pip packages,
    which tests and air-gapped runs want: a missing file then fails at once instead of hanging.
    """
    cache = default_cache_dir()
    defaults = {
        "AQA_CACHE_DIR": str(cache),
        "YOLO_CONFIG_DIR": str(cache / "ultralytics"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "YOLO_VERBOSE": "False",
        # MediaPipe's TFLite runtime logs through glog/absl straight to stderr.
        "GLOG_minloglevel": "2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if offline:
        defaults.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"})
    set_by_user = {name for name in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR") if os.environ.get(name)}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    for name in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        folder = Path(os.environ[name])
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            named = f"{name} {folder}" if name in set_by_user else f"AQA_CACHE_DIR {os.environ['AQA_CACHE_DIR']}"
            raise CacheFolderError(f"{named}: cannot make {folder}: {error.strerror or error}; point it at a "
                                   "folder you can write") from None
    return Path(os.environ["AQA_CACHE_DIR"])
