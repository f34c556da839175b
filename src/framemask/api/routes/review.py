"""Review material: the redaction report (chain of custody) and the audio waveform for the editor's timeline.

- `GET /api/videos/{id}/report?format=json|csv` (editors): every redaction decision with the revision that
  introduced it, who and when, plus the SHA-256 of the original and of the current final and the revision
  history. A decision is attributed to the earliest revision from which it stayed unchanged up to the
  latest one, so re-saving a document does not re-attribute what an earlier reviewer decided.
- `GET /api/videos/{id}/waveform?buckets=N` (viewers): peak level of the original audio per time slice,
  cached as JSON in the thumbnails bucket.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import av
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import ValidationError

from framemask.api.deps import CurrentUser, EditorUser, ServicesDep, VideoDep, client_of, require_ready
from framemask.api.frames import variant_file, video_index
from framemask.api.schemas import Report, ReportRevision, ReportRow, Waveform
from framemask.errors import NotFoundError
from framemask.media import FrameIndex
from framemask.redact.corrections import Corrections
from framemask.service import renders, revisions, tracks, videos
from framemask.service.auth import Principal, audit
from framemask.service.context import Services
from framemask.service.renders import final_revision, span_ms
from framemask.store.layout import thumbnail_key
from framemask.store.models import Revision, Video, utcnow

__all__ = ["build_report", "report_csv", "router", "waveform"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/videos", tags=["review"])

REPORT_COLUMNS = (
    "kind", "label", "track", "start_seq", "end_seq", "start_ms", "end_ms", "action", "revision", "author", "time",
    "detail",
)  # fmt: skip
DETECTOR = "framemask (detection)"
"""The author of decisions no reviewer made: every confirmed track is masked unless excluded."""
MAX_BUCKETS = 4000
_KINDS = (
    "track", "split", "merge", "override", "region", "manual_track", "excluded_detection", "exclude_rule",
    "muted_range",
)  # fmt: skip
_KIND_ORDER = {k: i for i, k in enumerate(_KINDS)}


# --- the report --------------------------------------------------------------------------------------------------


def _parsed(row: Revision) -> Corrections | None:
    try:
        return Corrections.model_validate(row.edits or {})
    except ValidationError:
        return None


def _dump(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json", exclude_none=True, by_alias=True), sort_keys=True)


def _box(x: float, y: float, w: float, h: float) -> str:
    return f"x={x:g} y={y:g} width={w:g} height={h:g}"


def _decisions(c: Corrections) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """(identity, row fields) of every decision in a corrections document; equal identities across
    revisions mean the same, unchanged decision."""
    for tid in sorted(set(c.excluded_tracks)):
        yield ("excluded_track", tid), {"kind": "track", "track": tid, "action": "excluded"}
    for seq, rects in sorted(c.drawn.items()):
        for i, r in enumerate(rects):
            fields = {"kind": "region", "label": "manual", "start_seq": seq, "end_seq": seq, "action": "added"}
            yield ("region", seq, i, _dump(r)), {**fields, "detail": _box(r.x, r.y, r.width, r.height)}
    for mt in c.tracks:
        keys = mt.keyframes
        detail = f"{len(keys)} key boxes" + (f", extends track {mt.extends}" if mt.extends is not None else "")
        fields = {"kind": "manual_track", "label": mt.label, "track": mt.id, "start_seq": keys[0].seq}
        fields.update(end_seq=keys[-1].seq, action="extended" if mt.extends is not None else "added", detail=detail)
        yield ("manual_track", _dump(mt)), fields
    for seq, refs in sorted(c.excluded.items()):
        for i, b in enumerate(refs):
            detail = f"x1={b.x1:g} y1={b.y1:g} x2={b.x2:g} y2={b.y2:g}"
            fields = {"kind": "excluded_detection", "label": b.label, "start_seq": seq, "end_seq": seq}
            yield ("excluded", seq, i, _dump(b)), {**fields, "action": "excluded", "detail": detail}
    for i, rule in enumerate(c.exclude_rules):
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in
                 rule.model_dump(exclude_none=True).items()]  # fmt: skip
        fields = {"kind": "exclude_rule", "label": rule.label, "start_seq": rule.from_seq, "end_seq": rule.to_seq}
        yield ("rule", i, _dump(rule)), {**fields, "action": "excluded", "detail": " ".join(parts) or "every detection"}
    for seq, moved in sorted(c.overrides.items()):
        for o in moved:
            fields = {"kind": "override", "track": o.track, "start_seq": seq, "end_seq": seq, "action": "moved"}
            yield ("override", seq, _dump(o)), {**fields, "detail": _box(o.x, o.y, o.width, o.height)}
    for i, sp in enumerate(c.split_tracks):
        fields = {"kind": "split", "track": sp.track, "start_seq": sp.at, "action": "split"}
        yield ("split", i, sp.track, sp.at), {**fields, "detail": f"a new id from frame {sp.at} on"}
    for group in c.merged_tracks:
        detail = "ids " + ", ".join(map(str, group)) + f" become {group[0]}"
        yield ("merge", tuple(group)), {"kind": "merge", "track": group[0], "action": "merged", "detail": detail}
    for m in c.muted_ranges:
        fields = {"kind": "muted_range", "label": "audio", "start_seq": m.start_seq, "end_seq": m.end_seq}
        yield ("muted", m.start_seq, m.end_seq, m.mode), {**fields, "action": m.mode}


def _introduced(history: list[tuple[Revision, Corrections | None]]) -> dict[tuple[Any, ...], Revision]:
    """For each decision of the latest revision: the earliest revision from which it is in every later one."""
    latest_row, latest = history[-1]
    keys = {key for key, _ in _decisions(latest)} if latest is not None else set()
    since = dict.fromkeys(keys, latest_row)
    alive = set(keys)
    for row, doc in reversed(history[:-1]):
        present = {key for key, _ in _decisions(doc)} if doc is not None else set()
        alive &= present
        for key in alive:
            since[key] = row
        if not alive:
            break
    return since


def _track_spans(
    services: Services, video: Video, revision: Revision, ids: set[int]
) -> dict[int, tuple[str, int, int]]:
    """Label and first/last frame of effective track ids that are not detector tracks (made by a split)."""
    spans: dict[int, tuple[str, int, int]] = {}
    if not ids:
        return spans
    boxes = revisions.effective_boxes(services, video=video, revision=revision)
    for seq in range(1, boxes.end_sequence + 1):
        for b in boxes.frame(seq):
            tid = b["track"]
            if isinstance(tid, int) and tid in ids and b["source"] in ("detected", "candidate", "override"):
                label, first, _ = spans.get(tid, (b["label"], seq, seq))
                spans[tid] = (label, first, seq)
    return spans


def build_report(services: Services, video: Video, user: Principal) -> Report:
    """The redaction report of `video` as of now (latest revision, current final)."""
    require_ready(video, processed=True)
    index: FrameIndex = video_index(services, video, "original")
    end = index.end_sequence
    saved = revisions.list_revisions(services, video_id=video.id, oldest_first=True)
    detected = tracks.list_tracks(services, video_id=video.id)
    processed_at = videos.processed_at(services, video_id=video.id)
    history = [(row, _parsed(row)) for row in saved]
    if history and history[-1][1] is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"stored corrections revision {history[-1][0].number} of video {video.id} is invalid; save a new revision",
        )
    latest_row, latest = history[-1] if history else (None, Corrections())
    assert latest is not None
    since = _introduced(history) if history else {}

    def timed(fields: dict[str, Any], by: Revision | None) -> ReportRow:
        first = int(fields.get("start_seq") or 1)
        last = int(fields.get("end_seq") or end)
        first, last = min(max(first, 1), end), min(max(last, first), end)
        start_ms, end_ms = span_ms(index, first, last, video.duration_ms)
        return ReportRow(
            kind=fields["kind"],
            label=fields.get("label"),
            track=fields.get("track"),
            start_seq=first,
            end_seq=last,
            start_ms=round(start_ms, 3),
            end_ms=round(end_ms, 3),
            action=fields["action"],
            revision=by.number if by else None,
            author=by.author if by else DETECTOR,
            time=by.created_at if by else processed_at,
            detail=fields.get("detail", ""),
        )

    by_number = {int(t.number or 0): t for t in detected}
    excluded = {tid: since.get(("excluded_track", tid)) for tid in set(latest.excluded_tracks)}
    rows: list[ReportRow] = []
    for t in detected:
        number = int(t.number or 0)
        fields: dict[str, Any] = {"kind": "track", "label": t.label, "track": number}
        fields.update(start_seq=t.first_seq, end_seq=t.last_seq)
        fields["detail"] = f"{int(t.data.get('frames', 0))} frames, mean score {float(t.data.get('mean_score', 0)):.2f}"
        if number in excluded:
            rows.append(timed({**fields, "action": "excluded"}, excluded[number]))
        else:
            rows.append(timed({**fields, "action": "masked"}, None))
    other = {tid for tid in excluded if tid not in by_number}
    spans = _track_spans(services, video, latest_row, other) if latest_row is not None else {}
    for key, fields in _decisions(latest):
        if key[0] == "excluded_track":
            if fields["track"] in by_number:
                continue  # the detector track's row above says it is excluded
            label, first, last = spans.get(fields["track"], (None, 1, end))
            fields = {**fields, "label": label, "start_seq": first, "end_seq": last, "detail": "not a detector track"}
        elif key[0] in ("override", "split", "merge"):
            track = by_number.get(int(fields["track"]))
            if track is not None:
                fields.setdefault("label", track.label)
                if key[0] != "override":
                    group = key[1] if key[0] == "merge" else (fields["track"],)
                    spans_of = [by_number[t] for t in group if t in by_number]
                    fields.setdefault("start_seq", min(s.first_seq for s in spans_of))
                    fields.setdefault("end_seq", max(s.last_seq for s in spans_of))
        rows.append(timed(fields, since.get(key)))
    rows.sort(key=lambda r: (_KIND_ORDER[r.kind], r.start_seq, r.end_seq, str(r.track)))
    original_sha, final_sha = renders.record_hashes(services, video=video)
    return Report.model_validate(
        {
            "video_id": video.id,
            "filename": video.filename,
            "generated_at": utcnow(),
            "generated_by": user.name,
            "original_sha256": original_sha,
            "final_sha256": final_sha,
            "final_revision": final_revision(video),
            "latest_revision": latest_row.number if latest_row else None,
            "review_state": video.review_state or "unreviewed",
            "review_by": video.review_by,
            "review_at": video.review_at,
            "endSequence": end,
            "duration_ms": round(span_ms(index, 1, end, video.duration_ms)[1], 3),
            "revisions": [
                ReportRevision(number=r.number, author=r.author, time=r.created_at, note=r.note) for r in saved
            ],
            "rows": rows,
        }
    )


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def report_csv(report: Report) -> str:
    """The report as CSV: `# key: value` header lines (revisions as one JSON object each), then the rows."""
    buf = io.StringIO()
    header = report.model_dump(mode="json", by_alias=True, exclude={"rows", "revisions"})
    for key, value in header.items():
        buf.write(f"# {key}: {'' if value is None else value}\n")
    for r in report.revisions:
        buf.write(f"# revision: {json.dumps(r.model_dump(mode='json'), ensure_ascii=False)}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for row in report.rows:
        writer.writerow([_cell(getattr(row, c)) for c in REPORT_COLUMNS])
    return buf.getvalue()


@router.get(
    "/{video_id}/report",
    response_model=Report,
    response_model_by_alias=True,
    responses={200: {"content": {"text/csv": {}}, "description": "the report (JSON, or CSV with format=csv)"}},
)
def get_report(
    video: VideoDep,
    services: ServicesDep,
    user: EditorUser,
    request: Request,
    format: Literal["json", "csv"] = "json",
) -> Report | Response:
    """The redaction report: one row per masked or excluded track, added region, manual track, excluded
    detection, exclude rule, override, split, merge and muted range, with frames, times, the revision that
    introduced it, its author and time; the header carries the hashes of the original and the final and the
    revision history."""
    report = build_report(services, video, user)
    audit(services.db, user, "video.report", video_id=video.id, detail={"format": format}, client=client_of(request))
    if format == "json":
        return report
    stem = video.filename.rsplit(".", 1)[0] or video.id
    headers = {"Content-Disposition": attachment(f"{stem}.redaction-report.csv")}
    return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers=headers)


def attachment(filename: str) -> str:
    """`Content-Disposition` naming `filename` for a download, as Starlette's `FileResponse` does: plain when the
    name needs no escaping, else RFC 6266's `filename*` in percent-encoded UTF-8. Header values are Latin-1
    bytes: a Cyrillic or Korean name written as it is cannot be sent, and a quote or line break would end the
    value early."""
    escaped = quote(filename)
    return f'attachment; filename="{filename}"' if escaped == filename else f"attachment; filename*=utf-8''{escaped}"


# --- the waveform ------------------------------------------------------------------------------------------------


def waveform(path: Any, origin_s: float, duration_ms: float, buckets: int) -> list[float]:
    """Peak |sample| (full scale 1) of the first audio stream of `path` in each of `buckets` equal slices of
    [origin, origin + duration]; [] when there is no audio. Samples are placed by their frames' timestamps."""
    peaks = np.zeros(buckets, np.float32)
    span = duration_ms / 1000.0
    if span <= 0:
        return []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")  # PCM, s16p, ... -> planar float, rate and layout kept
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time_base is None or not frame.samples:
                    continue
                parts = [frame] if frame.format.name == "fltp" else to_float.resample(frame)
                if not parts:
                    continue
                data = np.concatenate([np.asarray(p.to_ndarray(), np.float32) for p in parts], axis=1)
                level = np.abs(data).max(axis=0)
                t = float(frame.pts * frame.time_base) - origin_s + np.arange(data.shape[1]) / frame.sample_rate
                slot = np.floor(t / span * buckets).astype(np.int64)
                keep = (slot >= 0) & (slot < buckets)
                np.maximum.at(peaks, slot[keep], level[keep])
        except av.error.FFmpegError as exc:  # a damaged audio tail still gives the peaks before it
            log.warning("waveform: audio decoding stopped early: %s", exc)
    return [round(min(float(p), 1.0), 4) for p in peaks]


def _waveform_key(video_id: str, buckets: int) -> str:
    return thumbnail_key(video_id, f"waveform-{buckets}.json")


@router.get("/{video_id}/waveform", response_model=Waveform)
def get_waveform(
    video: VideoDep,
    services: ServicesDep,
    _user: CurrentUser,
    buckets: Annotated[int, Query(ge=1, le=MAX_BUCKETS, description="number of slices")] = 1000,
) -> Waveform:
    """Peak level of the original audio over `buckets` equal slices of the video (time 0 = the first frame;
    a slice lasts `duration_ms / buckets`); `peaks` is empty when the video has no audio. Cached."""
    if not video.end_sequence:
        raise HTTPException(status.HTTP_409_CONFLICT, "the video has not been probed yet")
    store, bucket = services.store, services.settings.bucket_thumbnails
    key = _waveform_key(video.id, buckets)
    try:
        with store.open_read(bucket, key) as fh:
            return Waveform.model_validate_json(fh.read())
    except (NotFoundError, ValidationError):
        pass
    index = video_index(services, video, "original")
    duration = span_ms(index, 1, index.end_sequence, video.duration_ms)[1]
    peaks: list[float] = []
    if video.has_audio is not False:
        origin = float(index.pts[0] * index.time_base)
        peaks = waveform(variant_file(services, video, "original"), origin, duration, buckets)
    body = Waveform(duration_ms=round(duration, 3), buckets=buckets, peaks=peaks)
    with store.open_write(bucket, key) as fh:
        fh.write(body.model_dump_json().encode())
    return body
