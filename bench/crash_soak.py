"""Crash soak: SIGKILL aqa-extract at random moments over a 30-video run, resume each time, and check
that the store ends exactly as an uninterrupted run leaves it.

What a user's machine does to a long extraction (the OOM killer, a lost SSH session, a reboot),
twenty times over. The script:

1. writes ``--videos`` small synthetic videos of varied length (moving shapes, 12-40 frames);
2. runs ``aqa-extract`` once uninterrupted into ``reference.h5`` and times it;
3. starts ``aqa-extract`` into ``soak.h5`` and sends it ``SIGKILL`` after a random delay (uniform
   between 0 and the time the run should take for the videos it has left, start-up included, so
   kills land while loading the model, decoding, computing, committing a video or merging), then
   starts it again, until ``--kills`` kills have landed on a live process (a run that finishes
   first has its store checked as in 4., then the soak starts over on a new store, so every kill
   hits work in progress);
4. lets a last run finish, then checks: exit 0; every video stored exactly once; no part or temp
   file left; every array and every attribute (provenance and labels included) identical to the
   reference run's.

It prints one JSON line (kills landed, runs, how many videos each kill found done, seconds) and
exits 1 on any difference. Every run uses the same thread count, so the floats are comparable
bit for bit.

    python bench/crash_soak.py --videos 30 --kills 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from synthetic_video import write_moving_shapes  # noqa: E402

# Plumbing-sized extraction (real I3D weights, small frames, the embedded detector), one torch thread.
SETTINGS = ["--set", "features.input_size=64", "--clip-length", "8", "--detector", "blazepose", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def extract_command(videos: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "aqa.pipeline.extract", str(videos), "-o", str(store), *SETTINGS]


def make_videos(folder: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for index in range(count):
        write_moving_shapes(folder / f"video_{index:03d}.mp4", num_frames=int(rng.integers(12, 41)), height=64,
                            width=96, seed=seed * 1000 + index)


def stored_videos(store: Path) -> list[str]:
    """Videos committed so far: in the shard or in a part file."""
    names = []
    if store.exists():
        try:
            with h5py.File(store, "r") as file:
                names += list(file["videos"])
        except (OSError, KeyError):
            pass
    parts = store.with_name(store.name + ".parts")
    if parts.is_dir():
        names += [part.name[: -len(".h5")] for part in parts.glob("*.h5")]
    return names


def differences(reference: Path, soaked: Path) -> list[str]:
    """Every way ``soaked`` differs from ``reference`` (names, arrays, attributes), as lines."""
    found = []
    with h5py.File(reference, "r") as ref, h5py.File(soaked, "r") as got:
        if {k: str(v) for k, v in ref.attrs.items()} != {k: str(v) for k, v in got.attrs.items()}:
            found.append("file attributes differ")
        ref_videos, got_videos = ref["videos"], got["videos"]
        if sorted(ref_videos) != sorted(got_videos):
            found.append(f"videos differ: {sorted(set(ref_videos) ^ set(got_videos))}")
        for name in sorted(set(ref_videos) & set(got_videos)):
            a, b = ref_videos[name], got_videos[name]
            if sorted(a) != sorted(b):
                found.append(f"{name}: arrays {sorted(a)} vs {sorted(b)}")
                continue
            for key in a:
                if a[key].dtype != b[key].dtype or not np.array_equal(a[key][()], b[key][()]):
                    found.append(f"{name}/{key} differs")
            if {k: str(v) for k, v in a.attrs.items()} != {k: str(v) for k, v in b.attrs.items()}:
                found.append(f"{name}: attributes differ")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="crash-soak-"))
    videos, reference, soaked = work / "videos", work / "reference.h5", work / "soak.h5"
    videos.mkdir(parents=True, exist_ok=True)
    make_videos(videos, args.videos, args.seed)

    started = time.perf_counter()
    subprocess.run(extract_command(videos, reference), check=True, cwd=ROOT, env=ENV)
    reference_s = time.perf_counter() - started
    started = time.perf_counter()  # a run with nothing left to do: start-up, the scan and exit
    subprocess.run(extract_command(videos, reference), check=True, cwd=ROOT, env=ENV)
    startup_s = time.perf_counter() - started

    rng, kills, runs, done_at_kill = random.Random(args.seed), 0, 0, []
    rounds_checked, problems = 0, []
    soak_started = time.perf_counter()
    while kills < args.kills:
        process = subprocess.Popen(extract_command(videos, soaked), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        runs += 1
        remaining = args.videos - len(set(stored_videos(soaked)))
        try:  # a moment anywhere in what this run has left to do, start-up included
            process.wait(timeout=rng.uniform(0.0, startup_s + (reference_s - startup_s) * remaining / args.videos))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            done_at_kill.append(len(set(stored_videos(soaked))))
            continue
        finally:
            process.stderr.close()
        if process.returncode != 0:
            print(f"a resumed run failed with exit {process.returncode}", file=sys.stderr)
            return 1
        if len(stored_videos(soaked)) == args.videos:  # finished before the kill: check it, start over
            rounds_checked += 1
            problems += [f"round {rounds_checked}: {problem}" for problem in differences(reference, soaked)]
            soaked.unlink()
    final = subprocess.run(extract_command(videos, soaked), cwd=ROOT, env=ENV, capture_output=True, text=True)
    runs += 1
    rounds_checked += 1
    if final.returncode != 0:
        problems.append(f"the last run exited {final.returncode}: {final.stderr[-500:]}")
    leftovers = [str(path) for path in work.glob("soak.h5*") if path.name != "soak.h5"]
    if leftovers:
        problems.append(f"left behind: {leftovers}")
    names = stored_videos(soaked)
    if len(names) != len(set(names)) or len(names) != args.videos:
        problems.append(f"{len(names)} stored entries for {args.videos} videos")
    problems += differences(reference, soaked)
    print(json.dumps({"bench": "crash_soak", "videos": args.videos, "kills": kills, "runs": runs,
                      "videos_done_at_each_kill": done_at_kill, "reference_s": round(reference_s, 1),
                      "startup_s": round(startup_s, 1),
                      "soak_s": round(time.perf_counter() - soak_started, 1), "stores_checked": rounds_checked,
                      "identical": not problems,
                      "problems": problems[:10], "workdir": str(work)}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
