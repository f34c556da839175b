"""A video's frames: boxes, frame index, exact frames, thumbnail sprites.

Originals are for editors and admins only (viewers get 403) and every access to one is written to
the audit log before any byte leaves. Processed material is open to every role, and so is the final
(corrected) video, `variant=final`: it is masked too (409 until a render produced one). The video's bytes
(Range streaming) are `routes/stream.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from framemask.api.access import (
    VIDEO_ID,
    Caller,
    cache_control,
    check_variant,
    guard_variant,
    last_use_due,
    read_caller,
    record_access,
)
from framemask.api.deps import (
    MAX_SEQ,
    Credentials,
    CurrentUser,
    FirstSeq,
    LastSeq,
    ServicesDep,
    VideoDep,
    VideoId,
    bearer_proof,
    frame_range,
    require_ready,
)
from framemask.api.frames import (
    ReaderPool,
    encode_image,
    encode_pixels,
    frame_pixels,
    frame_source,
    source_reader,
    sprite,
    video_index,
)
from framemask.api.schemas import FrameIndexDoc, SeedDoc, Variant
from framemask.api.sprites import MAX_SPRITE_PIXELS, SpriteCache, sprite_key
from framemask.errors import FrameRangeError
from framemask.media import FrameIndex, sdr_view
from framemask.service import revisions
from framemask.service.auth import Principal
from framemask.service.context import Services
from framemask.service.renders import final_revision
from framemask.service.streaming import StreamVideo
from framemask.store.models import Video

__all__ = ["router"]

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


async def frame_caller(request: Request, credentials: Credentials) -> Caller:
    """`CurrentUser` and `VideoDep` of the frame route as one async dependency: the stream's look-ups
    (`read_caller`), so no worker-thread hop and no ORM object. It runs before the route's parameters are
    validated, as they did: 401, then 404, then 422 (a malformed video id gets no 404: it is the route's 422)."""
    video_id: str = request.path_params["video_id"]
    caller = await read_caller(request, request.app.state.services, bearer_proof(credentials), video_id)
    if caller.video is None and VIDEO_ID.fullmatch(video_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    return caller


@dataclass(frozen=True, slots=True)
class _FrameAsk:
    """A frame request's checked parameters."""

    variant: str
    source: str
    """The file read (`frame_source`): the variant's own, or an original's review proxy."""
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
    caller: Annotated[Caller, Depends(frame_caller)],
    seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="frame number, 1..endSequence")] = None,
    ms: Annotated[
        float | None, Query(ge=0, le=1e12, allow_inf_nan=False, description="the frame on screen at this time (ms)")
    ] = None,
    variant: Variant = "processed",
    format: ImageFormat = "jpeg",
    width: Annotated[int | None, Query(ge=16, le=7680)] = None,
    quality: Annotated[int | None, Query(ge=10, le=100)] = None,
    exact: Annotated[
        bool, Query(description="an original's frame from the original itself, not from its review proxy")
    ] = False,
) -> Response:
    """One exact frame as an image (`seq` or `ms`, not both), decoded from the nearest key frame. An original
    with long GOPs is read from its review proxy once it has one (the same frame, visually lossless, faster to
    reach; `X-Frame-Source: proxy`); `exact=true` decodes the original itself."""
    if (seq is None) == (ms is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of seq or ms")
    video = caller.video
    assert video is not None and video.id == video_id  # `frame_caller` read it (or the id was the route's 422)
    check_variant(video, variant, caller.user)
    ask = _FrameAsk(variant, frame_source(video, variant, exact), seq, ms, width, format, quality)
    work = partial(_frame_image, request, caller.user, video, ask, last_use_due(caller))
    target, time_ms, body, media_type, source = await anyio.to_thread.run_sync(work)
    headers = {
        "X-Frame-Seq": str(target),
        "X-Frame-Time-Ms": f"{time_ms:.3f}",
        "Cache-Control": cache_control(variant),
        "X-Frame-Source": source,
    }
    return Response(body, media_type=media_type, headers=headers)


def _frame_image(
    request: Request, user: Principal, video: StreamVideo, ask: _FrameAsk, touch: bool
) -> tuple[int, float, bytes, str, str]:
    """All a frame request does off the loop, in one worker-thread hop: the audit row of an original (before
    the image exists, so before any byte leaves) and the token's last use, then decode and encode.
    Returns the frame number, its time (ms), the image and the file it came from (`readable_source`)."""
    services: Services = request.app.state.services
    action = "original.frame" if ask.variant == "original" else None
    record_access(request, services, user, video.id, action, {"seq": ask.seq, "ms": ask.ms}, touch)
    with source_reader(_readers(request), services, video, ask.source) as (source, reader):
        target = ask.seq if ask.seq is not None else reader.index.frame_at(float(ask.ms or 0.0))
        pixels = frame_pixels(reader, target, ask.width, ask.format)
        time_ms = reader.index.time_of(target)
    body, media_type = encode_pixels(pixels, ask.format, ask.quality)  # outside the reader's lock
    return target, time_ms, body, media_type, source


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
    guard_variant(services, video, variant, user, request, "thumbnails", {"every": every, "width": width})
    cache = _sprites(request, services)
    key = sprite_key(video.id, variant if variant != "final" else f"final-r{final_revision(video)}", every, width)
    body = cache.get(key)
    if body is not None:
        tile_h = int(_tile_height(body, len(seqs)))
    else:
        with source_reader(_readers(request), services, video, frame_source(video, variant)) as (_, reader):
            tiles = [sdr_view(image, reader.signal) for _, image in reader.thumbnails(seqs, width)]
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
