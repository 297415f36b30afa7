"""Crash-safe, resumable writing of one feature shard.

HDF5 has no journal: a process killed while it modifies a file can leave the file unreadable,
and with it every video already in it. So a shard file is never modified in place:

1. each finished video is written to its own small file ``<shard>.parts/<name>.h5.tmp``, flushed,
   ``complete`` set last, fsync'ed, then renamed to ``<name>.h5``; the rename is atomic, so a
   part file either holds a whole video or does not exist (a leftover ``.tmp`` is deleted and
   that video redone);
2. :meth:`ShardWriter.close` merges the committed shard's complete videos and the part files into
   ``<shard>.tmp`` (HDF5 object copies, no decoding), fsyncs it and renames it over the shard,
   then deletes the parts. A kill during the merge leaves the old shard and the parts untouched,
   and the next run merges again.

A re-run therefore skips every video that is in the shard or in a part file (``name in writer``)
and redoes the rest. A shard whose videos lack ``complete`` (written by something else, or copied
half-way) has those videos dropped at the next merge, so they are redone too. One writer per shard
is enforced with an ``flock`` on ``<shard>.parts/.lock`` (released by the kernel if the process dies).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from aqa.data.feature_store import (
    PARTS_SUFFIX,
    VIDEOS,
    FeatureStoreError,
    VideoFeatures,
    check_video_name,
    complete_videos,
    open_shard_file,
    read_shard_provenance,
    video_damage,
    write_shard_attrs,
    write_video,
)
from aqa.data.provenance import Provenance, ProvenanceMismatchError, provenance_differences
from aqa.errors import one_line

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
TEMP_SUFFIX = ".tmp"


class ShardWriter:
    """Write videos into the shard at ``path``; use as a context manager (or call :meth:`close`).

    ``provenance`` must equal that of an existing shard (or of the parts an interrupted run left),
    unless ``overwrite`` is set, which deletes both first. ``done`` / ``name in writer`` say what a
    re-run may skip; ``written`` counts the videos this writer committed.
    """

    def __init__(self, path: str | Path, provenance: Provenance, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.provenance = provenance
        self.parts = self.path.with_name(self.path.name + PARTS_SUFFIX)
        self._temp = self.path.with_name(self.path.name + TEMP_SUFFIX)
        try:  # an output that cannot be written is the user's to fix, said before any video is read
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _acquire_lock(self.parts / LOCK_NAME, self.path)
        except (FileExistsError, NotADirectoryError) as error:
            raise FeatureStoreError(f"cannot write {self.path}: {error.filename or self.path.parent} is a file, "
                                    "not a folder") from None
        except OSError as error:
            raise FeatureStoreError(f"cannot write {self.path}: {error.strerror or error} "
                                    f"({error.filename or self.path.parent})") from None
        try:
            if overwrite:
                self._discard_all()
            self._temp.unlink(missing_ok=True)  # an interrupted merge
            with ctrl_c_deferred():
                self._in_shard = self._scan_shard()
                self._in_parts = self._scan_parts()
        except BaseException:
            if not any(part.name != LOCK_NAME for part in self.parts.iterdir()):
                shutil.rmtree(self.parts)  # nothing of an earlier run in it: leave no trace
            self._release()
            raise
        self.written = 0
        log.info("%s: %d videos done (%d awaiting merge)", self.path, len(self.done), len(self._in_parts))

    @property
    def done(self) -> set[str]:
        """Names of videos already complete: in the shard or in a part file."""
        return self._in_shard | self._in_parts

    def __contains__(self, name: object) -> bool:
        return name in self._in_shard or name in self._in_parts

    def write(self, video: VideoFeatures) -> None:
        """Commit one video: after this returns it survives any crash (and replaces an earlier copy)."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        final = self.parts / f"{check_video_name(video.name)}.h5"
        temp = final.with_name(final.name + TEMP_SUFFIX)
        with ctrl_c_deferred():
            # Built in memory (HDF5's core driver), written with one plain write: a full disk is
            # then an OSError with the system's words, not HDF5's ("Driver truncate request failed").
            with h5py.File(f"{video.name}.h5", "w", driver="core", backing_store=False) as file:
                write_shard_attrs(file, self.provenance)
                write_video(file, video)
                file.flush()
                image = file.id.get_file_image()
            try:
                _write_durably(temp, image)
                os.replace(temp, final)
                _fsync(self.parts)
            except OSError as error:
                temp.unlink(missing_ok=True)
                raise self._write_error(f"video {video.name!r}", error) from None
            self._in_parts.add(video.name)
            self.written += 1

    def close(self) -> None:
        """Merge the part files into the shard (atomically replacing it) and release the lock."""
        if self._lock_fd is None:
            return
        try:
            # The folder, not memory, says what is committed: a Ctrl-C between a part's rename and
            # ``write`` noting it must not let the rmtree below delete a finished video.
            self._in_parts |= {part.name[: -len(".h5")] for part in self.parts.glob("*.h5")}
            if self._in_parts or not self.path.exists():
                self._merge()
            shutil.rmtree(self.parts)
        finally:
            self._release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        # Merge on errors too (the parts are complete videos); on a kill nothing runs and the
        # next writer merges. When the merge fails too (a full disk fails both), the first error
        # is the one line the user sees (it says the finished videos are kept); the parts stay.
        try:
            self.close()
        except FeatureStoreError as error:
            if exc is None:
                raise
            log.debug("%s", error)

    # --- internals ----------------------------------------------------------------------------------

    def _scan_shard(self) -> set[str]:
        if not self.path.exists():
            return set()
        with open_shard_file(self.path) as file:
            self._check(read_shard_provenance(file, str(self.path)), self.path)
            names, incomplete = complete_videos(file, str(self.path))
            if incomplete:
                log.warning("%s: %d incomplete video(s) will be redone", self.path, incomplete)
            complete = set()
            for name in sorted(names):  # a video whose arrays or metadata do not validate is redone
                damage = video_damage(file[VIDEOS][name])
                if damage:
                    log.warning("%s: video %r is damaged and will be redone: %s", self.path, name, damage)
                else:
                    complete.add(name)
        return complete

    def _scan_parts(self) -> set[str]:
        """Complete part files left by an interrupted run; leftover temp files are deleted."""
        names = set()
        for part in sorted(self.parts.iterdir()):
            if part.name == LOCK_NAME:
                continue
            if part.suffix != ".h5":
                part.unlink()  # a .tmp: a video whose writing never finished
                continue
            name = part.name[: -len(".h5")]
            if self._part_is_complete(part, name):
                names.add(name)
                continue
            part.unlink()
        return names

    def _part_is_complete(self, part: Path, name: str) -> bool:
        """Whether a part file holds its whole video. A damaged one (unreadable HDF5, missing
        metadata) is only that video lost: it is redone, never a reason to refuse the resume.
        Features made with other settings still are (:meth:`_check`)."""
        try:
            with open_shard_file(part) as file:
                found = read_shard_provenance(file, str(part))
                if name not in complete_videos(file, str(part))[0]:
                    raise FeatureStoreError(f"no complete video {name!r}")
                damage = video_damage(file[VIDEOS][name])
        except (FeatureStoreError, OSError, KeyError, ValueError) as error:
            log.warning("%s: damaged part file (%s); video %r will be redone", part, one_line(error), name)
            return False
        self._check(found, self.parts)
        if damage:
            log.warning("%s: damaged part file (%s); video %r will be redone", part, damage, name)
        return not damage

    def _check(self, found: Provenance, where: Path) -> None:
        differing = provenance_differences(self.provenance, found)
        if differing:
            raise ProvenanceMismatchError(
                f"{where} holds features made with other settings (differing keys: {', '.join(differing)}); "
                f"write to another file, or overwrite it")

    def _merge(self) -> None:
        try:
            self._merge_into_temp()
            _fsync(self._temp)
            os.replace(self._temp, self.path)
            _fsync(self.path.parent)
        except (OSError, RuntimeError) as error:  # the old shard and the parts are untouched
            self._temp.unlink(missing_ok=True)
            raise self._write_error("the merged shard", error) from None
        log.info("%s: merged %d new video(s), %d in all", self.path, len(self._in_parts), len(self.done))
        self._in_shard, self._in_parts = self.done, set()

    def _merge_into_temp(self) -> None:
        with h5py.File(self._temp, "w") as out:
            write_shard_attrs(out, self.provenance)
            destination = out[VIDEOS]
            if self.path.exists():
                with open_shard_file(self.path) as old:
                    for name in sorted(self._in_shard - self._in_parts):
                        old.copy(old[VIDEOS][name], destination, name=name)
            for name in sorted(self._in_parts):
                with open_shard_file(self.parts / f"{name}.h5") as part:
                    part.copy(part[VIDEOS][name], destination, name=name)
            out.flush()

    def _write_error(self, what: str, error: BaseException) -> FeatureStoreError:
        """A failed write (full disk, quota, file-size limit) as the user's one line: what failed,
        the system's reason, and that finished videos are kept for the re-run."""
        return FeatureStoreError(f"cannot write {what} of {self.path}: {_system_reason(error)}; "
                                 f"{len(self.done)} finished video(s) are kept, free space and re-run to resume")

    def _discard_all(self) -> None:
        self.path.unlink(missing_ok=True)
        for part in self.parts.iterdir():
            if part.name != LOCK_NAME:
                part.unlink()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _acquire_lock(lock: Path, shard: Path) -> int:
    """Hold an exclusive flock on ``lock`` (creating its folder); another holder is a user error.

    After locking, the path must still name the locked file: a writer that was closing may have
    deleted the folder in between, and then we retry on the new one.
    """
    while True:
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise FeatureStoreError(f"{shard} is being written by another process (one writer per shard)") from None
            raise
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _system_reason(error: BaseException) -> str:
    """The operating system's words for a failed write. An OSError has them as strerror; HDF5 puts
    them (``errno = 28, error message = 'No space left on device'``) in its first error, which a
    second one from closing the file ("Driver truncate request failed") may have replaced."""
    seen: BaseException | None = error
    while seen is not None:
        match = re.search(r"error message = '([^']+)'", str(seen))
        if match:
            return match.group(1)
        if isinstance(seen, OSError) and seen.errno is not None and seen.strerror:  # h5py's have no errno
            return seen.strerror
        seen = seen.__context__
    return one_line(error)


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block and raise it when the block ends.

    h5py can swallow a ``KeyboardInterrupt`` raised while it works (its Cython layer drops
    exceptions from the Python code it calls back: measured, a third of the SIGINTs sent while
    HDF5 files were written never surfaced), and a lost Ctrl-C means the run goes on for hours.
    Inside the block the SIGINT handler only notes the signal; nothing is raised in h5py's code.
    Only the main thread receives Python signals, so elsewhere this does nothing; nor where
    SIGINT is ignored (a run started in the background keeps ignoring it) or set outside Python.
    A held signal is handed to the handler that was there (Python's raises ``KeyboardInterrupt``).
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return
    noted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if noted:
        if callable(previous):
            previous(signal.SIGINT, None)
        else:  # SIG_DFL: what the signal would have done
            signal.raise_signal(signal.SIGINT)


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` as the file ``path`` and flush it to disk before returning."""
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk so a rename never exposes a hole."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
