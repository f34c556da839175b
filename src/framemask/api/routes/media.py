"""A video's frames and bytes: boxes, frame index, exact frames, thumbnail sprites, Range streaming.

Originals are for editors and admins only (viewers get 403) and every access to one is written to
the audit log before any byte leaves. Processed material is open to every role, and so is the final
(corrected) video, `variant=final`: it is masked too (409 until a render produced one).
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from stat import S_ISREG
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, quote

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from framemask.api.deps import (
    MAX_SEQ,
    Credentials,
    CurrentUser,
    FirstSeq,
    LastSeq,
    ServicesDep,
    SignedRequest,
    TokenProof,
    VideoDep,
    VideoId,
    bearer_proof,
    bearer_scheme,
    client_of,
    frame_range,
    not_processed,
    require_ready,
    signing_key,
    token_proof,
)
from framemask.api.frames import (
    ReaderPool,
    encode_image,
    encode_pixels,
    frame_pixels,
    open_reader,
    reader_key,
    sprite,
    video_index,
)
from framemask.api.hardening import MAX_DB_INT, NO_STORE
from framemask.api.ranges import RangeFileResponse
from framemask.api.schemas import FrameIndexDoc, SeedDoc, Variant
from framemask.api.signing import signed_stream_query
from framemask.api.sprites import MAX_SPRITE_PIXELS, SpriteCache, sprite_key
from framemask.errors import FrameRangeError, NotFoundError
from framemask.media import FrameIndex
from framemask.service import revisions
from framemask.service.auth import Principal, audit, audit_values, record_use, use_due
from framemask.service.context import Services
from framemask.service.renders import final_revision
from framemask.service.streaming import StreamReads, StreamRows, StreamVideo, WouldBlock
from framemask.store.models import Video

__all__ = ["StreamFastRoute", "router"]

router = APIRouter(prefix="/api/videos", tags=["frames and streams"])

ImageFormat = Literal["jpeg", "webp", "png"]
MAX_THUMBNAILS = 1000
SPRITE_COLUMNS = 10


def _readers(request: Request) -> ReaderPool:
    return request.app.state.readers  # type: ignore[no-any-return]


def _sprites(request: Request, services: Services) -> SpriteCache:
    cache = getattr(request.app.state, "sprites", None)
    if cache is None:
        cache = request.app.state.sprites = SpriteCache(services.store, services.settings.bucket_thumbnails)
    return cache


def cache_control(variant: str, seconds: int = 3600) -> str:
    """Originals (unmasked pixels) must never stay in a browser or proxy cache."""
    return NO_STORE if variant == "original" else f"private, max-age={seconds}"


def _guard_variant(
    services: Services,
    video: Video,
    variant: str,
    user: Principal,
    request: Request,
    action: str,
    detail: dict[str, Any],
) -> None:
    """403 for viewers asking for originals, 409 if the processed (or final) file is not there yet; audit
    originals."""
    _check_variant(video, variant, user)
    if variant == "original":
        audit(services.db, user, f"original.{action}", video_id=video.id, detail=detail, client=client_of(request))


def _check_variant(video: Video | StreamVideo, variant: str, user: Principal) -> None:
    """`_guard_variant` without the audit row (the stream writes it in its own thread hop)."""
    if variant == "original":
        if not user.allows("editor"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "originals are for editors and admins only")
    elif video.processed_key is None:
        raise not_processed(video)
    elif variant == "final" and video.final_key is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"video {video.id} has no final video yet: save corrections and render them (POST /render)",
        )


@router.get("/{video_id}/frames", response_model=SeedDoc, response_model_exclude_unset=True)
def get_boxes(
    video: VideoDep,
    services: ServicesDep,
    first: FirstSeq = None,
    last: LastSeq = None,
) -> dict[str, Any]:
    """The masked boxes per frame in the seed format: `{"endSequence": N, "sequence": [{"seq", "person", ...}]}`."""
    require_ready(video)
    end = int(video.end_sequence or 0)
    first, last = first or 1, min(last or end, end)
    if first > end:
        raise FrameRangeError(f"from={first} is past the last frame {end}")
    if first > last:
        raise FrameRangeError(f"from={first} is after to={last}")
    require_ready(video, processed=True)  # a reviewer's corrections (if any) change what is masked
    return revisions.masked_frames(services, video=video, first=first, last=last)


def _index(services: Services, video: Video) -> FrameIndex:
    return video_index(services, video, "original")


@router.get("/{video_id}/index", response_model=FrameIndexDoc, response_model_by_alias=True)
def get_index(
    video: VideoDep,
    services: ServicesDep,
    first: FirstSeq = None,
    last: LastSeq = None,
) -> FrameIndexDoc:
    """Per-frame presentation time (ms from the first frame) and key-frame flag, in presentation order."""
    index = _index(services, video)
    end = index.end_sequence
    first, last = frame_range(end, first, last)
    times, keys = index.time_ms[first - 1 : last], index.keys[first - 1 : last]
    frames = [
        {"seq": first + i, "time_ms": round(float(t), 3), "key": bool(k)}
        for i, (t, k) in enumerate(zip(times, keys, strict=True))
    ]
    tb = index.time_base
    return FrameIndexDoc(end_sequence=end, time_base=f"{tb.numerator}/{tb.denominator}", frames=frames)


@dataclass(frozen=True, slots=True)
class _Caller:
    """Who asks (how they proved it) and the video's row, read without an ORM object."""

    proof: TokenProof
    user: Principal
    video: StreamVideo | None


async def frame_caller(request: Request, credentials: Credentials) -> _Caller:
    """`CurrentUser` and `VideoDep` of the frame route as one async dependency: the stream's look-ups
    (`_caller`), so no worker-thread hop and no ORM object. It runs before the route's parameters are
    validated, as they did: 401, then 404, then 422 (a malformed video id gets no 404: it is the route's 422)."""
    video_id: str = request.path_params["video_id"]
    caller = await _caller(request, request.app.state.services, bearer_proof(credentials), video_id)
    if caller.video is None and _VIDEO_ID.fullmatch(video_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    return caller


@dataclass(frozen=True, slots=True)
class _FrameAsk:
    """A frame request's checked parameters."""

    variant: str
    seq: int | None
    ms: float | None
    width: int | None
    format: str
    quality: int | None


@router.get(
    "/{video_id}/frame",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/webp": {}, "image/png": {}}, "description": "the frame"}},
)
async def get_frame(
    request: Request,
    video_id: VideoId,
    caller: Annotated[_Caller, Depends(frame_caller)],
    seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="frame number, 1..endSequence")] = None,
    ms: Annotated[
        float | None, Query(ge=0, le=1e12, allow_inf_nan=False, description="the frame on screen at this time (ms)")
    ] = None,
    variant: Variant = "processed",
    format: ImageFormat = "jpeg",
    width: Annotated[int | None, Query(ge=16, le=7680)] = None,
    quality: Annotated[int | None, Query(ge=10, le=100)] = None,
) -> Response:
    """One exact frame as an image (`seq` or `ms`, not both), decoded from the nearest key frame."""
    if (seq is None) == (ms is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of seq or ms")
    video = caller.video
    assert video is not None and video.id == video_id  # `frame_caller` read it (or the id was the route's 422)
    _check_variant(video, variant, caller.user)
    ask = _FrameAsk(variant, seq, ms, width, format, quality)
    work = partial(_frame_image, request, caller.user, video, ask, _use_due(caller))
    target, time_ms, body, media_type = await anyio.to_thread.run_sync(work)
    headers = {
        "X-Frame-Seq": str(target),
        "X-Frame-Time-Ms": f"{time_ms:.3f}",
        "Cache-Control": cache_control(variant),
    }
    return Response(body, media_type=media_type, headers=headers)


def _frame_image(
    request: Request, user: Principal, video: StreamVideo, ask: _FrameAsk, touch: bool
) -> tuple[int, float, bytes, str]:
    """All a frame request does off the loop, in one worker-thread hop: the audit row of an original (before
    the image exists, so before any byte leaves) and the token's last use, then decode and encode.
    Returns the frame number, its time (ms) and the image."""
    services: Services = request.app.state.services
    action = "original.frame" if ask.variant == "original" else None
    _record_access(request, services, user, video.id, action, {"seq": ask.seq, "ms": ask.ms}, touch)
    opener = partial(open_reader, services, video, ask.variant)
    with _readers(request).reader(reader_key(video, ask.variant), opener) as reader:
        target = ask.seq if ask.seq is not None else reader.index.frame_at(float(ask.ms or 0.0))
        pixels = frame_pixels(reader, target, ask.width, ask.format)
        time_ms = reader.index.time_of(target)
    body, media_type = encode_pixels(pixels, ask.format, ask.quality)  # outside the reader's lock
    return target, time_ms, body, media_type


@router.get(
    "/{video_id}/thumbnails",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "sprite of frames 1, 1+every, ..."}},
)
def get_thumbnails(
    request: Request,
    video: VideoDep,
    services: ServicesDep,
    user: CurrentUser,
    every: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="one thumbnail every N frames")] = None,
    width: Annotated[int, Query(ge=16, le=640)] = 160,
    variant: Variant = "processed",
) -> Response:
    """A timeline sprite: thumbnails of frames 1, 1+every, 1+2·every, ... laid out left to right,
    `X-Thumbnail-Columns` per row, each tile `X-Thumbnail-Width` × `X-Thumbnail-Height` pixels.
    Tile i shows frame `1 + i*every` (also listed in `X-Thumbnail-Seqs`)."""
    end = int(video.end_sequence or 0)
    if end < 1:
        raise HTTPException(status.HTTP_409_CONFLICT, "the video has not been probed yet")
    every = every or max(1, -(-end // 100))
    seqs = list(range(1, end + 1, every))
    if len(seqs) > MAX_THUMBNAILS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{len(seqs)} thumbnails is too many: raise `every` to keep at most {MAX_THUMBNAILS}",
        )
    tile_area = width * max(1, round(width * int(video.height or width) / max(int(video.width or width), 1)))
    if len(seqs) * tile_area > MAX_SPRITE_PIXELS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"a sprite of {len(seqs)} tiles {width} pixels wide exceeds the limit of {MAX_SPRITE_PIXELS} pixels: "
            "raise `every` or lower `width`",
        )
    _guard_variant(services, video, variant, user, request, "thumbnails", {"every": every, "width": width})
    cache = _sprites(request, services)
    key = sprite_key(video.id, variant if variant != "final" else f"final-r{final_revision(video)}", every, width)
    body = cache.get(key)
    if body is not None:
        tile_h = int(_tile_height(body, len(seqs)))
    else:
        pool = _readers(request)
        with pool.reader(reader_key(video, variant), lambda: open_reader(services, video, variant)) as reader:
            tiles = [image for _, image in reader.thumbnails(seqs, width)]
        body, _ = encode_image(sprite(tiles, SPRITE_COLUMNS), "jpeg", 75)
        tile_h = tiles[0].shape[0]
        cache.put(video.id, key, body)
    headers = {
        "X-Thumbnail-Count": str(len(seqs)),
        "X-Thumbnail-Every": str(every),
        "X-Thumbnail-Columns": str(min(SPRITE_COLUMNS, len(seqs))),
        "X-Thumbnail-Width": str(width),
        "X-Thumbnail-Height": str(tile_h),
        "X-Thumbnail-Seqs": ",".join(map(str, seqs)),
        "Cache-Control": cache_control(variant),
    }
    return Response(body, media_type="image/jpeg", headers=headers)


def _tile_height(jpeg: bytes, count: int) -> int:
    """Tile height of a cached sprite (its rows are equal)."""
    import io

    from PIL import Image

    rows = -(-count // SPRITE_COLUMNS)
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.height // rows


_STREAM_CHECKS = 4
"""Stream look-ups and audit writes in worker threads at once: within the database pool, so no connection churn."""


def _local_path(request: Request, services: Services, bucket: str, key: str) -> Path | None:
    """The store's local path of an object, resolved once per app (object keys are immutable, and resolving
    one costs a dozen syscalls a request)."""
    paths: dict[tuple[str, str], Path] | None = getattr(request.app.state, "local_paths", None)
    if paths is None:
        paths = request.app.state.local_paths = {}
    found = paths.get((bucket, key))
    if found is None:
        found = services.store.local_path(bucket, key)
        if found is not None and len(paths) < 4096:
            paths[(bucket, key)] = found
    return found


async def stream_proof(
    request: Request,
    credentials: Credentials,
    expires: Annotated[int | None, Query(ge=0, le=MAX_DB_INT)] = None,
    signature: Annotated[str | None, Query(max_length=64)] = None,
    tid: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> SignedRequest:
    """A bearer token or a signed URL's query (checked in `_authorize_stream`): async, so collecting it costs
    no worker-thread hop (the sync `SignedRequestDep` costs two per request)."""
    return _signed(request, credentials, expires, signature, tid)


def _signed(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    expires: int | None,
    signature: str | None,
    tid: int | None,
) -> SignedRequest:
    return SignedRequest(request.app.state.services, signing_key(request), credentials, expires, signature, tid)


def _stream_reads(request: Request, services: Services) -> StreamReads:
    reads: StreamReads | None = getattr(request.app.state, "stream_reads", None)
    if reads is None or reads.db is not services.db:
        reads = request.app.state.stream_reads = StreamReads(services.db)
    return reads


async def _stream_rows(request: Request, reads: StreamReads, proof: TokenProof, video_id: str) -> StreamRows:
    """Token and video rows: on the event loop when the database allows it without waiting (embedded
    SQLite), else in one worker-thread hop."""
    if reads.on_loop:
        try:
            return reads.rows_nowait(token_hash=proof.token_hash, token_id=proof.token_id, video_id=video_id)
        except WouldBlock:
            pass
    rows = partial(reads.rows, token_hash=proof.token_hash, token_id=proof.token_id, video_id=video_id)
    return await anyio.to_thread.run_sync(rows, limiter=_stream_limiter(request))


async def _caller(request: Request, services: Services, proof: TokenProof, video_id: str) -> _Caller:
    """The caller (401 if the token is unknown or revoked) and the video (None if gone), by `_stream_rows`."""
    rows = await _stream_rows(request, _stream_reads(request, services), proof, video_id)
    return _Caller(proof, proof.principal(rows.token), rows.video)


def _use_due(caller: _Caller) -> bool:
    """Whether a bearer request owes its token's last-use write now (`use_due` claims the slot)."""
    token_id = caller.user.token_id
    return caller.proof.token_hash is not None and token_id is not None and use_due(token_id)


def _record_access(
    request: Request,
    services: Services,
    user: Principal,
    video_id: str,
    action: str | None,
    detail: dict[str, Any],
    touch: bool,
) -> None:
    """The writes a stream or frame request may owe, in its one worker-thread hop: the audit row `action`
    of an original (before any byte is sent) and, when `_use_due` said so, the bearer token's last use."""
    if action is not None:
        audit(services.db, user, action, video_id=video_id, detail=detail, client=client_of(request))
    if touch and user.token_id is not None:
        record_use(services.db, user.token_id)


async def _record_stream(
    request: Request, services: Services, user: Principal, video_id: str, variant: str, touch: bool
) -> None:
    """The writes a stream request owes, before any byte is sent: the audit row of an original on the event
    loop when the database allows it without waiting (`_audited_on_loop`); else, or when the token's last use
    is due too (once a minute), all of them in one worker-thread hop."""
    action = "original.stream" if variant == "original" else None
    detail = {"range": request.headers.get("range")}
    if action is not None and not touch and _audited_on_loop(request, services, user, video_id, action, detail):
        return
    record = partial(_record_access, request, services, user, video_id, action, detail, touch)
    await anyio.to_thread.run_sync(record, limiter=_stream_limiter(request))


def _audited_on_loop(
    request: Request, services: Services, user: Principal, video_id: str, action: str, detail: dict[str, Any]
) -> bool:
    """Write the audit row `action` on the event loop if the database allows it without waiting (embedded
    SQLite, write lock free: `StreamReads.audit_nowait`); False if the caller must write it in a worker thread."""
    reads = _stream_reads(request, services)
    if not reads.on_loop:
        return False
    try:
        reads.audit_nowait(audit_values(user, action, video_id=video_id, detail=detail, client=client_of(request)))
    except WouldBlock:
        return False
    return True


async def _authorize_stream(
    request: Request, signed: SignedRequest, video_id: str, variant: str
) -> tuple[str, str, Path | None, os.stat_result | None]:
    """Every check of a stream request, with no ORM object and, on embedded SQLite, no worker-thread hop
    unless the token's last use is due or the write lock is taken: who (token or signature, revocation), the
    video row, the variant guard and the audit row of an original, then where the bytes are."""
    services = signed.services
    caller = await _caller(request, services, token_proof(signed, video_id, variant, "stream"), video_id)
    user, video = caller.user, caller.video
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    _check_variant(video, variant, user)
    touch = _use_due(caller)
    if variant == "original" or touch:
        await _record_stream(request, services, user, video_id, variant, touch)
    bucket, key = _object_of(services, video, variant)
    return bucket, key, *_stat_local(request, services, bucket, key, f"{video.id} ({variant})")


def _stat_local(
    request: Request, services: Services, bucket: str, key: str, what: str
) -> tuple[Path | None, os.stat_result | None]:
    """The object's local path and `os.stat` (None, None in S3); 404 if the file is gone. On the loop: a stat
    of a cached path is one syscall, far cheaper than the thread hop it would take."""
    path = _local_path(request, services, bucket, key)
    if path is None:
        return None, None
    try:
        stat_result = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"stored file of video {what} is missing") from None
    if not S_ISREG(stat_result.st_mode):
        raise NotFoundError(f"stored file of video {what} is missing")
    return path, stat_result


def _stream_limiter(request: Request) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "stream_limiter", None)
    if limiter is None:
        limiter = request.app.state.stream_limiter = anyio.CapacityLimiter(_STREAM_CHECKS)
    return limiter


@router.head("/{video_id}/stream", include_in_schema=False)
@router.get(
    "/{video_id}/stream",
    response_class=Response,
    responses={
        206: {"description": "partial content"},
        307: {"description": "presigned S3 URL"},
        416: {"description": "range not satisfiable"},
    },
)
async def stream(
    request: Request,
    video_id: VideoId,
    signed: Annotated[SignedRequest, Depends(stream_proof)],
    variant: Variant = "processed",
) -> Response:
    """The video bytes with HTTP Range support (seekable in `<video>`); from S3 a 307 to a presigned URL."""
    return await _stream_response(request, signed, video_id, variant)


async def _stream_response(request: Request, signed: SignedRequest, video_id: str, variant: str) -> Response:
    """The stream's answer once its parameters are valid: both `stream` and `StreamFastRoute` end here."""
    bucket, key, path, stat_result = await _authorize_stream(request, signed, video_id, variant)
    services = signed.services
    headers = {"Cache-Control": cache_control(variant)}
    if path is None:
        url = services.store.presign_get(bucket, key, services.settings.signed_url_seconds, headers["Cache-Control"])
        return RedirectResponse(str(url), status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=headers)
    prefix = services.settings.accel_redirect_prefix
    if prefix:  # nginx sends the bytes (sendfile, Range); we only decided who may have them
        return Response(headers={"X-Accel-Redirect": f"{prefix}{quote(bucket)}/{quote(key)}", **headers})
    guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
    media_type = "video/mp4" if variant != "original" else guessed
    return RangeFileResponse(path, media_type=media_type, headers=headers, stat_result=stat_result)


_VIDEO_ID = re.compile(r"[0-9a-f]{32}")
"""`VideoId`'s pattern."""
_FAST_PATH = re.compile(rf"/api/videos/({_VIDEO_ID.pattern})/stream")
_FAST_KEYS = frozenset({"variant", "expires", "signature", "tid"})
_VARIANTS = frozenset(get_args(Variant))
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, slots=True)
class _StreamQuery:
    video_id: str
    variant: str
    expires: int | None
    signature: str | None
    tid: int | None


def _fast_query(scope: Scope) -> _StreamQuery | None:
    """The stream request's parameters if each is in the plain form the route's validation accepts unchanged
    (known keys once each, a variant, decimal ids in range, a hex signature), else None."""
    if scope["method"] not in ("GET", "HEAD") or scope.get("root_path"):
        return None
    match = _FAST_PATH.fullmatch(scope["path"])
    if match is None:
        return None
    values: dict[str, str] = {}
    if scope["query_string"]:
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            if name not in _FAST_KEYS or name in values:
                return None
            values[name] = value
    variant = values.get("variant", "processed")
    signature = values.get("signature")
    expires, tid = _decimal(values.get("expires"), 0), _decimal(values.get("tid"), 1)
    if (
        variant not in _VARIANTS
        or (signature is not None and not _HEX.fullmatch(signature))
        or (expires is None) != ("expires" not in values)
        or (tid is None) != ("tid" not in values)
    ):
        return None
    return _StreamQuery(match[1], variant, expires, signature, tid)


def _decimal(text: str | None, least: int) -> int | None:
    """A plain decimal database id (no sign, spaces or leading zeros) in least..MAX_DB_INT, else None."""
    if text is None or not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if least <= value <= MAX_DB_INT else None


class StreamFastRoute(BaseRoute):
    """`GET|HEAD /api/videos/{id}/stream` without FastAPI's routing and dependency resolution (~0.3 ms of a
    1 MiB range request's ~1.3 ms CPU): mounted first, it takes only requests whose parameters `_fast_query`
    read whole, then runs the route's own checks and response (`_stream_response`; its errors reach the app's
    exception handlers as the route's do). Anything else falls through to `stream`, so error bodies, 422s and
    the OpenAPI schema are the route's."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        query = _fast_query(scope) if scope["type"] == "http" else None
        return (Match.NONE, {}) if query is None else (Match.FULL, {"framemask.stream": query})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # `url_for("stream")` names the FastAPI route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: _StreamQuery = scope["framemask.stream"]
        request = Request(scope, receive)
        signed = _signed(request, await bearer_scheme(request), query.expires, query.signature, query.tid)
        response = await _stream_response(request, signed, query.video_id, query.variant)
        await response(scope, receive, send)


def _object_of(services: Services, video: Video | StreamVideo, variant: str) -> tuple[str, str]:
    if variant == "original":
        return video.raw_bucket, video.raw_key
    key = video.final_key if variant == "final" else video.processed_key
    assert key is not None
    return services.settings.bucket_processed, key


@router.get("/{video_id}/stream/url")
def stream_url(
    request: Request, video: VideoDep, services: ServicesDep, user: CurrentUser, variant: Variant = "processed"
) -> dict[str, Any]:
    """A short-lived URL for `<video src>` (no header needed): a presigned S3 URL or a signed API URL."""
    _guard_variant(services, video, variant, user, request, "stream-url", {})
    seconds = services.settings.signed_url_seconds
    bucket, key = _object_of(services, video, variant)
    presigned = services.store.presign_get(bucket, key, seconds, cache_control(variant))  # S3 sends it no-store too
    if presigned is None:
        query = signed_stream_query(signing_key(request), video.id, variant, seconds, user.token_id)
        presigned = f"{request.url_for('stream', video_id=video.id).path}?{query}"
    return {"url": presigned, "expires_in": seconds}
