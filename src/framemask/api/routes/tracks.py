"""The track list of a video with review hints (`framemask.redact.tracklist`), as stored at processing."""

from __future__ import annotations

from fastapi import APIRouter

from framemask.api.deps import CurrentUser, ServicesDep, VideoDep, require_ready
from framemask.api.schemas import TrackList, TrackPublic
from framemask.service.tracks import list_tracks

__all__ = ["router"]

router = APIRouter(prefix="/api/videos", tags=["tracks"])


@router.get("/{video_id}/tracks", response_model=TrackList)
def get_tracks(video: VideoDep, services: ServicesDep, _user: CurrentUser) -> TrackList:
    """Every confirmed track, by id: span, frames, gaps, mean score and the flags a reviewer should check."""
    require_ready(video, processed=True)
    rows = list_tracks(services, video_id=video.id)
    return TrackList(
        tracks=[
            TrackPublic(
                id=int(row.number or 0),
                label=row.label,
                start_seq=row.first_seq,
                end_seq=row.last_seq,
                frames=int(row.data.get("frames", 0)),
                gaps=list(row.data.get("gaps", [])),
                mean_score=float(row.data.get("mean_score", 0.0)),
                flags=list(row.data.get("flags", [])),
            )
            for row in rows
        ]
    )
