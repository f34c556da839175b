"""Re-render only the corrected stretches of a processed master: GOP patching ("smart rendering").

The master (`encode.VideoWriter`) is H.264 with closed GOPs, parameter sets repeated in-band (`avc3`) and
every input timestamp kept. A correction therefore needs only the GOPs that hold changed frames: those are
decoded again from the *original* (never from the lossy master, so corrections never add generation
loss), masked with the new boxes by the same masker, encoded with the same `EncodeSettings`, and spliced
between the untouched GOPs, whose packets are copied byte for byte. Audio packets are copied too (from
`audio_from` when given: a re-render takes them from the processed master, whose audio no earlier
correction touched). With muted spans (`muted`, ms from the first frame) the audio is decoded, silenced or
replaced by a tone over exactly those spans and re-encoded to AAC (`encode.redact_audio_frame`). Cost is
one demux/remux pass over the file plus the re-encoded frames: proportional to the edit, not the video.

Why the splice is safe:
- closed GOPs reference nothing outside themselves, so a GOP can be replaced alone (checked: every GOP
  must hold a contiguous run of frames in presentation order, else the master is refused);
- the decoder takes SPS/PPS from each IDR (`avc3`), so a fresh encoder's headers cannot break the frames
  after the splice (the mp4 `avc1` pitfall of smart-cut tools);
- timestamps: every re-encoded frame gets the master's pts for its seq, and each new packet takes the
  master's dts at the same decode position. x264 derives dts from the sorted pts shifted by its fixed
  reorder delay, so those are the dts a continuous encode produces; a fresh encoder would extrapolate the
  first ones and could collide with the previous GOP. `dts <= pts` is verified for every packet.

Painting: a re-encoded frame is painted exactly as the master render painted it (in the decoder's I420 planes
where the pipeline does, else in RGB; the pipeline's own decision), so unchanged boxes give the master's frames.

Scale: `plan_patch` groups the runs into chunks of about `chunk_seconds` of re-encoded video; `encode_runs`
re-encodes one chunk into a part file (packets with the master's timestamps, checked by `read_parts`), and
`splice` remuxes the master with the runs taken from an encoder or from parts. `patch_render` encodes the
chunks serially (streaming: no parts) or in a process pool; `jobs.rerender` can hand them to `segment` jobs.

Modules, each one step: `gops` (the master's GOP map), `patch_plan` (runs and chunks), `gop_encoder`
(re-encoding a run), `gop_parts` (chunks as part files, the process pool) and `splice` (the remux); this one
finds the changed frames and runs the steps (`patch_render`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framemask.errors import InputError
from framemask.media import FrameIndex
from framemask.redact.boxes import BoxTrack
from framemask.redact.encode import EncodeSettings
from framemask.redact.gop_encoder import GopEncoder, GopTask
from framemask.redact.gop_parts import encode_pool, read_parts
from framemask.redact.gops import master_size, x264_options
from framemask.redact.patch_plan import CHUNK_SECONDS, PatchPlan, PatchResult, plan_patch
from framemask.redact.policy import DEFAULT_POLICY, MaskPolicy, painted_from_doc
from framemask.redact.splice import Progress, check_dst, splice
from framemask.redact.styles import make_masker

__all__ = ["changed_seqs", "master_settings", "patch_render"]


def changed_seqs(before: BoxTrack, after: BoxTrack) -> list[int]:
    """Frames whose masked regions differ between two box tracks of the same video."""
    if len(before) != len(after):
        raise InputError(f"box tracks cover {len(before)} and {len(after)} frames")
    return [seq for seq in range(1, len(after) + 1) if not _same_regions(before.rows(seq), after.rows(seq))]


def master_settings(master: str | os.PathLike[str], keyint: int) -> EncodeSettings:
    """Encoder settings that rebuild `master`'s GOPs, for a master whose own were not recorded: `keyint` (from
    its GOP map) and the B-frame layout x264 wrote into it (`x264_options`). A re-encoded GOP must keep the
    master's decode order, and masters have been written both with and without a B-pyramid."""
    return EncodeSettings.from_x264_options(x264_options(master), keyint)


def _same_regions(a: np.ndarray, b: np.ndarray) -> bool:
    """Same set of (label, box) rows, whatever their order."""
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(np.unique(a, axis=0), np.unique(b, axis=0)))


def patch_render(
    src: str | os.PathLike[str],
    master: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    boxes_doc: Mapping[str, Any] | None,
    changed: Iterable[int],
    *,
    gop_starts: Sequence[int] | None = None,
    style: str = "mosaic",
    shape: str = "rect",
    strength: float = 1.0,
    settings: EncodeSettings | None = None,
    index: FrameIndex | None = None,
    progress: Progress | None = None,
    policy: MaskPolicy = DEFAULT_POLICY,
    painted: BoxTrack | None = None,
    audio_from: str | os.PathLike[str] | None = None,
    muted: Sequence[tuple[float, float, str]] = (),
    jobs: int = 1,
    chunk_seconds: float = CHUNK_SECONDS,
    plan: PatchPlan | None = None,
) -> PatchResult:
    """Write `dst`: `master` with every GOP holding a `changed` frame re-rendered from `src` and `boxes_doc`.

    `boxes_doc` is the complete seed document of what must be masked (not only the changed frames: a GOP is
    re-encoded whole); `policy` paints it, and must be the one the master was rendered with. A caller that
    already has that painting (a re-render compares revisions by it) passes it as `painted` instead.
    `gop_starts`, if given, must match the master (a guard against a stale GOP map).
    `settings` must be the ones the master was encoded with; by default they are derived from the master
    (`master_settings`: its GOP length and x264's own record of its B-frames).
    `audio_from` is the file whose first audio stream goes into `dst` (default: `master`'s); `muted` lists
    (start ms, end ms, "mute" | "tone") spans measured from the first frame, as the frame index counts.
    With `jobs` > 1 and more than one chunk of about `chunk_seconds` to re-encode, the chunks are encoded
    in that many processes (`encode_runs`) and spliced from their parts; the output is the same.
    `plan`: the `plan_patch` of these arguments, when the caller made it already (it reads the whole master).
    """
    started = time.perf_counter()
    keyint = settings.keyint if settings is not None else None
    plan = plan or plan_patch(master, changed, gop_starts=gop_starts, keyint=keyint, chunk_seconds=chunk_seconds)
    gops = plan.gops
    settings = settings or master_settings(master, plan.keyint)
    make_masker(style, shape, strength)  # a bad style is an InputError before any work
    check_dst(master, dst)
    if painted is None:
        if boxes_doc is None:
            raise InputError("patch_render needs the boxes document or its painting")
        painted = painted_from_doc(boxes_doc, gops.end_sequence, *master_size(master), policy)
    task = GopTask(str(src), str(master), "", [], painted, style, shape, strength, settings, index, gops)
    timer: dict[str, float] = {}
    splice_args: dict[str, Any] = {"audio_from": audio_from, "muted": muted}
    if jobs > 1 and len(plan.chunks) > 1:
        scratch = Path(tempfile.mkdtemp(prefix=".framemask-gops-", dir=Path(dst).parent))
        try:
            parts = encode_pool(plan, task, scratch, jobs, progress, timer)
            audio = splice(master, dst, plan, read_parts(parts, gops), **splice_args)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        with GopEncoder(task, timer) as encoder:
            audio = splice(master, dst, plan, encoder.run, progress=progress, **splice_args)
    timer["total"] = time.perf_counter() - started
    return plan.result(Path(dst), timer, audio)
