"""A long video's segments as jobs of their own, spread over every worker; one code path, two engines.

With `FRAMEMASK_SEGMENT_MODE=queue` (or `auto` with Celery and `FRAMEMASK_SEGMENT_JOBS` > 1) the processing
job of a video longer than one segment does not render it itself:

1. **Fan out.** It plans the segments (`redact.segments.plan_segments`: key-frame starts, ~1 s context)
   and, in one transaction, parks itself as `waiting` and inserts one `segment` job per span
   (payload: span, revision 0, the mask and encoder settings and their hash). Its attempt is given back.
2. **Segments.** Any worker (embedded thread, `framemask worker` polling the table, or a Celery worker)
   claims a segment job like any other job (lease, heartbeat, retry), runs `run_segment` on its local copy
   of the original and stores the part video and its rows (`npz`, no pickle) under
   `store.layout.segment_key(video, segment, revision, settings hash)`: a re-run overwrites them. The last
   segment to succeed makes the parent claimable again, in its own completing transaction (the parent row
   is locked, so two segments finishing at once cannot both miss it); a sweep does the same for a release
   that was lost. A segment that fails for good fails the parent and its video.
3. **Join.** The parent, claimed again, downloads the parts and rows, stitches the tracks and joins the parts
   by remux with the original's timestamps and audio (`redact.segments.assemble_segments`, the code the
   local process pool uses), then stores the master, indexes, boxes, tracks and events exactly like the
   serial job. After its completion commits, the segment objects are deleted.

Progress and truth live in the job table; a Celery message only says "job X may be ready".
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from framemask.jobs.pipeline import ProcessOutcome, outcome_of
from framemask.jobs.queue import SegmentSpec
from framemask.jobs.run import AfterCommit, TaskRun, fetch, put, put_bytes, storage_retry
from framemask.media import FrameIndex, VideoInfo, probe
from framemask.redact import DEFAULT_STRIDE
from framemask.redact.encode import EncodeSettings
from framemask.redact.gop_encoder import GopTask
from framemask.redact.gop_parts import encode_runs
from framemask.redact.patch_plan import PatchPlan
from framemask.redact.pipeline import AnonymizeResult, Span
from framemask.redact.policy import MaskPolicy
from framemask.redact.segments import (
    SegmentJob,
    SegmentOutput,
    assemble_segments,
    plan_segments,
    run_segment,
    segment_encoder,
)
from framemask.service import revisions, videos
from framemask.service.context import Services
from framemask.settings import Settings
from framemask.store.layout import load_index, segment_key
from framemask.store.models import Job, Video

__all__ = [
    "SEGMENT_KIND",
    "FanOut",
    "fetch_parts",
    "gop_specs",
    "load_output",
    "plan_for",
    "save_output",
    "segment_task",
    "settings_digest",
    "succeeded_children",
]

log = logging.getLogger(__name__)

SEGMENT_KIND = "segment"
REVISION = 0
"""Revision of the first render (corrections re-render GOPs on their own: `jobs.rerender`)."""
PARENT_PROGRESS_SECONDS = 2.0


class FanOut(Exception):
    """Raised by a processing handler that handed its work to segment jobs: park it, insert these."""

    def __init__(self, children: list[SegmentSpec]) -> None:
        super().__init__(f"{len(children)} segments")
        self.children = children


# --- what a segment is rendered with --------------------------------------------------------------------------


def render_settings(settings: Settings, fps: float) -> dict[str, Any]:
    """The mask and encoder settings every segment of one video shares (JSON, hashed into the keys)."""
    return {
        "targets": list(settings.redact_targets),
        "style": settings.redact_style,
        "shape": "rect",
        "strength": 1.0,
        "stride": settings.redact_stride or DEFAULT_STRIDE,
        "encoder": segment_encoder(fps).to_dict(),
        "policy": MaskPolicy.for_fps(fps).to_dict(),
        "audio": bool(settings.keep_audio),
    }


def settings_digest(render: dict[str, Any]) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of `render`."""
    return hashlib.sha256(json.dumps(render, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def plan_for(index: FrameIndex, info: VideoInfo, settings: Settings, index_key: str) -> list[SegmentSpec]:
    """One `segment` job per span of the video (a single span means: no fan-out, render serially)."""
    spans = plan_segments(index, settings.segment_seconds)
    render = render_settings(settings, info.fps)
    digest = settings_digest(render)
    return [
        SegmentSpec(
            SEGMENT_KIND,
            k,
            {
                "span": [span.first, span.last, span.start, span.end],
                "revision": REVISION,
                "render": render,
                "digest": digest,
                "index_key": index_key,
                "count": len(spans),
            },
        )
        for k, span in enumerate(spans)
    ]


def gop_specs(plan: PatchPlan, revision: int | None, render: dict[str, Any]) -> list[SegmentSpec]:
    """One `segment` job per chunk of a re-render's GOP runs (`redact.patch_plan.PatchPlan`). `render` holds how
    to paint and encode them and the key of the video they patch (`base_key`); its hash goes into the keys.
    `span` is the chunk's re-encoded frames (what the job JSON lists)."""
    digest = settings_digest(render)
    return [
        SegmentSpec(
            SEGMENT_KIND,
            k,
            {
                "task": "gops",
                "span": [*plan.span(chunk), *plan.span(chunk)],
                "runs": chunk,
                "frames": plan.frames(chunk),
                "revision": revision,
                "render": render,
                "digest": digest,
                "count": len(plan.chunks),
            },
        )
        for k, chunk in enumerate(plan.chunks)
    ]


def part_key(video_id: str, child: Job, ext: str) -> str:
    """Where a child job stores its output `ext` (derived: a re-run overwrites it)."""
    payload = child.payload
    return segment_key(video_id, int(child.part or 0), int(payload["revision"] or 0), payload["digest"], ext)


# --- a segment's output as objects (npz of plain arrays, loaded without pickle) -----------------------------


def save_output(out: SegmentOutput, path: Path) -> None:
    """A `SegmentOutput`'s rows, painted rows, hits, GOP starts and timings as one npz (no objects)."""

    def stack(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        counts = np.array([len(r) for r in rows], np.int64)
        width = rows[0].shape[1] if rows else 0
        return (np.concatenate(rows).astype(np.int32) if rows else np.zeros((0, width), np.int32)), counts

    rows, row_counts = stack(out.rows)
    painted, painted_counts = stack(out.painted)
    meta = {"stride": out.stride, "timings": out.timings}
    with open(path, "wb") as fh:
        np.savez_compressed(
            fh,
            span=np.array([out.span.first, out.span.last, out.span.start, out.span.end], np.int64),
            labels=np.array(out.labels, dtype=str),
            rows=rows,
            row_counts=row_counts,
            painted=painted,
            painted_counts=painted_counts,
            hit_ids=np.array(sorted(out.hits), np.int64),
            hit_counts=np.array([out.hits[k] for k in sorted(out.hits)], np.int64),
            gop_starts=np.array(out.gop_starts, np.int64),
            meta=np.array(json.dumps(meta)),
        )


def load_output(path: Path, part: Path) -> SegmentOutput:
    """The `SegmentOutput` `save_output` wrote, its part video at `part`."""
    with np.load(path, allow_pickle=False) as data:
        span = Span(*(int(v) for v in data["span"]))

        def split(rows: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
            return [np.array(r, np.int32) for r in np.split(rows, np.cumsum(counts)[:-1])] if len(counts) else []

        meta = json.loads(str(data["meta"]))
        return SegmentOutput(
            span,
            str(part),
            [str(v) for v in data["labels"].tolist()],
            split(data["rows"], data["row_counts"]),
            split(data["painted"], data["painted_counts"]),
            {int(k): int(v) for k, v in zip(data["hit_ids"], data["hit_counts"], strict=True)},
            [int(g) for g in data["gop_starts"]],
            meta["stride"],
            meta["timings"],
        )


# --- the segment job ---------------------------------------------------------------------------------------------


class _Progress:
    """Receives `run_segment`'s (span start, frames done) updates: the segment's progress on its own row,
    and now and then the parent's mean over all segments."""

    def __init__(self, run: TaskRun, parent_id: str | None, frames: int) -> None:
        self.run, self.parent_id, self.frames = run, parent_id, max(frames, 1)
        self.done = 0
        self._parent_at = 0.0
        self._lock = threading.Lock()

    def put(self, item: tuple[int, int]) -> None:
        with self._lock:
            self.done += int(item[1])
            self.run.report(min(99.0, 100.0 * self.done / self.frames), "segment")
            now = time.monotonic()
            if self.parent_id is not None and now - self._parent_at >= PARENT_PROGRESS_SECONDS:
                self._parent_at = now
                try:
                    self.run.services.queue.aggregate_progress(self.parent_id)
                except Exception:  # progress is cosmetic; the segment's own row is the truth
                    log.debug("parent progress not written", exc_info=True)


def segment_task(run: TaskRun) -> Callable[[Session], None] | None:
    """Run one child job: a segment of a processing job, or a chunk of GOPs of a re-render (`task: gops`)."""
    services = run.services
    video = videos.get_video(services, video_id=run.video_id) if run.video_id else None
    job = services.queue.get(run.job_id)
    if video is None or job is None:
        return None
    if run.payload.get("task") == "gops":
        return _gops_task(run, video, job)
    return _span_task(run, video, job)


def _span_task(run: TaskRun, video: Video, job: Job) -> Callable[[Session], None] | None:
    """Render one segment of a video and store its part video and rows under their derived keys."""
    services, settings = run.services, run.services.settings
    payload = run.payload
    index = load_index(services.store, settings.bucket_processed, payload["index_key"])
    if index is None:
        raise FileNotFoundError(f"segment {job.part}: the original's frame index is missing")
    src = _original(run, video)
    span = Span(*payload["span"])
    render = payload["render"]
    run.report(0.0, "segment")
    out = run_segment(
        SegmentJob(
            str(src),
            str(run.work_dir / "part.mp4"),
            span,
            index.to_bytes(),
            tuple(render["targets"]),
            render["style"],
            render["shape"],
            float(render["strength"]),
            render["stride"],
            EncodeSettings(**render["encoder"]),
            MaskPolicy.from_dict(render["policy"]),
            _Progress(run, job.parent_id, span.last - span.first + 1),
        )
    )
    rows_path = run.work_dir / "rows.npz"
    save_output(out, rows_path)
    files = {"part_key": ("mp4", Path(out.part)), "rows_key": ("npz", rows_path)}
    timings = {k: v for k, v in out.timings.items() if isinstance(v, int | float)}
    result = {"frames": span.end - span.start + 1, "timings": timings}
    return _stored(run, job, files, result)


def _gops_task(run: TaskRun, video: Video, job: Job) -> Callable[[Session], None] | None:
    """Re-encode one chunk of a re-render's GOP runs (`redact.gop_parts.encode_runs`) and store the part.

    The regions are painted from the revision as the parent paints them (the same boxes, policy and style),
    so a part made here splices like one encoded by the parent itself."""
    services, settings = run.services, run.services.settings
    payload, render = run.payload, run.payload["render"]
    with services.db.session() as session:
        target = revisions.revision(session, video_id=video.id, number=payload["revision"])
    painted = revisions.effective_boxes(services, video=video, revision=target).painted(revisions.render_policy(video))
    src = _original(run, video)
    base_key = render["base_key"]
    base = fetch(
        services.store, settings.bucket_processed, base_key, video_cache(settings, video.id) / Path(base_key).name
    )
    task = GopTask(
        str(src),
        str(base),
        str(run.work_dir / "gops.npz"),
        payload["runs"],
        painted,
        render["style"],
        render["shape"],
        float(render["strength"]),
        EncodeSettings(**render["encoder"]),
        revisions.video_index(services, video=video),
    )
    run.report(0.0, "segment")
    progress = _Progress(run, job.parent_id, int(payload["frames"]))
    timings = encode_runs(task, lambda done, _total: progress.put((0, done - progress.done)))
    result = {"frames": int(payload["frames"]), "timings": {k: round(v, 3) for k, v in timings.items()}}
    return _stored(run, job, {"part_key": ("npz", Path(task.part))}, result)


def _original(run: TaskRun, video: Video) -> Path:
    """The worker's local copy of the video's original."""
    cache = video_cache(run.services.settings, video.id) / Path(video.raw_key).name
    return fetch(run.services.store, video.raw_bucket, video.raw_key, cache)


def _stored(
    run: TaskRun, job: Job, files: dict[str, tuple[str, Path]], result: dict[str, Any]
) -> Callable[[Session], None] | None:
    """Store a child's output files (result field -> (ext, file)) under their derived keys; the finalize records
    its result and, once it is the last child to succeed, releases the parent (announced after the commit)."""
    services, settings = run.services, run.services.settings
    video_id, parent_id = str(job.video_id), job.parent_id
    keys = {name: part_key(video_id, job, ext) for name, (ext, _path) in files.items()}
    for name, (_ext, path) in files.items():
        put(services.store, settings.bucket_processed, keys[name], path)
    if not videos.video_exists(services, video_id=video_id):  # deleted while we worked: leave nothing behind
        for key in keys.values():
            services.store.delete(settings.bucket_processed, key)
        return None
    result = {**keys, **result}
    released: list[str] = []

    def finalize(session: Session) -> None:
        services.queue.set_result(session, run.job_id, result)
        if parent_id is not None and services.queue.release(session, parent_id):
            released.append(parent_id)

    def after_commit() -> None:
        if parent_id is None:
            return
        services.queue.aggregate_progress(parent_id)
        for job_id in released:  # the join may start: tell the workers
            services.announce(job_id)

    return AfterCommit(finalize, after_commit)


def on_segment_failed(services: Services, job_id: str, message: str) -> Callable[[Session], None]:
    """The `on_final` of a segment job that will not be retried: its parent and video fail."""

    def finalize(session: Session) -> None:
        job = session.get(Job, job_id)
        if job is not None and job.parent_id is not None:
            services.queue.fail_parent(session, job.parent_id, f"segment {job.part} failed: {message}")

    return finalize


# --- fan-out and join, inside the processing job ---------------------------------------------------------------


def video_cache(settings: Settings, video_id: str | None) -> Path:
    """Where a worker keeps its local copy of a video's original (bounded and swept by housekeeping)."""
    return settings.cache_dir / "videos" / str(video_id)


def process_segmented(
    run: TaskRun, src: Path, stored: FrameIndex | None, original_key: str
) -> tuple[ProcessOutcome, list[str], dict[str, float]] | None:
    """The processing job on the queue path: fan out (raises `FanOut`), join (returns `(ProcessOutcome,
    cleanup keys)`), or None when the video is a single segment (the caller renders it serially)."""
    services, settings = run.services, run.services.settings
    children = services.queue.children(run.job_id)
    if not children:
        run.report(0.0, "probe")
        info = probe(src, index=stored)
        assert info.index is not None
        specs = plan_for(info.index, info, settings, original_key)
        if len(specs) < 2:
            return None
        if stored is None:  # e.g. ingested by an S3 hook: the segments need the original's index
            put_bytes(services.store, settings.bucket_processed, original_key, info.index.to_bytes())
        raise FanOut(specs)
    return _join(run, src, stored, succeeded_children(children))


def succeeded_children(children: list[Job]) -> list[Job]:
    """`children`, once every one succeeded: a parent claimed while some still run (a manual re-queue) fails
    this attempt and waits again."""
    unfinished = [c for c in children if c.status != "succeeded"]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} of {len(children)} segments have not succeeded yet")
    return children


def fetch_parts(run: TaskRun, children: list[Job], ext: str) -> tuple[list[Path], list[str]]:
    """Download every child's output `ext` into the work dir: (local files in part order, their keys)."""
    store, bucket = run.services.store, run.services.settings.bucket_processed
    keys = [part_key(str(run.video_id), child, ext) for child in children]
    paths = [run.work_dir / f"part{int(child.part or 0):05d}.{ext}" for child in children]
    for key, path in zip(keys, paths, strict=True):
        storage_retry(store.get_file)(bucket, key, path)
    return paths, keys


def _join(
    run: TaskRun, src: Path, stored: FrameIndex | None, children: list[Job]
) -> tuple[ProcessOutcome, list[str], dict[str, float]]:
    services, settings = run.services, run.services.settings
    store, bucket = services.store, settings.bucket_processed
    started = time.perf_counter()
    run.report(85.0, "join")
    parts, part_keys = fetch_parts(run, children, "mp4")
    rows, row_keys = fetch_parts(run, children, "npz")
    outputs = [load_output(r, p) for r, p in zip(rows, parts, strict=True)]
    keys = part_keys + row_keys
    fetched = time.perf_counter()
    if stored is None:
        stored = load_index(store, bucket, children[0].payload["index_key"])
    info = probe(src, index=stored)
    render = children[0].payload["render"]
    dst = run.work_dir / "processed.mp4"
    track, painted, gop_starts = assemble_segments(outputs, info, dst, src if render["audio"] else None)
    joined = time.perf_counter()
    policy = MaskPolicy.from_dict(render["policy"])
    result = AnonymizeResult(dst, info.end_sequence, gop_starts, {}, 0, track, painted, policy=policy)
    result.render = {
        "style": render["style"],
        "shape": render["shape"],
        "strength": render["strength"],
        "policy": policy.to_dict(),
        "encoder": render["encoder"],
        "segments": [[o.span.start, o.span.end] for o in outputs],
    }
    run.report(88.0, "index")
    outcome = outcome_of(result, info)
    timings = {
        "fetch_parts": round(fetched - started, 3),
        "join": round(joined - fetched, 3),
        "index": round(time.perf_counter() - joined, 3),
    }
    log.info("job %s joined %d segments: %s", run.job_id, len(outputs), timings)
    return outcome, keys, timings


def delete_keys(services: Services, keys: list[str]) -> Callable[[], None]:
    """After the join committed: the segment objects are no longer needed."""

    def after_commit() -> None:
        for key in keys:
            try:
                services.store.delete(services.settings.bucket_processed, key)
            except Exception:
                log.warning("could not delete segment object %s", key, exc_info=True)

    return after_commit
