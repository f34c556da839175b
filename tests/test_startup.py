"""`framemask.startup.collector_paused`: heavy imports run without the cycle collector, which is always
turned back on, and what they created is frozen."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import weakref

import pytest

from framemask.startup import collector_paused


@pytest.fixture(autouse=True)
def _collector_restored():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_collection_pauses_inside_and_resumes_with_the_objects_frozen():
    frozen = gc.get_freeze_count()
    with collector_paused():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]  # lists: tracked by the collector (a dict of ints is not)
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(kept)


def test_cycles_made_after_the_pause_are_collected_again():
    with collector_paused():
        pass
    ref = weakref.ref(_Node())
    gc.collect()
    assert ref() is None


def test_an_error_inside_still_resumes_collection():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("import failed")
    assert gc.isenabled()


def test_nested_pauses_resume_only_when_the_outermost_ends():
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_two_threads_share_one():
    """The CLI imports its commands while a thread imports the tracker library: whichever ends first must
    not turn collection on under the other, and the last must turn it on."""
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        assert entered.wait(10)
    assert not gc.isenabled()  # the thread is still inside
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_the_cli_and_the_tracker_import_leave_collection_on():
    """In a fresh interpreter: building the CLI and the first tracker import freeze what they imported, and
    the process goes on with the collector on."""
    code = (
        "import gc, sys\n"
        "from framemask.cli import main\n"
        "assert main(['probe', '/nonexistent.mp4']) == 2\n"
        "after_cli = gc.get_freeze_count()\n"
        "from framemask.detect.tracking import Tracker\n"
        "Tracker(fps=6.0)._new_bytetrack()\n"
        "print(gc.isenabled(), after_cli, gc.get_freeze_count() - after_cli)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    enabled, after_cli, by_tracker = result.stdout.split()
    assert enabled == "True"
    assert int(after_cli) > 50_000  # numpy, PyAV, pydantic... imported by the command modules
    assert int(by_tracker) > 5_000  # the parts of supervision and scipy ByteTrack uses
