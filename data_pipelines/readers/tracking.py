"""Single-object tracking (Molmo2 `sot_from_bbox` group) -> Examples.

allenai/molmo2-single-object-track holds one config per source (lasot, webuav, got10k, ...;
`SingleObjectTrackingDataset` loads config = DATASET_NAME, split train) in the same row schema
as the multi-object tracking repos (id, video, fps, sampling_fps, width, height, expression,
mask_id, frame_trajectories [{frame, time, points [{id, point [x, y] px, occluded}]}]), and
the task is always `single_point_track`. Upstream plays `<video_dir>/<video>.mp4`, where
video_dir is the source's own folder (`video_track/LaSOT/train/videos`, `.../TNL2K/videos`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import Row
from data_pipelines.readers.video import read_molmo2_track
from data_pipelines.schema import Example


def read_single_object_track(rows: Iterable[Row], *, media_root: str | None, source: str,
                             skipped: MutableMapping[str, int], video_dir: str
                             ) -> Iterator[Example]:
    """SOT rows as single-point tracks; `video` gains `.mp4` as in `TrackingDataset.get`."""
    def with_ext(row: Row) -> Row:
        name = str(row["video"])
        return {**row, "video": name if os.path.splitext(name)[1] else name + ".mp4"}
    return read_molmo2_track((with_ext(r) for r in rows), media_root=media_root, source=source,
                             skipped=skipped, task="single_point_track", video_dir=video_dir)
