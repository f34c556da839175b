"""Event timeline (seed 002): scenes and intervals where people are present, each with a key frame.

    from framemask.events import extract_events
    events = extract_events("in.mp4", boxes=seed_format_doc)   # list[Event]
"""

from framemask.events.describe import Describer, SummaryDescriber
from framemask.events.extract import Event, extract_events, keyframe_jpeg
from framemask.events.presence import presence_intervals
from framemask.events.scenes import scene_starts

__all__ = [
    "Describer",
    "Event",
    "SummaryDescriber",
    "extract_events",
    "keyframe_jpeg",
    "presence_intervals",
    "scene_starts",
]
