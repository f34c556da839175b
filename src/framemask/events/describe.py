"""Event descriptions: a protocol so a captioning model can be plugged in where one runs offline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from framemask.events.extract import Event


class Describer(Protocol):
    """Turns an event and its key frame into a short text."""

    def describe(self, event: Event, keyframe: np.ndarray | None) -> str: ...


class SummaryDescriber:
    """The built-in describer: what the timeline knows (kind, length, how many people), no model needed."""

    def describe(self, event: Event, keyframe: np.ndarray | None) -> str:
        seconds = (event.end_ms - event.start_ms) / 1000.0
        if event.kind == "presence":
            return f"{_people(event)} visible for {seconds:.1f} s (frames {event.start_seq}-{event.end_seq})"
        return f"scene of {seconds:.1f} s (frames {event.start_seq}-{event.end_seq})"


def _people(event: Event) -> str:
    """ "3 people, up to 2 at once" from the distinct tracks and the peak on screen."""
    total = max(event.people, event.peak_count)
    if total == 1:
        return "1 person"
    if event.peak_count < total:
        return f"{total} people, up to {event.peak_count} at once"
    return f"{total} people" if event.people else f"up to {total} people"
