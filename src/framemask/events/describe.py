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


_IRREGULAR = {"knife": "knives", "mouse": "mice", "sheep": "sheep", "skis": "skis", "scissors": "scissors"}


def plural(label: str, n: int) -> str:
    """ "a bicycle", "an umbrella", "2 buses", "3 wine glasses", "2 knives" (COCO class names)."""
    if n == 1:
        return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"
    head, _, last = label.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "sh", "ch", "x")):
        word = last + "es"
    else:
        word = last + "s"
    return f"{n} {head + ' ' if head else ''}{word}"


def clock(ms: float) -> str:
    """m:ss (h:mm:ss from an hour) of a time in ms, whole seconds."""
    seconds = max(0, int(ms // 1000))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def span(event: Event) -> str:
    """ "0:12–0:19": the event's start (rounded down) to its end (rounded up) in whole seconds."""
    end = -(-max(event.end_ms, event.start_ms) // 1000) * 1000
    return f"{clock(event.start_ms)}–{clock(end)}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


class TagDescriber:
    """The default describer: people counted from the tracks and the event's object tags, then its span:
    "2 people and a bicycle, 0:12–0:19"; "3 people (up to 2 at once), 2 cars and a dog, 1:02–1:10"."""

    def describe(self, event: Event, keyframe: np.ndarray | None) -> str:
        parts = []
        total = max(event.people, event.peak_count)
        if total:
            who = _people(event)
            parts.append(who.replace(", up to ", " (up to ") + ")" if ", up to " in who else who)
        parts += [plural(t.label, t.peak) for t in event.tags if t.label != "person"]
        what = _join(parts) or ("nobody visible" if event.kind == "presence" else "scene")
        return f"{what}, {span(event)}"
