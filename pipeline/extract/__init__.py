"""``aqa-extract``: videos -> Siamese clip features (scene + actor) in a resumable HDF5 feature store.

    aqa-extract videos/ -o features.h5                       # I3D, embedded detector, CPU or GPU
    aqa-extract a.mp4 b.mp4 -o f.h5 --labels train.txt --labels test.txt
    aqa-extract videos/ -o f.h5 --detector yolo --detector-weights yolo11n.pt --device cuda --workers 8

The path of the data: video files and folders (:func:`find_videos`) -> this machine's worker pool
(:func:`run_extraction`) or a Ray cluster (:mod:`.ray`) -> one HDF5 shard, or a folder of shards
with its ``index.json``; split over independent jobs with ``--num-shards`` (:mod:`.job_split`),
whose shards ``aqa-index`` (:mod:`.index`) then joins.

    from aqa.pipeline.extract import ExtractRequest, run
    result = run(ExtractRequest(videos=[Path("videos")], output=Path("features.h5")))

Modules: :mod:`.extraction` (the request, the config and :func:`run`), :mod:`.cli` (the command
line only), :mod:`.ray`, :mod:`.job_split`, :mod:`.index`.
"""

from aqa.pipeline.extract.extraction import (
    SETTINGS,
    VIDEO_SUFFIXES,
    ExtractConfig,
    ExtractionError,
    ExtractionResult,
    ExtractRequest,
    find_videos,
    resolve_extract_config,
    run,
    run_extraction,
)

__all__ = ["SETTINGS", "VIDEO_SUFFIXES", "ExtractConfig", "ExtractRequest", "ExtractionError", "ExtractionResult",
           "find_videos", "resolve_extract_config", "run", "run_extraction"]
