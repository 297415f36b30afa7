"""How well the stored athlete boxes follow the athlete: per-frame IoU against hand-drawn reference boxes.

Runs what ``aqa-extract`` runs to find the athlete (the first decoding pass: the person detector
on the key frames, then main-actor tracking; :func:`extractors.stages.plan_video`) and compares
the boxes it would store, in the video's own pixels, with reference boxes drawn by a person:

    python bench/athlete_boxes.py ../shared/data/videos/olympic_dive.gif \\
        --reference bench/reference_boxes/olympic_dive.json --strip runs/dive_strip.png
    python bench/athlete_boxes.py --all                  # every reference in bench/reference_boxes/
    python bench/athlete_boxes.py --all --set keep_source_size=false   # another feature setting
    python bench/athlete_boxes.py --all --findings runs/findings --set tracker.size_window=3   # tracker only, seconds

It prints one line per frame (frame, tracking status, IoU), then the share of frames where the
athlete is visible with IoU >= 0.5 and >= 0.3, and writes an overlay strip: sampled frames with
the reference box in green and ours in magenta, so a person can look. The summary is also a JSON
line (``--out`` appends it to a file), for ``docs/benchmarks.md``.

A reference file (``bench/reference_boxes/*.json``) holds ``video`` (a file name, looked up in
``--videos``), ``frame_size`` ``[W, H]``, ``num_frames``, ``drawn`` (how the boxes were made) and
``boxes``: key frames -> ``[x1, y1, x2, y2]`` in the video's pixels, or ``null`` where the athlete
is not visible (under water, out of frame). Between two key frames with boxes the reference is
interpolated linearly; from a ``null`` key frame to the next key frame the athlete counts as not
visible and those frames are not scored.

Where the clip has several competitors doing the scored action at once (two arm wrestlers, two
players running the same drill), any of them is "the athlete": a key frame then holds a list of
alternative boxes, one per competitor, in the same order on every key frame (each may be
``null`` while that competitor is out of sight), and a frame's IoU is the best over them.

``--all`` also scores the real dives with per-frame reference boxes in ``../shared/data/boxes/``
(TSA-Net's, loose axis-aligned hulls of rotated boxes, 2-3x a tight box's area; see that folder's
README): every frame before the water entry is scored, the frames after it are not. Against loose
boxes IoU says little, so every summary also gives ``centres_inside``: the share of scored frames
where each box's centre lies inside the other box. On a few frames TSA-Net's box has drifted off
the diver onto the crowd or the judges (``shared_boxes_audit.json`` lists them and says how they
were found): there the summary adds ``centres_inside_audited``, the share without those frames.
A single shared dive runs with ``--reference ../shared/data/boxes/unlv_dive_369.json``.

``--findings DIR`` keeps what the detector and the follower found on each clip's key frames in
DIR (one pickle per clip and detection setting, :func:`first_pass_findings`) and reuses it on the
next run, so tracker settings are compared in seconds; the ms/frame printed is then the stored
run's. A file is reused only for the same video file (name, size, modification time) and the
same settings that decide the findings: the detector's, the working size, ``tracker.max_bridge``
(how far the follower reaches) and ``tracker.split_shots`` (whether colour changes are measured).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aqa.extractors.tracking import box_iou  # noqa: E402  (elementwise over [T, 4] pairs)
from bench.results import json_lines  # noqa: E402

REFERENCES = Path(__file__).resolve().parent / "reference_boxes"
VIDEOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "videos"
SHARED_BOXES = VIDEOS.parent / "boxes"
AUDIT = Path(__file__).resolve().parent / "shared_boxes_audit.json"  # where the shared dives' boxes are off the diver
REFERENCE_COLOUR, OURS_COLOUR = (40, 220, 40), (230, 40, 230)  # RGB


@dataclass(frozen=True)
class Reference:
    """Hand-drawn boxes of one video: ``boxes`` ``[A, T, 4]`` in the video's pixels for A
    alternative competitors (A = 1 for a single athlete), NaN where one is not visible."""

    video: str
    frame_size: tuple[int, int]
    boxes: np.ndarray
    drawn: str
    videos_dir: str = "videos"  # the folder of ../shared/data/ that holds the video
    off_athlete: tuple[int, ...] = ()  # frames a person found the reference box off the athlete (AUDIT)

    @property
    def visible(self) -> np.ndarray:
        """``[T]``: frames where some competitor is visible (the frames that are scored)."""
        return (~np.isnan(self.boxes).any(axis=2)).any(axis=0)

    def centres_inside(self, ours: np.ndarray) -> np.ndarray:
        """``[T]`` bool: our box's centre inside a visible competitor's box and that box's centre
        inside ours (any competitor); False where none is visible."""
        def inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
            return ((points[..., 0] >= boxes[..., 0]) & (points[..., 0] <= boxes[..., 2])
                    & (points[..., 1] >= boxes[..., 1]) & (points[..., 1] <= boxes[..., 3]))

        centre = lambda boxes: np.stack([boxes[..., 0] + boxes[..., 2], boxes[..., 1] + boxes[..., 3]], -1) / 2  # noqa: E731
        theirs = np.nan_to_num(self.boxes)
        mutual = inside(centre(ours)[None], theirs) & inside(centre(theirs), ours[None])
        return (mutual & ~np.isnan(self.boxes).any(axis=2)).any(axis=0)

    def centres_inside_audited(self, ours: np.ndarray) -> float:
        """The share of visible frames with the centres mutually inside, leaving out the frames
        whose reference box a person found off the athlete (``off_athlete``)."""
        trusted = self.visible.copy()
        trusted[list(self.off_athlete)] = False
        return float(self.centres_inside(ours)[trusted].mean())

    def iou(self, ours: np.ndarray) -> np.ndarray:
        """``[T]`` IoU of our boxes ``[T, 4]`` with the best-matching visible competitor; NaN where none is."""
        per_competitor = np.stack([np.where(np.isnan(boxes).any(axis=1), -1.0, box_iou(np.nan_to_num(boxes), ours))
                                   for boxes in self.boxes])
        return np.where(self.visible, per_competitor.max(axis=0), np.nan)


def load_reference(path: Path) -> Reference:
    """Read a reference file and expand its key frames to every frame (see the module docstring)."""
    spec = json.loads(Path(path).read_text())
    num_frames = int(spec["num_frames"])
    keys = sorted((int(frame), _alternatives(box)) for frame, box in spec["boxes"].items())
    if not keys or keys[0][0] != 0 or keys[-1][0] != num_frames - 1:
        raise ValueError(f"{path}: the key frames must include the first (0) and the last ({num_frames - 1})")
    competitors = {len(boxes) for _, boxes in keys if boxes is not None}
    if len(competitors) > 1:
        raise ValueError(f"{path}: every key frame must list the same number of competitors, not {sorted(competitors)}")
    boxes = np.full((competitors.pop() if competitors else 1, num_frames, 4), np.nan)
    for (start, firsts), (stop, lasts) in zip(keys, keys[1:]):
        for competitor, (first, last) in enumerate(zip(firsts or [], lasts or [])):
            if first is not None and last is not None:
                weights = np.linspace(0.0, 1.0, stop - start + 1)[:, None]
                first, last = np.asarray(first, float), np.asarray(last, float)
                boxes[competitor, start:stop + 1] = (1 - weights) * first + weights * last
    for frame, drawn in keys:  # a key frame is exactly as drawn (a null one is not visible)
        boxes[:, frame] = np.nan
        for competitor, box in enumerate(drawn or []):
            boxes[competitor, frame] = np.nan if box is None else box
    return Reference(spec["video"], tuple(spec["frame_size"]), boxes, spec.get("drawn", ""),
                     spec.get("videos_dir", "videos"))


def load_shared_boxes(path: Path) -> Reference:
    """A real dive's per-frame boxes from ``../shared/data/boxes/`` (``boxes_xyxy``, ``events``: the
    last event is the water entry), scored on the frames before the entry only."""
    spec = json.loads(Path(path).read_text())
    boxes = np.array(spec["boxes_xyxy"], float)[None]
    entry = int(spec["events"]["labels"][-1])
    boxes[:, entry:] = np.nan
    off = json.loads(AUDIT.read_text())["off_the_diver"].get(spec["video"], [])
    return Reference(spec["video"], tuple(spec["frame_size"]), boxes, spec["source"], "footage", tuple(off))


def all_references(shared_boxes: Path = SHARED_BOXES) -> list[tuple[Path, Reference]]:
    """Every committed reference, then the shared dives' boxes when ``shared_boxes`` exists."""
    found = [(path, load_reference(path)) for path in sorted(REFERENCES.glob("*.json"))]
    return found + [(path, load_shared_boxes(path)) for path in sorted(Path(shared_boxes).glob("*.json"))]


def _alternatives(drawn: list | None) -> list | None:
    """A key frame's boxes as a list of competitors' boxes (or None): one box is one competitor."""
    if drawn is None:
        return None
    one_box = bool(drawn) and drawn[0] is not None and not isinstance(drawn[0], list)  # [x1, y1, x2, y2]
    return [drawn] if one_box else drawn


def first_pass_findings(video: Path, config, findings_dir: Path | None = None) -> tuple[object, list, float]:
    """The layout of ``video`` and what its key frames showed (the detector's finds, then the
    follower's, then with ``detector.look_again`` the second look's), as
    :func:`extractors.stages.key_frame_findings` makes them, and the seconds that took (decoding
    included). With ``findings_dir``, read from there when a run with the same video and detection
    settings stored them (module docstring), else computed and stored."""
    from aqa.config import config_to_dict
    from aqa.extractors.decode_worker import InlineDecoder
    from aqa.extractors.detect import build_detector
    from aqa.extractors.stages import key_frame_findings, layout_video

    cached = None
    if findings_dir is not None:
        stat = video.stat()
        deciding = {"video": [video.name, stat.st_size, stat.st_mtime_ns], "detector": config_to_dict(config.detector),
                    "work": [config.work_short_side, config.keep_source_size],
                    "tracker": [config.tracker.max_bridge, config.tracker.split_shots]}
        if config.detector.look_again:  # it looks where the chain's track put the athlete (stages.py)
            deciding["tracker"] = {key: value for key, value in config_to_dict(config.tracker).items()
                                   if key != "linker" and not key.startswith("path_")}
        key = hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()[:16]
        cached = Path(findings_dir) / f"{video.stem}-{key}.pkl"
        if cached.is_file():
            with cached.open("rb") as stored:  # written by this function, on this machine
                return pickle.load(stored)
    with build_detector(config.detector) as detector, InlineDecoder() as decoder:
        started = time.perf_counter()
        layout = layout_video(decoder, str(video), config)
        findings = key_frame_findings(decoder, layout, detector, config)
        seconds = time.perf_counter() - started
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(pickle.dumps((layout, findings, seconds)))
    return layout, findings, seconds


def athlete_boxes(video: Path, every_k: int = 1, follow: bool = True, overrides: Sequence[str] = (),
                  findings_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The boxes aqa-extract would store for ``video`` (source pixels ``[T, 4]``), their tracking
    status names ``[T]`` and the seconds the detection pass took (decoding included); ``follow``:
    the detector setting ``follow_misses``; ``overrides``: other feature settings, as
    ``aqa-extract --set features.KEY=VALUE`` takes them (without ``features.``); ``findings_dir``:
    where the key frames' findings are kept between runs (:func:`first_pass_findings`)."""
    from aqa.config import apply_overrides
    from aqa.extractors.detect import DetectorConfig
    from aqa.extractors.stages import SiameseConfig, plan_from_detections
    from aqa.extractors.tracking import STATUS_NAMES

    config = SiameseConfig(detector=DetectorConfig(every_k=every_k, follow_misses=follow))
    config = apply_overrides(config, overrides)
    layout, findings, seconds = first_pass_findings(video, config, findings_dir)
    plan = plan_from_detections(layout, findings, config)
    return plan.boxes_in_source_pixels, np.array([STATUS_NAMES[code] for code in plan.track.status]), seconds


def overlay_strip(video: Path, reference: Reference, ours: np.ndarray, out: Path, frames: int = 8,
                  per_row: int = 4) -> Path:
    """``frames`` evenly spaced frames where the athlete is visible, ``per_row`` side by side, the
    reference box green and ours magenta, each labelled with its frame number and IoU; an image."""
    import cv2

    from aqa.extractors.video import open_video

    visible = np.flatnonzero(reference.visible)
    chosen = visible[np.linspace(0, len(visible) - 1, min(frames, len(visible))).round().astype(int)]
    with open_video(video) as source:
        images = source.get_batch(list(chosen))
    height = 240
    iou_per_frame = reference.iou(ours)
    tiles = []
    for index, image in zip(chosen, images):
        image = np.ascontiguousarray(image)
        drawn = [(box, REFERENCE_COLOUR) for box in reference.boxes[:, index] if not np.isnan(box).any()]
        for box, colour in drawn + [(ours[index], OURS_COLOUR)]:
            x1, y1, x2, y2 = np.round(box).astype(int)
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        iou = float(iou_per_frame[index])
        scale = height / image.shape[0]
        tile = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{index}  IoU {iou:.2f}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
        tiles.append(tile)
    rows = [tiles[start:start + per_row] for start in range(0, len(tiles), per_row)]
    rows[-1] += [np.zeros_like(tiles[0])] * (per_row - len(rows[-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack([np.hstack(row) for row in rows]), cv2.COLOR_RGB2BGR))
    return out


def evaluate(video: Path, reference: Reference, every_k: int = 1, follow: bool = True,
             quiet: bool = False, overrides: Sequence[str] = (),
             findings_dir: Path | None = None) -> tuple[dict, np.ndarray]:
    """Per-frame IoU of our boxes against ``reference``; prints the frames unless ``quiet``."""
    ours, status, seconds = athlete_boxes(video, every_k, follow, overrides, findings_dir)
    decoded = len(ours)
    if decoded < reference.boxes.shape[1]:
        raise SystemExit(f"{video}: {decoded} frames decoded, the reference has {reference.boxes.shape[1]}")
    # A damaged tail the decoder pads (the Tokyo dive: 109 decodable of 200 claimed) is not scored.
    ours, status = ours[:reference.boxes.shape[1]], status[:reference.boxes.shape[1]]
    visible = reference.visible
    iou = reference.iou(ours)
    mutual = reference.centres_inside(ours)[visible]
    if not quiet:
        print(f"{video.name}: frame status IoU")
        for frame, (name, value) in enumerate(zip(status, iou)):
            print(f"  {frame:4d} {name:12s} {'not visible' if np.isnan(value) else f'{value:.2f}'}")
    scored = iou[visible]
    audited = {"centres_inside_audited": round(reference.centres_inside_audited(ours), 3),
               "reference_off_athlete": len(reference.off_athlete)} if reference.off_athlete else {}
    return {"video": video.name, "follow_misses": follow, "settings": list(overrides), "frames": len(ours),
            "visible": int(visible.sum()),
            "iou_at_least_0.5": round(float((scored >= 0.5).mean()), 3),
            "iou_at_least_0.3": round(float((scored >= 0.3).mean()), 3),
            "centres_inside": round(float(mutual.mean()), 3), **audited,
            "mean_iou": round(float(scored.mean()), 3),
            "status": {name: int((status[visible] == name).sum()) for name in np.unique(status)},
            "detect_ms_per_frame": round(1000 * seconds / decoded, 1)}, ours


FOLLOW = {"on": (True,), "off": (False,), "both": (False, True)}


def main(args: argparse.Namespace) -> None:
    from aqa.pipeline.environment import configure_library_environment

    configure_library_environment(offline=True)  # ultralytics' settings file stays out of ~
    logging.basicConfig(level=logging.WARNING)
    emit = json_lines(args.out, bench="athlete_boxes", every_k=args.every_k)
    if args.all:
        pairs = [(Path(args.videos).parent / reference.videos_dir / reference.video, reference)
                 for _, reference in all_references(Path(args.videos).parent / "boxes")]
    elif args.video and args.reference:
        reference = Path(args.reference)
        shared = "boxes_xyxy" in json.loads(reference.read_text())  # a real dive's boxes from ../shared/data/boxes/
        pairs = [(Path(args.video), (load_shared_boxes if shared else load_reference)(reference))]
    else:
        raise SystemExit("give VIDEO and --reference, or --all")
    for video, reference in pairs:
        if not video.is_file():
            raise SystemExit(f"{video}: no such video (see --videos)")
        for follow in FOLLOW[args.follow]:
            summary, ours = evaluate(video, reference, args.every_k, follow, quiet=args.all, overrides=args.set,
                                     findings_dir=Path(args.findings) if args.findings else None)
            if args.strip or args.all:
                name = f"{video.stem}{'' if follow else '-no-follow'}.png"
                strip = Path(args.strip) if args.strip and not args.all else Path(args.strips) / name
                summary["strip"] = str(overlay_strip(video, reference, ours, strip, args.frames))
            emit(summary)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", help="the video to score (with --reference)")
    parser.add_argument("--reference", help="its reference boxes (JSON, see the module docstring)")
    parser.add_argument("--all", action="store_true",
                        help=f"every reference in {REFERENCES.name}/, videos from --videos")
    parser.add_argument("--videos", default=str(VIDEOS),
                        help="folder of the reference videos (default: %(default)s); a reference whose file names "
                             "another folder (videos_dir) is looked up beside it")
    parser.add_argument("--every-k", type=int, default=1, help="detector on every k-th frame (aqa-extract's --every-k)")
    parser.add_argument("--follow", choices=sorted(FOLLOW), default="on",
                        help="follow the athlete through the detector's misses (aqa-extract's default: on); "
                             "'both' measures off and on side by side")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a feature setting, as aqa-extract's --set features.KEY=VALUE (repeatable): "
                             "keep_source_size=false, tracker.smooth_sigma=1...")
    parser.add_argument("--findings", metavar="DIR",
                        help="keep the key frames' findings here and reuse them (tracker settings in seconds; "
                             "module docstring)")
    parser.add_argument("--strip", help="write the overlay strip of VIDEO here (PNG)")
    parser.add_argument("--strips", default="runs/athlete_strips", help="folder of the strips with --all")
    parser.add_argument("--frames", type=int, default=8, help="frames in an overlay strip")
    parser.add_argument("--out", help="also append the summaries (JSON lines) to this file")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
