"""Event timeline (seed 002): scenes and intervals where people are present, each with a key frame, tags
(people from the tracks, other COCO classes NanoDet sees) and a key-frame embedding for similarity search.

    from framemask.events import extract_events
    events = extract_events("in.mp4", boxes=seed_format_doc)   # list[Event]
"""

from framemask.events.describe import Describer, SummaryDescriber, TagDescriber
from framemask.events.extract import Event, extract_events, keyframe_jpeg, refresh_events, tag_events
from framemask.events.presence import presence_intervals
from framemask.events.scenes import scene_starts
from framemask.events.tags import Tag

__all__ = [
    "Describer",
    "Event",
    "SummaryDescriber",
    "Tag",
    "TagDescriber",
    "extract_events",
    "keyframe_jpeg",
    "presence_intervals",
    "refresh_events",
    "scene_starts",
    "tag_events",
]
