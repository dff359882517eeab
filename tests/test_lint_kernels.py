"""The compiler settings that bit-identity of the signal kernels relies on stay in place (and the
Triton kernels keep their documented one-argument-per-line signatures).

The NumPy reference, the Numba and the Cython kernels of ``envelope``/``segment``/``tokens``/
``sosfiltfilt`` agree bit for bit because all of them perform the same IEEE float64 operations in
the same order. Three things would silently break that (and move event boundaries and token bytes):

- Numba ``fastmath`` (reassociation, FMA contraction, no NaN/inf semantics) or ``parallel``
  (prange reductions in a different order) on any ``@njit``/``numba.jit``;
- a ``.pyx`` without ``# distutils: extra_compile_args = -ffp-contract=off`` in its header (GCC's
  default in GNU C mode fuses ``a*b + c`` into an FMA on CPUs that have one, e.g. with the
  ``-march=native`` of setup.py);
- ``-ffast-math``/``-Ofast``/``-funsafe-math-optimizations`` or ``-ffp-contract=fast`` anywhere in
  the build flags.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_DIRS = ("aemg", "kernels", "scripts", "benchmarks")
UNSAFE_FLAGS = re.compile(r"-ffast-math|-Ofast|-funsafe-math-optimizations|-ffp-contract=fast|"
                          r"-fassociative-math|-freciprocal-math")
FP_HEADER = "# distutils: extra_compile_args = -ffp-contract=off"


def _python_files():
    for d in PY_DIRS:
        yield from sorted((ROOT / d).rglob("*.py"))


def _numba_jit_calls(tree: ast.AST):
    """Every call ``njit(...)``, ``nb.njit(...)``, ``numba.jit(...)``, ``nb.jit(...)``, also as
    decorators with arguments (``@nb.njit(cache=True)``); ``triton.jit`` is not Numba."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        bare = isinstance(f, ast.Name) and f.id in {"njit", "jit", "vectorize", "guvectorize", "stencil"}
        dotted = isinstance(f, ast.Attribute) and f.attr in {"njit", "jit", "vectorize", "guvectorize"} \
            and isinstance(f.value, ast.Name) and f.value.id in {"nb", "numba"}
        if bare or dotted:
            yield node


def test_numba_kernels_exist_where_expected():
    """The lint below must see the kernels (a rename must not make it vacuous)."""
    found = {p.relative_to(ROOT).as_posix() for p in _python_files()
             if any(True for _ in _numba_jit_calls(ast.parse(p.read_text())))}
    assert {"aemg/tokenizer/segment_numba.py", "aemg/tokenizer/tokens_numba.py"} <= found


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_numba_fastmath_or_parallel(path):
    text = path.read_text()
    if "numba" not in text:
        return
    tree = ast.parse(text)
    for call in _numba_jit_calls(tree):
        for kw in call.keywords:
            if kw.arg in {"fastmath", "parallel"}:
                safe = isinstance(kw.value, ast.Constant) and kw.value.value in (False, None)
                assert safe, f"{path.relative_to(ROOT)}:{call.lineno}: {kw.arg}= breaks bit-identity"
            assert kw.arg is not None, f"{path.relative_to(ROOT)}:{call.lineno}: **options hide fastmath"
    assert "NUMBA_FASTMATH" not in text and "config.FASTMATH" not in text, path


PYX = sorted((ROOT / "csrc").glob("*.pyx"))


def test_there_are_cython_sources():
    assert {p.name for p in PYX} >= {"segment_cy.pyx", "tokens_cy.pyx", "filt_cy.pyx"}


@pytest.mark.parametrize("path", PYX, ids=lambda p: p.name)
def test_pyx_keeps_fp_contract_off(path):
    """Cython reads ``# distutils:`` / ``# cython:`` comments only before the first statement."""
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.strip())
    assert FP_HEADER in header, f"csrc/{path.name}: its header must keep {FP_HEADER!r}"
    assert not UNSAFE_FLAGS.search(path.read_text()), f"csrc/{path.name}: unsafe floating-point flag"
    assert "fma(" not in path.read_text(), f"csrc/{path.name}: an explicit fma() changes rounding"


def test_build_flags_keep_ieee_semantics():
    text = (ROOT / "setup.py").read_text()
    assert not UNSAFE_FLAGS.search(text)
    assert '"-O3"' in text  # not -Ofast
    for cfg in ("pyproject.toml",):
        assert not UNSAFE_FLAGS.search((ROOT / cfg).read_text()), cfg


TRITON_FILES = sorted((ROOT / "kernels").glob("*.py"))


def _triton_kernels(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Attribute) and d.attr == "jit" and isinstance(d.value, ast.Name)
                and d.value.id == "triton" for d in node.decorator_list):
            yield node


@pytest.mark.parametrize("path", TRITON_FILES, ids=lambda p: p.name)
def test_triton_signatures_one_commented_argument_per_line(path):
    """Kernel signatures list one argument per line, each with a comment (shape/role of a pointer,
    what a stride strides over, the meaning of a constexpr)."""
    lines = path.read_text().splitlines()
    for fn in _triton_kernels(ast.parse("\n".join(lines))):
        args = fn.args.args
        where = f"kernels/{path.name}:{fn.name}"
        assert len({a.lineno for a in args}) == len(args), f"{where}: one argument per line"
        for a in args:
            assert "#" in lines[a.lineno - 1], f"{where}: argument {a.arg} has no comment"


def test_triton_lint_sees_the_kernels():
    names = {fn.name for p in TRITON_FILES for fn in _triton_kernels(ast.parse(p.read_text()))}
    assert {"_vq_argmin_kernel", "_attn_fwd_kernel", "_attn_bwd_dkdv_kernel", "_attn_bwd_dq_kernel",
            "_attn_bwd_delta_kernel"} <= names
