"""The `rerender` job that bakes a corrections revision into the final video (revisions and their boxes:
`framemask.service.revisions`; queueing renders and naming finals: `framemask.service.renders`).

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

Scale: the GOPs to re-encode are cut into chunks of about `FRAMEMASK_SEGMENT_SECONDS` of video
(`redact.patch_plan.plan_patch`). With segments on the queue (`Settings.segments_on_queue`) and more than one chunk,
the job fans out one `segment` job per chunk (payload `task: gops`, like the processing job's segments:
`jobs.segments`), waits, and when claimed again splices their parts into the final and deletes them after
its commit; with `FRAMEMASK_SEGMENT_JOBS` > 1 locally the chunks run in a process pool; otherwise serially.
Every path cuts the same chunks, so they paint and splice the same frames.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from framemask.errors import FramemaskError
from framemask.jobs.events_step import events_after_render
from framemask.jobs.pipeline import Report
from framemask.jobs.run import AfterCommit, Finalize, TaskRun
from framemask.jobs.segments import FanOut, delete_keys, fetch_parts, gop_specs, succeeded_children
from framemask.media import FrameIndex
from framemask.redact.corrections import Corrections
from framemask.redact.encode import EncodeSettings
from framemask.redact.gop_parts import read_parts
from framemask.redact.patch import changed_seqs, master_settings, patch_render
from framemask.redact.patch_plan import PatchPlan, PatchResult, plan_patch
from framemask.redact.splice import splice
from framemask.service import renders, revisions
from framemask.service.context import Services
from framemask.store.layout import local_copy, store_file, video_prefix
from framemask.store.models import Job, Video

__all__ = ["RENDER_KIND", "muted_spans", "rerender_task"]

log = logging.getLogger(__name__)

RENDER_KIND = renders.RENDER_KIND


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def muted_spans(
    corrections: Corrections, index: FrameIndex, duration_ms: float | None
) -> list[tuple[float, float, str]]:
    """(start ms, end ms, mode) of every muted range of a revision, in ms from the first frame."""
    return [(*renders.span_ms(index, m.start_seq, m.end_seq, duration_ms), m.mode) for m in corrections.muted_ranges]


# --- the job ----------------------------------------------------------------------------------------------------


def rerender_task(run: TaskRun) -> Finalize | None:
    """Bake revision `payload["revision"]` into a new final video, re-encoding only the changed GOPs."""
    services, settings = run.services, run.services.settings
    number = run.payload.get("revision")
    with services.db.session() as session:
        video = session.get(Video, run.video_id) if run.video_id else None
        if video is None or video.processed_key is None:
            return None  # deleted (or never processed) while queued
        target = revisions.revision(session, video_id=video.id, number=number)
        before = renders.last_render(session, video=video)
        base_revision = revisions.revision(session, video_id=video.id, number=before["revision"]) if before else None
    children = services.queue.children(run.job_id) if settings.segments_on_queue else []
    report = _pass_progress(run, bool(children))
    _drop_stale_finals(services, video)
    report(1.0, "compare")
    new = revisions.effective_boxes(services, video=video, revision=target)
    old = revisions.effective_boxes(services, video=video, revision=base_revision)
    params = video.render_params or {}
    policy = revisions.render_policy(video)
    painted = new.painted(policy)  # painted once: to find the changed frames, then to re-encode their GOPs
    changed = changed_seqs(old.painted(policy), painted)
    report(5.0, "fetch")
    cache = settings.cache_dir / "videos" / video.id
    processed = str(video.processed_key)  # checked above: a video without a master returned early
    base_key = str(video.final_key) if before else processed  # a last render implies a final
    base = local_copy(services.store, settings.bucket_processed, base_key, cache / Path(base_key).name)
    master = (
        base
        if not before
        else local_copy(services.store, settings.bucket_processed, processed, cache / Path(processed).name)
    )
    index = revisions.video_index(services, video=video)
    corrections = Corrections.model_validate(target.edits if target else {})
    muted = muted_spans(corrections, index, video.duration_ms)
    report(10.0, "rerender")
    encoder = EncodeSettings(**params["encoder"]) if "encoder" in params else None
    style, shape = params.get("style", settings.redact_style), params.get("shape", "rect")
    strength = params.get("strength", 1.0)
    gop_starts = None if before else video.gop_starts
    output = run.work_dir / "final.mp4"
    result: PatchResult | None = None
    part_keys: list[str] = []
    plan: PatchPlan | None = None
    if settings.segments_on_queue:  # chunks as `segment` jobs when there is more than one
        plan = plan_patch(
            base,
            changed,
            gop_starts=gop_starts,
            keyint=encoder.keyint if encoder else None,
            chunk_seconds=settings.segment_seconds,
        )
        if len(plan.chunks) > 1:
            render = {
                "style": style,
                "shape": shape,
                "strength": strength,
                "encoder": (encoder or master_settings(base, plan.keyint)).to_dict(),
                "policy": policy.to_dict(),
                "base_key": base_key,
            }
            result, part_keys = _on_queue(run, children, plan, number, render, base, output, master, muted)
    if result is None:  # the original is needed only here: segment jobs fetch their own copy
        src = local_copy(services.store, video.raw_bucket, video.raw_key, cache / Path(video.raw_key).name)
        result = patch_render(
            src,
            base,
            output,
            None,  # the painting below is what it paints
            changed,
            gop_starts=gop_starts,
            style=style,
            shape=shape,
            strength=strength,
            settings=encoder,
            policy=policy,
            painted=painted,
            index=index,
            progress=lambda done, total: report(10.0 + 85.0 * done / max(total, 1), "rerender"),
            audio_from=master,
            muted=muted,
            jobs=settings.segment_jobs if not settings.segments_on_queue else 1,
            chunk_seconds=settings.segment_seconds,
            plan=plan,  # one chunk on the queue path: already planned
        )
    key = renders.final_key(video.id, number)
    report(96.0, "store")
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
        "segments": len(children),
        "audio": result.audio,
        "muted_ranges": [
            {
                "start_seq": m.start_seq,
                "end_seq": m.end_seq,
                "mode": m.mode,
                "start_ms": round(a, 3),
                "end_ms": round(b, 3),
            }
            for m, (a, b, _mode) in zip(corrections.muted_ranges, muted, strict=True)
        ],
        "final_sha256": digest,
        "timings": result.timings,
    }
    log.info("video %s: revision %s rendered, %d frames re-encoded", video.id, number, result.reencoded_frames)
    finalize = renders.record_render(job_id=run.job_id, video_id=video.id, key=key, summary=summary)
    finalize = events_after_render(
        run, video, result.output, key, new, changed, finalize
    )  # events of the changed spans
    return AfterCommit(finalize, delete_keys(services, part_keys)) if part_keys else finalize


def _pass_progress(run: TaskRun, joining: bool) -> Report:
    """Progress of this pass: the join after the segments (which took the parent to 85 %) maps its steps
    into 85-100 %, so the bar never runs backwards."""
    if not joining:
        return run.report
    return lambda percent, stage: run.report(85.0 + 0.15 * percent, stage)


def _on_queue(
    run: TaskRun,
    children: list[Job],
    plan: PatchPlan,
    number: int | None,
    render: dict[str, Any],
    base: Path,
    output: Path,
    audio_from: Path,
    muted: list[tuple[float, float, str]],
) -> tuple[PatchResult, list[str]]:
    """The chunks of `plan` as `segment` jobs: fan out (raises `FanOut`) or, claimed again once they all
    succeeded, splice their parts into `output`: (result, the part keys to delete after the commit)."""
    if not children:
        raise FanOut(gop_specs(plan, number, render))
    started = time.perf_counter()
    children = succeeded_children(children)
    if [c.payload["runs"] for c in children] != plan.chunks or children[0].payload["render"] != render:
        raise FramemaskError("the GOPs to re-encode changed while their segment jobs ran; render again")
    parts, keys = fetch_parts(run, children, "npz")
    fetched = time.perf_counter()
    audio = splice(base, output, plan, read_parts(parts, plan.gops), audio_from=audio_from, muted=muted)
    timer = {"fetch_parts": fetched - started, "splice": time.perf_counter() - fetched}
    timer["total"] = time.perf_counter() - started
    return plan.result(output, timer, audio), keys


def _drop_stale_finals(services: Services, video: Video) -> None:
    """Delete finals no longer current (left by earlier renders) and what was derived from them (their frame
    index); one render runs per video at a time."""
    bucket = services.settings.bucket_processed
    for key in services.store.list(bucket, f"{video_prefix(video.id)}final-"):
        if not video.final_key or not key.startswith(video.final_key):
            services.store.delete(bucket, key)
