"""``aqa-import``: bring features extracted elsewhere into a feature store that trains like ours.

The GDLT and CoFInAl code consume a folder of ``<name>.npy`` arrays ``[clips, D]`` and whitespace
label files. This tool checks the whole folder first (every array 2-D, numeric and finite, one
``D`` for all, every labelled video present), so a bad input fails before anything is written,
then writes a shard with the scene stream only and an ``imported`` provenance (source folder and a
sha256 over the arrays' files). Importing again into the same file resumes: videos already there
are skipped.

    aqa-import features/ --labels train.txt --labels test.txt -o fisv.h5 --columns id,TES,PCS,ded
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aqa.data.feature_store import FeatureStoreError, VideoFeatures, check_video_name
from aqa.data.labels import LabelTable, parse_column_names, read_label_files
from aqa.data.provenance import imported_provenance
from aqa.data.shard_writer import ShardWriter
from aqa.errors import AqaError, MissingFileError, one_line
from aqa.pipeline.cli import add_common_arguments, add_label_arguments, exit_status_epilog, run_cli
from aqa.version import __version__

log = logging.getLogger(__name__)


_NPY_MAGIC = b"\x93NUMPY"


class FeatureImportError(AqaError):
    """The folder or label files to import are inconsistent; the message names the offending file."""


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Import per-video .npy clip features [clips, D] and label files "
                                                 "into an aqa feature store (scene stream only).",
                                     epilog=exit_status_epilog("done"))
    parser.add_argument("features", type=Path, help="folder of <name>.npy arrays, one per video")
    parser.add_argument("-o", "--output", type=Path, required=True, help="feature shard to write (.h5)")
    add_label_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace the output instead of resuming into it")
    add_common_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    folder: Path = args.features
    if not folder.is_dir():
        raise MissingFileError(f"feature folder not found: {folder}")
    arrays = {path.stem: path for path in sorted(folder.glob("*.npy"))}
    if not arrays:
        raise FeatureImportError(f"no .npy files in {folder}")
    labels = read_label_files(args.labels, parse_column_names(args.columns))
    check_labels_have_features(labels, arrays, folder)
    digest, loaded = check_arrays(arrays)
    provenance = imported_provenance(folder.resolve(), digest, package_version=__version__)

    unlabelled = [name for name in arrays if name not in labels] if args.labels else []
    if unlabelled:
        log.warning("%d of %d videos have no label (imported without one), e.g. %s",
                    len(unlabelled), len(arrays), ", ".join(unlabelled[:3]))
    with ShardWriter(args.output, provenance, overwrite=args.overwrite) as writer:
        todo = [name for name in arrays if name not in writer]
        for name in tqdm(todo, desc="import", unit="video", disable=args.quiet or not todo):
            writer.write(VideoFeatures(name, loaded[name], source_path=str(arrays[name]), label=labels.get(name)))
    log.info("%s: %d videos imported, %d already there", args.output, len(todo), len(arrays) - len(todo))
    return 0


def check_labels_have_features(labels: LabelTable, arrays: dict[str, Path], folder: Path) -> None:
    missing = [record for record in labels if record.name not in arrays]
    if missing:
        examples = ", ".join(f"{record.name!r} ({record.split})" for record in missing[:3])
        raise FeatureImportError(f"{len(missing)} labelled video(s) have no .npy in {folder}: {examples}"
                                 f"{' ...' if len(missing) > 3 else ''}")


def check_arrays(arrays: dict[str, Path]) -> tuple[str, dict[str, np.ndarray]]:
    """Check every name and array before anything is written: a name that can be a video's, a regular
    file (not a folder, FIFO or device), a finite ``[clips, D]`` number array with one D, within
    float32's range (the store's type). Return the sha256 and the arrays, memory-mapped as checked.

    The digest covers each name and file's bytes in name order, so it changes if any array does.
    """
    digest = hashlib.sha256()
    first: tuple[str, int] | None = None
    loaded = {}
    for name, path in arrays.items():
        try:
            check_video_name(name)
        except FeatureStoreError as error:
            raise FeatureImportError(f"{path}: {error}") from None
        array = _load(path)
        if array.ndim != 2 or array.shape[0] == 0 or array.dtype.kind not in "fiu":
            raise FeatureImportError(f"{path}: expected a non-empty number array [clips, D], "
                                     f"got {array.dtype} of shape {array.shape}")
        if first is None:
            first = (name, array.shape[1])
        elif array.shape[1] != first[1]:
            raise FeatureImportError(f"{path}: feature size D={array.shape[1]}, but {first[0]}.npy has D={first[1]}; "
                                     "all videos must have the same D")
        if not np.isfinite(array).all():
            raise FeatureImportError(f"{path}: holds NaN or infinite values")
        if array.size and np.abs(array).max() > np.finfo(np.float32).max:  # stored as float32: would become inf
            raise FeatureImportError(f"{path}: holds values beyond float32's range (largest "
                                     f"{np.abs(array).max():.3g}); the store keeps float32, scale the features first")
        digest.update(name.encode() + b"\0" + bytes.fromhex(_sha256(path)))
        loaded[name] = array
    return digest.hexdigest(), loaded


def _regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a FIFO would block the open forever,
    a device (a link to /dev/zero) would be read until memory runs out, a folder cannot be read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise FeatureImportError(f"{path}: cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise FeatureImportError(f"{path}: is {kind}, not a .npy file")


def _load(path: Path) -> np.ndarray:
    _regular_file(path)
    with open(path, "rb") as stream:
        if stream.read(len(_NPY_MAGIC)) != _NPY_MAGIC:  # numpy would try it as a pickle
            raise FeatureImportError(f"{path}: not a readable .npy array (no NumPy header)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "Python objects" in str(error):  # numpy's advice would run its code
            raise FeatureImportError(f"{path}: holds Python objects (a pickle), which aqa-import never loads; "
                                     "save the features as a number array") from None
        raise FeatureImportError(f"{path}: not a readable .npy array ({one_line(error)})") from None
    except (OSError, EOFError) as error:
        raise FeatureImportError(f"{path}: not a readable .npy array ({one_line(error)})") from None


def _sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: ``aqa-import``."""
    return run_cli("aqa-import", get_args_parser, main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
