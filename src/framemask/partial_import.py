"""Importing the few names a run needs from libraries whose package `__init__` imports everything they have.

`trackers` imports every tracker it ships, and supervision (for its `Detections`) imports its annotators and
with them scipy's interpolation, special functions and linear algebra: 0.6-0.7 s of one core, holding the GIL,
at the start of every `framemask anonymize`, for a ByteTrack that uses four names. PySceneDetect's `__init__`
imports its video back ends and output writers and starts an `ffmpeg` (0.25 s) for one detector class. On two
cores that start-up is a tenth of a short clip's whole run.

`defer_init` puts such a package in `sys.modules` with its `__init__` not run yet. Its submodules import as
usual (they hold the code), the names it is told about come from the submodules that define them, and the
first use of any other name runs the real `__init__` into the same module object, so code that wants all of
the package (the events timeline's PySceneDetect, a later `import supervision`) still gets all of it. If a
library moves one of the names (another version), the first use finds it through the real `__init__`: slower,
never wrong. Nothing of the libraries is copied or changed.

The real `__init__` runs under one lock of this module, not under Python's per-module import locks, whose
deadlock detection does not see it: install the packages before other threads import from them (the tracker and
the cut detector do it on their first use; the service imports PySceneDetect whole at start-up, with the events
code, so there the package is never deferred).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

from framemask.startup import collector_paused

__all__ = ["defer_init", "import_in_background", "import_parts", "is_deferred"]

_lock = threading.RLock()
_started: set[str] = set()  # modules `import_in_background` was asked for
_DUNDERS_OF_INIT = ("__all__", "__version__")
"""Special names a package's `__init__` defines: asking for one runs it. Other special names tools probe for
(`__wrapped__`, `__getstate__`) are answered as missing, as for any module."""


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` runs on the first use of a name it was not told about."""

    def __getattr__(self, name: str) -> Any:
        names: dict[str, str] = self.__dict__.get("_deferred_names", {})
        if name in names:
            try:
                value = getattr(importlib.import_module(names[name]), name)
            except (ImportError, AttributeError):  # the name moved in this version: the real `__init__` has it
                return _from_init(self, name)
            setattr(self, name, value)
            return value
        if name.startswith("__") and name.endswith("__") and name not in _DUNDERS_OF_INIT:
            raise AttributeError(name)
        if importlib.util.find_spec(f"{self.__name__}.{name}") is not None:  # a submodule: `from pkg import sub`
            return importlib.import_module(f"{self.__name__}.{name}")
        return _from_init(self, name)


def _from_init(package: types.ModuleType, name: str) -> Any:
    """`name` of `package` after running its real `__init__`: once, in the thread that asks first; other
    threads asking meanwhile wait for it to finish."""
    with _lock:
        state = package.__dict__
        if state.get("_running_init"):  # this thread runs the `__init__`, which asked for a name it defines later
            raise AttributeError(name)
        deferred = type(package) is _DeferredPackage  # (a flag: no narrowing, the class is reassigned below)
        if deferred:
            spec = package.__spec__
            assert spec is not None and spec.loader is not None
            state["_running_init"] = True
            try:
                spec.loader.exec_module(package)
            finally:
                del state["_running_init"]
            package.__class__ = types.ModuleType  # an ordinary module from here on
            del state["_deferred_names"]
    return getattr(package, name)


def defer_init(packages: Mapping[str, Mapping[str, str]]) -> None:
    """Install each package (not imported yet) with its `__init__` deferred; `packages` maps a package to the
    names wanted from it, each to the submodule that defines it. A package already imported is left as it is.

    Call it before anything imports them (under `framemask.startup.collector_paused`, like other heavy imports)."""
    with _lock:
        for name, names in packages.items():
            if name in sys.modules:
                continue
            parent, _, child = name.rpartition(".")
            if parent:
                importlib.import_module(parent)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.submodule_search_locations is None:
                raise ModuleNotFoundError(f"no package named {name!r}", name=name)
            package = _DeferredPackage(name)
            package.__dict__.update(
                __spec__=spec,
                __loader__=spec.loader,
                __file__=spec.origin,
                __path__=list(spec.submodule_search_locations),
                __package__=name,
                _deferred_names=dict(names),
            )
            sys.modules[name] = package
            if parent:
                setattr(sys.modules[parent], child, package)


def import_parts(module: str, packages: Mapping[str, Mapping[str, str]]) -> types.ModuleType:
    """`module`, imported the first time with `packages` deferred (`defer_init`) and the cycle collector paused,
    as for other heavy imports (`framemask.startup`). A thread asking while another imports it waits for it
    (Python's import lock)."""
    if module not in sys.modules:
        with collector_paused():
            defer_init(packages)
            return importlib.import_module(module)
    return importlib.import_module(module)


def import_in_background(module: str, packages: Mapping[str, Mapping[str, str]], thread: str) -> None:
    """Start `import_parts` on a daemon thread named `thread`, once per process for each module, so the import
    runs beside other start-up work; whoever uses the module later waits for it or finds it loaded. A broken
    install fails where the module is used, not here."""
    with _lock:
        if module in _started:
            return
        _started.add(module)
    threading.Thread(target=_import_quietly, args=(module, packages), name=thread, daemon=True).start()


def _import_quietly(module: str, packages: Mapping[str, Mapping[str, str]]) -> None:
    with contextlib.suppress(Exception):
        import_parts(module, packages)


def is_deferred(name: str) -> bool:
    """Whether package `name` is installed with its `__init__` still not run."""
    return type(sys.modules.get(name)) is _DeferredPackage
