"""Corrections in the database and the `rerender` job that bakes a revision into the final video.

The detected boxes (`processed_frame`) never change after processing; each saved correction is a new
`revision` row holding the whole corrections document. The effective boxes of a video are the detected
ones with the latest revision applied (`framemask.redact.corrections`).

A render is incremental: the previous final video (or the processed master, the first time) already
shows the boxes of some revision, so only frames whose painted regions differ between that revision
and the new one are re-rendered (painted by the mask policy and the style recorded with the video when
its master was rendered, so re-encoded GOPs look like the rest), and `framemask.redact.patch` re-encodes
only their GOPs. Which revision a final shows is recorded in the succeeded job's `result` (`{"revision",
"final_key", ...}`), the audit trail of renders; the final lives at its own key per revision, so a render
never overwrites its input.

Audio: the final's audio always comes from the processed master (no earlier correction touched it). When
the revision has `mutedRanges` it is silenced (or replaced by a 1 kHz tone) over exactly those frames'
time span and re-encoded to AAC; otherwise it is a byte copy. A render therefore always writes a new final,
also when only muted ranges changed and no GOP is re-encoded.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from framemask.errors import NotFoundError
from framemask.jobs.events_step import events_after_render
from framemask.media import FrameIndex
from framemask.redact.corrections import Corrections, EffectiveBoxes
from framemask.redact.encode import EncodeSettings
from framemask.redact.patch import changed_seqs, patch_render
from framemask.redact.policy import MaskPolicy
from framemask.store.layout import load_index, local_copy, store_file, video_prefix
from framemask.store.models import Job, ProcessedFrame, Revision, Video, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from framemask.jobs.context import Services
    from framemask.jobs.tasks import TaskRun

__all__ = [
    "RENDER_KIND",
    "active_render",
    "changed_frames",
    "effective_boxes",
    "final_key",
    "final_revision",
    "last_render",
    "latest_revision",
    "muted_spans",
    "render_policy",
    "rerender_task",
    "sha256_of",
]

log = logging.getLogger(__name__)

RENDER_KIND = "rerender"
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[Any, ...], EffectiveBoxes] = OrderedDict()
_cache_lock = threading.Lock()


def final_key(video_id: str, revision: int | None) -> str:
    """Where the final video of a revision is stored (revision 0: no corrections)."""
    return f"{video_prefix(video_id)}final-r{revision or 0}.mp4"


_FINAL_RE = re.compile(r"final-r(\d+)\.mp4$")


def final_revision(video: Video) -> int | None:
    """The revision the video's current final shows (0: none applied), None without a final (from its key)."""
    if not video.final_key:
        return None
    match = _FINAL_RE.search(video.final_key)
    return int(match.group(1)) if match else None


def sha256_of(store: Any, bucket: str, key: str, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a stored object, streamed (memory stays at one chunk)."""
    digest = hashlib.sha256()
    with store.open_read(bucket, key) as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def span_ms(index: FrameIndex, start_seq: int, end_seq: int, duration_ms: float | None = None) -> tuple[float, float]:
    """[start, end) ms of frames start_seq..end_seq: the time of start_seq to the time of end_seq + 1, or to
    the end of the video for the last frame (the later of the index's and the probed duration)."""
    start = index.time_of(start_seq)
    if end_seq < index.end_sequence:
        return start, index.time_of(end_seq + 1)
    return start, max(index.duration_ms, float(duration_ms or 0.0))


def muted_spans(
    corrections: Corrections, index: FrameIndex, duration_ms: float | None
) -> list[tuple[float, float, str]]:
    """(start ms, end ms, mode) of every muted range of a revision, in ms from the first frame."""
    return [(*span_ms(index, m.start_seq, m.end_seq, duration_ms), m.mode) for m in corrections.muted_ranges]


def latest_revision(session: Session, video_id: str) -> Revision | None:
    query = select(Revision).where(Revision.video_id == video_id).order_by(Revision.number.desc()).limit(1)
    return session.scalar(query)


def _revision(session: Session, video_id: str, number: int | None) -> Revision | None:
    if number is None:
        return None
    row = session.scalar(select(Revision).where(Revision.video_id == video_id, Revision.number == number))
    if row is None:
        raise NotFoundError(f"video {video_id} has no revision {number}")
    return row


def last_render(session: Session, video: Video) -> dict[str, Any] | None:
    """The result of the render that produced the video's current final, if there is one."""
    if video.final_key is None:
        return None
    query = (
        select(Job.result)
        .where(Job.video_id == video.id, Job.kind == RENDER_KIND, Job.status == "succeeded")
        .order_by(Job.finished_at.desc())
    )
    for result in session.scalars(query):
        if result and result.get("final_key") == video.final_key:
            return dict(result)
    return None


def active_render(session: Session, video_id: str) -> Job | None:
    """A queued or running render of the video (one at a time per video)."""
    query = select(Job).where(Job.video_id == video_id, Job.kind == RENDER_KIND, Job.status.in_(("queued", "running")))
    return session.scalars(query.limit(1)).first()


def _detected_doc(session: Session, video: Video) -> dict[str, Any]:
    rows = session.execute(
        select(ProcessedFrame.seq, ProcessedFrame.boxes)
        .where(ProcessedFrame.video_id == video.id)
        .order_by(ProcessedFrame.seq)
    ).all()
    return {"endSequence": int(video.end_sequence or 0), "sequence": [{"seq": s, **(b or {})} for s, b in rows]}


def _index(services: Services, video: Video) -> FrameIndex:
    index = load_index(services.store, services.settings.bucket_processed, video.index_key)
    if index is None:
        raise NotFoundError(f"video {video.id} has no frame index yet")
    return index


def effective_boxes(services: Services, video: Video, revision: Revision | None) -> EffectiveBoxes:
    """The video's boxes with `revision` applied (None: as detected); cached per video state and revision."""
    key = (video.id, video.updated_at, video.processed_key, revision.number if revision else 0)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    with services.db.session() as session:
        detected = _detected_doc(session, video)
    corrections = Corrections.model_validate(revision.edits if revision else {})
    boxes = EffectiveBoxes(detected, corrections, _index(services, video).time_ms, video.width or 0, video.height or 0)
    with _cache_lock:
        _cache[key] = boxes
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return boxes


def render_policy(video: Video) -> MaskPolicy:
    """The mask policy the video's master was rendered with (re-renders must paint the same way)."""
    params = video.render_params or {}
    return MaskPolicy.from_dict(params["policy"]) if "policy" in params else MaskPolicy.for_fps(video.fps or 0)


def changed_frames(video: Video, before: EffectiveBoxes, after: EffectiveBoxes) -> list[int]:
    """Frames whose painted regions differ between two revisions: what a render re-encodes (and what a
    save reports as changed)."""
    policy = render_policy(video)
    return changed_seqs(before.painted(policy), after.painted(policy))


# --- the job ----------------------------------------------------------------------------------------------------


def rerender_task(run: TaskRun) -> Callable[[Session], None] | None:
    """Bake revision `payload["revision"]` into a new final video, re-encoding only the changed GOPs."""
    services, settings = run.services, run.services.settings
    number = run.payload.get("revision")
    with services.db.session() as session:
        video = session.get(Video, run.video_id) if run.video_id else None
        if video is None or video.processed_key is None:
            return None  # deleted (or never processed) while queued
        target = _revision(session, video.id, number)
        before = last_render(session, video)
        base_revision = _revision(session, video.id, before["revision"]) if before else None
    _drop_stale_finals(services, video)
    run.report(1.0, "compare")
    new = effective_boxes(services, video, target)
    old = effective_boxes(services, video, base_revision)
    params = video.render_params or {}
    policy = render_policy(video)
    painted = new.painted(policy)  # painted once: to find the changed frames, then to re-encode their GOPs
    changed = changed_seqs(old.painted(policy), painted)
    run.report(5.0, "fetch")
    cache = settings.cache_dir / "videos" / video.id
    src = local_copy(services.store, video.raw_bucket, video.raw_key, cache / Path(video.raw_key).name)
    base_key = video.final_key if before else video.processed_key
    base = local_copy(services.store, settings.bucket_processed, base_key, cache / Path(base_key).name)
    master = base if not before else local_copy(
        services.store, settings.bucket_processed, video.processed_key, cache / Path(video.processed_key).name
    )
    index = _index(services, video)
    corrections = Corrections.model_validate(target.edits if target else {})
    muted = muted_spans(corrections, index, video.duration_ms)
    run.report(10.0, "rerender")
    result = patch_render(
        src,
        base,
        run.work_dir / "final.mp4",
        None,  # the painting below is what it paints
        changed,
        gop_starts=None if before else video.gop_starts,
        style=params.get("style", settings.redact_style),
        shape=params.get("shape", "rect"),
        strength=params.get("strength", 1.0),
        settings=EncodeSettings(**params["encoder"]) if "encoder" in params else None,
        policy=policy,
        painted=painted,
        index=index,
        progress=lambda done, total: run.report(10.0 + 85.0 * done / max(total, 1), "rerender"),
        audio_from=master,
        muted=muted,
    )
    key = final_key(video.id, number)
    run.report(96.0, "store")
    digest = _file_sha256(result.output)
    store_file(services.store, settings.bucket_processed, key, result.output)
    summary = {
        "revision": number,
        "base_revision": before["revision"] if before else None,
        "final_key": key,
        "changed_frames": len(changed),
        "reencoded": [list(r) for r in result.reencoded],
        "reencoded_frames": result.reencoded_frames,
        "copied_gops": result.copied_gops,
        "audio": result.audio,
        "muted_ranges": [
            {"start_seq": m.start_seq, "end_seq": m.end_seq, "mode": m.mode, "start_ms": round(a, 3),
             "end_ms": round(b, 3)}
            for m, (a, b, _mode) in zip(corrections.muted_ranges, muted, strict=True)
        ],
        "final_sha256": digest,
        "timings": result.timings,
    }
    log.info("video %s: revision %s rendered, %d frames re-encoded", video.id, number, result.reencoded_frames)
    finalize = _finalize(run.job_id, video.id, key, summary)
    return events_after_render(run, video, result.output, key, new, changed, finalize)  # events of the changed spans


def _finalize(job_id: str, video_id: str, key: str, summary: dict[str, Any]) -> Callable[[Session], None]:
    def finalize(session: Session) -> None:
        video = session.get(Video, video_id)
        if video is None:
            return
        video.final_key, video.updated_at = key, utcnow()
        video.final_sha256 = summary.get("final_sha256")
        session.execute(update(Job).where(Job.id == job_id).values(result=summary))

    return finalize


def _drop_stale_finals(services: Services, video: Video) -> None:
    """Delete finals no longer current (left by earlier renders) and what was derived from them (their frame
    index); one render runs per video at a time."""
    bucket = services.settings.bucket_processed
    for key in services.store.list(bucket, f"{video_prefix(video.id)}final-"):
        if not video.final_key or not key.startswith(video.final_key):
            services.store.delete(bucket, key)
