"""The import graph of enhancer_gan.data: no cycles, each module imports alone.

Imports are read from the source with `ast` (module level and inside
functions, where the lazy imports are), so a cycle is found even when it
only closes at run time.
"""

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "enhancer_gan"
NO_TF_CLAIM = "Nothing here imports TensorFlow"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
DATA_MODULES = sorted(m for m in MODULES if m.startswith("enhancer_gan.data."))


def imported_modules(name: str, source: str) -> set[str]:
    """The enhancer_gan modules that the source of module `name` imports, anywhere."""
    is_package = MODULES[name].name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here[: len(here) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from package import module` imports the module; `from module
            # import name` imports the module.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # The deepest enhancer_gan module the name refers to.
            parts = target.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, path.read_text()) for name, path in MODULES.items()}


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start in the graph, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_the_import_reader_sees_lazy_and_relative_imports():
    # The checker itself: a lazy `from package import module` inside a function
    # and a relative import both count (a cycle through them is a cycle).
    MODULES.setdefault("enhancer_gan.data.fake_a", PACKAGE / "data" / "fake_a.py")
    MODULES.setdefault("enhancer_gan.data.fake_b", PACKAGE / "data" / "fake_b.py")
    try:
        a = imported_modules(
            "enhancer_gan.data.fake_a",
            "def f():\n    from enhancer_gan.data import fake_b\n",
        )
        b = imported_modules("enhancer_gan.data.fake_b", "from .fake_a import x\n")
        assert a == {"enhancer_gan.data", "enhancer_gan.data.fake_b"}
        assert "enhancer_gan.data.fake_a" in b
        graph = {"enhancer_gan.data.fake_a": a, "enhancer_gan.data.fake_b": b}
        assert cycle_through(graph, "enhancer_gan.data.fake_a") == [
            "enhancer_gan.data.fake_a",
            "enhancer_gan.data.fake_b",
            "enhancer_gan.data.fake_a",
        ]
    finally:
        del MODULES["enhancer_gan.data.fake_a"], MODULES["enhancer_gan.data.fake_b"]


def test_the_old_archive_shim_import_counts_as_a_cycle():
    # What modelnet.py held before: a lazy forward to archives, which imports
    # modelnet back (through its class lists).
    graph = import_graph()
    graph["enhancer_gan.data.modelnet"] = graph["enhancer_gan.data.modelnet"] | imported_modules(
        "enhancer_gan.data.modelnet",
        "def __getattr__(name):\n    from enhancer_gan.data import archives\n",
    )
    graph["enhancer_gan.data.archives"] = graph["enhancer_gan.data.archives"] | imported_modules(
        "enhancer_gan.data.archives",
        "from enhancer_gan.data.modelnet import MODELNET10_CLASSES, SPLITS\n",
    )
    assert cycle_through(graph, "enhancer_gan.data.modelnet")


@pytest.mark.parametrize("name", DATA_MODULES)
def test_no_data_module_imports_one_that_imports_it_back(name):
    cycle = cycle_through(import_graph(), name)
    assert cycle is None, " -> ".join(cycle)


def test_no_data_module_forwards_names_lazily():
    # Module-level __getattr__ was the shim that forwarded old names; every
    # user imports from the real home now.
    for name in DATA_MODULES:
        tree = ast.parse(MODULES[name].read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in defined, name
    from enhancer_gan.data import modelnet

    for old in ("VoxelArchive", "archive_records", "archive_to_canonical", "load_archive"):
        assert not hasattr(modelnet, old), old


def test_each_data_module_imports_alone():
    # One fresh interpreter: before each import every enhancer_gan module is
    # dropped, so each one is imported with only what it pulls in itself.
    # Modules that say they import no TensorFlow go first and are held to it.
    no_tf = [m for m in DATA_MODULES if NO_TF_CLAIM in MODULES[m].read_text()]
    assert "enhancer_gan.data.modelnet" in no_tf and "enhancer_gan.data.archives" in no_tf
    order = no_tf + [m for m in DATA_MODULES if m not in no_tf]
    script = textwrap.dedent(
        f"""
        import importlib, sys
        no_tf = set({no_tf!r})
        for name in {order!r}:
            for loaded in [m for m in sys.modules if m.split(".")[0] == "enhancer_gan"]:
                del sys.modules[loaded]
            importlib.import_module(name)
            if name in no_tf and "tensorflow" in sys.modules:
                sys.exit(f"{{name}} says it imports no TensorFlow, but TensorFlow got imported")
            print("OK", name, flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.split() == [w for m in order for w in ("OK", m)]
