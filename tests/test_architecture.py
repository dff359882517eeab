"""The import rules of docs/ARCHITECTURE.md, checked on the source (``ast``: nothing is imported).

The layering table and the exceptions table are read from the Markdown, so the document and this
test cannot drift: a new import against the layering fails here until the code moves or the
document says why (and an exception that no longer exists fails too, so the table stays tight).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
#: source folder -> the package name it is installed as (setup.py maps kernels/ to aemg.kernels)
SOURCES = {ROOT / "aemg": "aemg", ROOT / "kernels": "aemg.kernels"}


@dataclass(frozen=True)
class Edge:
    """One import of an aemg module by an aemg module: ``name`` is the imported attribute of a
    ``from`` import (None for ``import x`` and for a ``from`` import that names a module)."""

    importer: str
    imported: str
    name: str | None
    line: int
    lazy: bool

    def __str__(self) -> str:
        what = f"{self.imported}.{self.name}" if self.name else self.imported
        return f"{self.importer}:{self.line} imports {what}" + (" (in a function)" if self.lazy else "")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of aemg (kernels/ as ``aemg.kernels``)."""
    out = {}
    for folder, package in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


MODULES = module_files()


def resolve_from(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` in ``module`` (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_aemg(name: str) -> bool:
    return name == "aemg" or name.startswith("aemg.")


def parse_module(module: str) -> tuple[list[Edge], list[tuple[int, str, str]]]:
    """Every aemg import of ``module`` (top level, in functions, under ``if``/``try``) and every
    ``alias._private`` attribute read through a name bound to an aemg module:
    ``[(line, module bound, attribute)]``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    edges: list[Edge] = []
    bound: dict[str, str] = {}  # local name -> aemg module it is bound to

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if is_aemg(alias.name):
                        edges.append(Edge(module, alias.name, None, child.lineno, lazy))
                        if alias.asname:
                            bound[alias.asname] = alias.name
                        else:  # ``import aemg.x.y`` binds ``aemg``
                            bound["aemg"] = "aemg"
            elif isinstance(child, ast.ImportFrom):
                target = resolve_from(module, child)
                if not is_aemg(target):
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    if sub in MODULES:  # ``from pkg import module``: an import of the module
                        edges.append(Edge(module, sub, None, child.lineno, lazy))
                        bound[alias.asname or alias.name] = sub
                    else:
                        edges.append(Edge(module, target, alias.name, child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    private_reads = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound and is_private(node.attr)):
            private_reads.append((node.lineno, bound[node.value.id], node.attr))
    return edges, private_reads


def is_private(name: str) -> bool:
    """One leading underscore, not a dunder (``_REGISTRY`` yes, ``__version__`` no)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


PARSED = {m: parse_module(m) for m in MODULES}
EDGES = [e for m in MODULES for e in PARSED[m][0]]


# --- the tables of docs/ARCHITECTURE.md ---------------------------------------------------------


def doc_table(header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header row starts with ``| header |`` (cells stripped)."""
    lines = DOC.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {header} |")), None)
    assert start is not None, f"{DOC}: no table with the header '| {header} |'"
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def names_in(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


#: row name -> its module prefixes
ROWS: dict[str, list[str]] = {row[0]: names_in(row[1]) for row in doc_table("row")}
#: row name -> rows and single modules (backquoted) it may import
MAY_IMPORT: dict[str, set[str]] = {
    row[0]: set(names_in(row[2])) | set(re.sub(r"`[^`]*`", " ", row[2]).split())
    for row in doc_table("row")}
#: (importer, imported) pairs allowed against the layering
EXCEPTIONS: set[tuple[str, str]] = {tuple(names_in(r[0]) + names_in(r[1])) for r in doc_table("importer")}


def row_of(module: str) -> str:
    """The row whose prefix names ``module`` most exactly (longest matching prefix)."""
    best, best_len = None, -1
    for row, prefixes in ROWS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = row, len(p)
    assert best is not None, f"{module}: in no row of the layering table of {DOC.name}"
    return best


def allowed(importer: str, imported: str) -> bool:
    may = MAY_IMPORT[row_of(importer)]
    return row_of(imported) in may or any(imported == m or imported.startswith(m + ".") for m in may)


# --- tests ---------------------------------------------------------------------------------------


def test_graph_sees_the_code():
    """Guard: the parser finds the modules and the imports the rules are about (a move of the
    source or a parser bug cannot make the other tests vacuous)."""
    assert {"aemg", "aemg.data.readers.base", "aemg.tokenizer.corpus.writer", "aemg.kernels.vq_lookup",
            "aemg.cli"} <= set(MODULES)
    pairs = {(e.importer, e.imported) for e in EDGES}
    assert ("aemg.model.backbone", "aemg.tokenizer.sentence") in pairs  # relative, top level
    assert ("aemg.cli.vocab", "aemg.train.data") in pairs  # in a function
    assert ("aemg.kernels.vq_lookup", "aemg.kernels._aot") in pairs  # kernels/ mapped
    assert any(e.lazy for e in EDGES) and any(not e.lazy for e in EDGES)


def test_tables_are_well_formed():
    rows = set(ROWS)
    assert {"core", "data", "tokenizer", "model", "train", "eval", "cli"} <= rows
    for row, may in MAY_IMPORT.items():
        assert row in may, f"row {row!r} must list itself"
        unknown = {m for m in may if m not in rows and m not in MODULES}
        assert not unknown, f"row {row!r} may import unknown rows/modules {sorted(unknown)}"
    for importer, imported in EXCEPTIONS:
        assert importer in MODULES and imported in MODULES, (importer, imported)
    for module in MODULES:
        row_of(module)  # every module is in a row


def test_layering():
    """Every import goes down the layering table or is a listed exception (lazy, in a function)."""
    bad = [e for e in EDGES
           if not allowed(e.importer, e.imported) and (e.importer, e.imported) not in EXCEPTIONS]
    assert not bad, "imports against docs/ARCHITECTURE.md's layering:\n" + "\n".join(map(str, bad))


def test_exceptions_are_needed_and_lazy():
    for importer, imported in sorted(EXCEPTIONS):
        found = [e for e in EDGES if (e.importer, e.imported) == (importer, imported)]
        assert found, f"listed exception {importer} -> {imported} no longer exists: remove its row"
        assert not allowed(importer, imported), f"{importer} -> {imported} is allowed: remove its row"
        eager = [e for e in found if not e.lazy]
        assert not eager, f"an exception must stay a lazy import: {eager[0]}"


def test_nothing_outside_cli_imports_cli():
    bad = [e for e in EDGES if row_of(e.imported) == "cli" and row_of(e.importer) != "cli"]
    assert not bad, "\n".join(map(str, bad))


def package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def private_allowed(importer: str, module: str, name: str) -> bool:
    """A private name of ``module`` may be used by modules of the same package directory, unless
    that directory is aemg/ itself (its top-level modules are separate concerns)."""
    home = package_of(module)
    return home != "aemg" and package_of(importer) == home


def test_no_private_name_across_packages():
    bad = [str(e) for e in EDGES
           if e.name and is_private(e.name) and not private_allowed(e.importer, e.imported, e.name)]
    for module, (_, reads) in PARSED.items():
        bad += [f"{module}:{line} reads {target}.{attr}" for line, target, attr in reads
                if target != module and not private_allowed(module, target, attr)]
    assert not bad, "private names used outside their package:\n" + "\n".join(bad)


def test_private_modules_only_below_their_package():
    def below(importer: str, package: str) -> bool:
        return importer == package or importer.startswith(package + ".")

    bad = []
    for e in EDGES:
        package, _, leaf = e.imported.rpartition(".")
        if is_private(leaf) and not below(e.importer, package):
            bad.append(e)
    assert not bad, "\n".join(map(str, bad))


def test_private_rule_is_not_vacuous():
    """Guard: the private rule tells same-package private imports (allowed) from others; the
    import scan sees imported names at all (so an empty result means none, not a blind scan)."""
    assert any(e.name == "subject_stats" and e.importer == "aemg.eval.methods" for e in EDGES)
    assert not private_allowed("aemg.eval.trials", "aemg.data.readers", "_REGISTRY")
    assert not private_allowed("aemg.ops", "aemg.backends", "_TABLE")
    assert private_allowed("aemg.eval.methods", "aemg.eval.baselines", "_subject_stats")


def torch_free_modules() -> list[str]:
    """The modules the document's "No torch at import" rule names (before "load neither")."""
    text = DOC.read_text()
    start = text.index("**No torch at import.**")
    return names_in(text[start:text.index("load neither", start)])


TORCH_FREE = torch_free_modules()


def test_torch_free_list_is_read():
    assert {"aemg", "aemg.data", "aemg.cli"} <= set(TORCH_FREE) <= set(MODULES)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_import_loads_no_torch(module):
    """As the document says: these import without torch or h5py (a fresh interpreter)."""
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'h5py') if m in sys.modules]; "
            "assert not heavy, heavy")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, f"import {module}: {done.stderr.strip().splitlines()[-1:]}"
