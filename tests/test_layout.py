"""The package's layout as docs/layout.md states it: every module listed, no import circles, tests
mirroring the package, one harness for child processes."""
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "recbole_dien"


def module_files():
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, known):
    """The package's modules ``path`` imports anywhere in it (lazy imports inside functions included).
    ``from package import name`` counts as importing the module ``package.name`` where there is one,
    else the package; every import also loads the parents, which are left out (they always run first)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found.update(submodules or {node.module})
    return {name for name in found if name in known}


def import_circles():
    files = {module_name(path): path for path in module_files()}
    graph = {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}
    circles, done = [], set()

    def visit(name, trail):
        if name in trail:
            circles.append(trail[trail.index(name):] + [name])
            return
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, trail + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return circles


def test_no_module_imports_one_that_imports_it_back():
    assert import_circles() == []


def test_the_circle_finder_finds_a_circle(tmp_path, monkeypatch):
    package = tmp_path / "recbole_dien"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "one.py").write_text("def f():\n    from recbole_dien.a import two\n")
    (package / "a" / "two.py").write_text("from recbole_dien.a.one import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert import_circles() == [["recbole_dien.a.one", "recbole_dien.a.two", "recbole_dien.a.one"]]


def test_docs_layout_lists_every_module_and_script():
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    block = layout.split("```")[1]
    listed, folders = set(), []
    for line in block.splitlines():
        entry = re.match(r"^( *)(\S+)", line)
        if not entry:
            continue
        depth, name = len(entry.group(1)) // 2, entry.group(2)
        if name.endswith("/"):
            folders[depth:] = [name]
        elif name.endswith(".py"):
            listed.add("".join(folders[:depth]) + name)
    wanted = {str(path.relative_to(ROOT)) for path in module_files() if path.name != "__init__.py" or
              path.parent == PACKAGE}
    wanted |= {str(path.relative_to(ROOT)) for path in (ROOT / "benchmarks").glob("*.py")}
    assert sorted(wanted - listed) == []
    assert sorted(name for name in listed - wanted if name.startswith(("recbole_dien/", "benchmarks/"))) == []


def test_tests_mirror_the_package_folders():
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert folders == {"benchmark", "config", "data", "datasets", "evaluator", "hopwise", "model", "quick_start",
                       "serving", "trainer", "utils"}
    for folder in folders:
        assert (ROOT / "tests" / folder / "__init__.py").is_file(), folder
        assert list((ROOT / "tests" / folder).glob("test_*.py")), folder


def test_child_processes_are_run_by_the_harness_alone():
    """benchmark/harness.py is the one place that starts a measurement's process and reads its JSON line."""
    runners = [path for path in [*module_files(), *(ROOT / "benchmarks").glob("*.py")]
               if re.search(r"subprocess\.(Popen|run)\(", path.read_text(encoding="utf-8"))
               and "json.loads" in path.read_text(encoding="utf-8")]
    assert [str(path.relative_to(ROOT)) for path in runners] == ["recbole_dien/benchmark/harness.py"]
