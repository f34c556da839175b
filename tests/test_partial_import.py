"""`framemask.partial_import`: packages installed with their `__init__` deferred give the named parts from their
submodules, and all of themselves to whoever asks for anything else."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from framemask.partial_import import defer_init, is_deferred


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package, new to this process, whose `__init__` counts its runs and whose `Thing` lives in `parts`."""
    name = f"fm_pkg_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            import builtins, time
            builtins.{name}_runs = getattr(builtins, "{name}_runs", 0) + 1
            time.sleep(0.2)  # long enough for a second thread to ask meanwhile
            from {name}.parts import Thing
            from {name} import extra
            EVERYTHING = "all of it"
            __version__ = "1.0"
            """
        )
    )
    (root / "parts.py").write_text("class Thing:\n    pass\n")
    (root / "extra.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def _runs(name: str) -> int:
    import builtins

    return int(getattr(builtins, f"{name}_runs", 0))


def test_named_parts_and_submodules_come_without_the_init(package: str) -> None:
    defer_init({package: {"Thing": f"{package}.parts"}})
    module = sys.modules[package]
    thing = module.Thing
    extra = __import__(f"{package}.extra", fromlist=["VALUE"])
    assert thing is sys.modules[f"{package}.parts"].Thing
    assert extra.VALUE == 7
    assert not hasattr(module, "__wrapped__")  # special names probed by tools are simply missing
    assert _runs(package) == 0 and is_deferred(package)


def test_any_other_name_runs_the_init_once_into_the_same_module(package: str) -> None:
    defer_init({package: {"Thing": f"{package}.parts"}})
    module = sys.modules[package]
    thing = module.Thing
    assert module.EVERYTHING == "all of it"
    assert module.__version__ == "1.0"
    assert module.Thing is thing  # the init's own import found the same class
    assert _runs(package) == 1 and not is_deferred(package) and sys.modules[package] is module
    with pytest.raises(AttributeError):
        _ = module.nothing_of_that_name


def test_a_name_moved_elsewhere_is_found_through_the_init(package: str) -> None:
    """Another version of a library keeps the name in another submodule: slower, never wrong."""
    defer_init({package: {"Thing": f"{package}.gone", "EVERYTHING": f"{package}.parts"}})
    module = sys.modules[package]
    assert module.Thing is sys.modules[f"{package}.parts"].Thing
    assert module.EVERYTHING == "all of it"
    assert _runs(package) == 1


def test_threads_asking_at_once_run_the_init_once(package: str) -> None:
    defer_init({package: {}})
    module = sys.modules[package]
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(module.EVERYTHING)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert got == ["all of it"] * 4
    assert _runs(package) == 1


def test_an_imported_package_is_left_alone_and_a_missing_one_is_refused(package: str) -> None:
    __import__(package)
    defer_init({package: {"Thing": f"{package}.parts"}})
    assert not is_deferred(package) and _runs(package) == 1
    with pytest.raises(ModuleNotFoundError, match="no package named"):
        defer_init({f"{package}_missing": {}})


def test_bytetrack_and_the_cut_detector_import_without_their_libraries_whole() -> None:
    """In a fresh interpreter: a tracker and the cut detector at work load neither supervision's annotators
    and scipy's interpolation nor PySceneDetect's video output (whose import starts an `ffmpeg`), and the classes
    are the libraries' own; code that then wants all of a library gets it."""
    code = """
import sys
import numpy as np
from framemask.detect import Detections, Tracker
from framemask.media.cuts import ShotCuts
from framemask.partial_import import is_deferred
tracker = Tracker(fps=25)
person = Detections.from_boxes([[10, 10, 50, 90]], [0.9], "person")
tracker.update(person)
ids = tracker.update(person).tracker_id.tolist()
cuts = ShotCuts(min_frames=1)
found = [cuts.feed(np.full((72, 128, 3), v, np.uint8)) for v in (0, 0, 0, 200, 200, 200)]
heavy = [m for m in ("supervision.annotators.core", "scipy.interpolate", "scenedetect.output", "trackers.core.sort")
         if m in sys.modules]
deferred = [is_deferred(p) for p in ("trackers", "supervision", "scipy.optimize", "scenedetect")]
import trackers.core.bytetrack.tracker as bytetrack, scenedetect.detectors.adaptive_detector as adaptive
same = [type(tracker._byte[0]) is bytetrack.ByteTrackTracker, type(cuts._detector) is adaptive.AdaptiveDetector]
import supervision, scenedetect
from scipy.optimize import minimize
whole = [callable(supervision.BoxAnnotator), callable(scenedetect.detect), callable(minimize)]
print(ids, sum(found, []), heavy, deferred, same, whole, [is_deferred(p) for p in ("supervision", "scenedetect")])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1] [3] [] [True, True, True, True] [True, True] [True, True, True] [False, False]"
