"""The package layering, checked from the source with `ast` (no import side effects):

- nothing below the API imports `framemask.api`; the core packages import neither `jobs` nor `service`;
- routes reach the database only through `framemask.service` (no SQLAlchemy statements, no `session.execute`,
  `.query`, `.scalars`), import no other route, nothing from `framemask.jobs`, and no private name;
- `jobs/` and `service/` have no import cycle; `jobs/` has no import inside a function but the documented.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "framemask"
CORE = ("media", "detect", "redact", "streams", "store", "events")

LAZY_IMPORTS = {
    ("jobs/health.py", "kombu.connection"): "the broker check runs only with FRAMEMASK_QUEUE=celery",
    ("jobs/tasks.py", "framemask.jobs.analysis"): "the pose model's code loads only where a job runs it",
    ("jobs/analysis.py", "framemask.detect.pose"): "the pose model's code loads only where a job runs it",
    ("jobs/analysis.py", "framemask.events.sampled"): "the pose model's code loads only where a job runs it",
}
"""Function-level imports allowed in `jobs/`, with the reason each stays lazy."""

NOT_YET_ON_THE_SERVICE_LAYER: dict[str, str] = {}
"""Routes written before they could use the service layer, each with what is left to move."""

QUERY_CALLS = {"execute", "query", "scalars", "scalar"}
SQL_STATEMENTS = {"select", "update", "insert", "delete", "func", "text"}


def _modules(package: str) -> list[Path]:
    root = SRC / package
    return sorted(root.rglob("*.py")) if root.is_dir() else [SRC / f"{package}.py"]


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _imports(tree: ast.AST) -> list[tuple[ast.AST, str, list[str]]]:
    """(node, module, names) of every import (relative imports resolved is not needed: the tree has none)."""
    out: list[tuple[ast.AST, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "framemask uses absolute imports"
            out.append((node, node.module or "", [alias.name for alias in node.names]))
    return out


def _top_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported at module level (TYPE_CHECKING blocks excluded: they never run)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub, module, names in _imports(node):
            del sub
            found.add(module)
            found.update(f"{module}.{name}" for name in names)
    return found


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("package", ["service", "jobs", *CORE, "settings", "errors"])
def test_nothing_below_the_api_imports_it(package: str) -> None:
    offenders = [
        f"{_rel(path)}:{node.lineno} imports {module}"  # type: ignore[attr-defined]
        for path in _modules(package)
        for node, module, _ in _imports(_parse(path))
        if module == "framemask.api" or module.startswith("framemask.api.")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", CORE)
def test_core_packages_import_neither_jobs_nor_service(package: str) -> None:
    offenders = [
        f"{_rel(path)}:{node.lineno} imports {module}"  # type: ignore[attr-defined]
        for path in _modules(package)
        for node, module, _ in _imports(_parse(path))
        if module.split(".")[:2] in (["framemask", "jobs"], ["framemask", "service"])
    ]
    assert offenders == []


def test_routes_query_only_through_the_service_layer() -> None:
    offenders: list[str] = []
    for path in _modules("api/routes"):
        if _rel(path) in NOT_YET_ON_THE_SERVICE_LAYER:
            continue
        tree = _parse(path)
        for node, module, names in _imports(tree):
            line = f"{_rel(path)}:{node.lineno}"  # type: ignore[attr-defined]
            if module == "sqlalchemy" and SQL_STATEMENTS & set(names):
                offenders.append(f"{line} imports SQL statements {sorted(SQL_STATEMENTS & set(names))}")
            if module.startswith("framemask.api.routes"):
                offenders.append(f"{line} imports another route: {module} {names}")
            if module.startswith("framemask.jobs"):
                offenders.append(f"{line} imports {module} (call framemask.service instead)")
            private = [n for n in names if n.startswith("_") and module.startswith("framemask.")]
            if private:
                offenders.append(f"{line} imports private {module}.{private}")
        for call in ast.walk(tree):
            is_method = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            if is_method and call.func.attr in QUERY_CALLS and "session" in ast.unparse(call.func.value):  # type: ignore[attr-defined]
                offenders.append(f"{_rel(path)}:{call.lineno} {ast.unparse(call.func)}()")  # type: ignore[attr-defined]
    assert offenders == []


def test_jobs_write_through_the_service_layer_or_the_job_table() -> None:
    """Task handlers state no SQL: their rows go through `framemask.service`, job rows through `jobs/queue.py`
    (the job table itself); `jobs/health.py` only pings the database (`SELECT 1`)."""
    own_sql = {"jobs/queue.py": SQL_STATEMENTS, "jobs/health.py": {"text"}}
    offenders = [
        f"{_rel(path)}:{node.lineno} imports {sorted(set(names) & SQL_STATEMENTS)} from sqlalchemy"  # type: ignore[attr-defined]
        for path in _modules("jobs")
        for node, module, names in _imports(_parse(path))
        if module == "sqlalchemy" and (set(names) & SQL_STATEMENTS) - own_sql.get(_rel(path), set())
    ]
    assert offenders == []


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = [
        f"{_rel(path)}:{node.lineno} imports {module}.{name}"  # type: ignore[attr-defined]
        for package in ("api", "jobs", "service")
        for path in _modules(package)
        for node, module, names in _imports(_parse(path))
        if module.startswith("framemask.")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_jobs_imports_nothing_inside_functions_but_the_documented() -> None:
    offenders: list[str] = []
    for path in _modules("jobs"):
        tree = _parse(path)
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node, module, _ in _imports(func):
                if (_rel(path), module) not in LAZY_IMPORTS:
                    offenders.append(f"{_rel(path)}:{node.lineno} imports {module} inside {func.name}()")  # type: ignore[attr-defined]
    assert offenders == []


def test_jobs_and_service_have_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in [*_modules("jobs"), *_modules("service")]:
        name = "framemask." + _rel(path)[: -len(".py")].replace("/", ".")
        graph[name] = {
            m for m in _top_level_imports(_parse(path)) if m.startswith(("framemask.jobs.", "framemask.service."))
        }
    for name in graph:
        graph[name] &= set(graph)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
