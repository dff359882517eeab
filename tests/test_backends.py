"""Backend dispatch (aemg.backends): the one table, choice precedence, and the public controls
(use, override, register) that tests and selfcheck use instead of private registries."""
import importlib
import os
import subprocess
import sys

import pytest

from aemg import backends
from aemg.errors import BackendUnavailable, ConfigError

HOT_OPS = ("envelope", "segment", "tokens", "vq_lookup", "masked_attention")


@pytest.fixture
def clean_env(monkeypatch):
    for var in [v for v in os.environ if v.startswith("AEMG_BACKEND")] + ["AEMG_STRICT"]:
        monkeypatch.delenv(var, raising=False)


def _demo_op():
    """A throw-away op with a reference, a fast backend and one that cannot load."""
    backends.register("_demo", "ref", lambda: "ref", reference=True)
    backends.register("_demo", "fast", lambda: "fast", priority=10)
    backends.register("_demo", "broken", "aemg._no_such_module:kernel", priority=20)


@pytest.fixture
def demo(clean_env):
    _demo_op()
    yield "_demo"
    backends.TABLE.pop("_demo", None)


def test_backend_dispatch(demo, monkeypatch):
    assert backends.names(demo) == ["broken", "fast", "ref"]
    assert backends.available(demo) == ["fast", "ref"]
    assert "No module named" in backends.unavailable(demo)["broken"]
    assert backends.reference(demo) == "ref"
    assert backends.get(demo)() == "fast"                     # automatic fallback
    assert backends.get(demo, "ref")() == "ref"                # explicit
    with pytest.raises(BackendUnavailable, match="_no_such_module"):
        backends.get(demo, "broken")                           # explicit, unavailable: error
    with pytest.raises(ConfigError, match="unknown backend"):
        backends.get(demo, "nope")
    monkeypatch.setenv("AEMG_BACKEND", "ref")
    assert backends.get(demo)() == "ref"
    monkeypatch.delenv("AEMG_BACKEND")
    monkeypatch.setenv("AEMG_BACKEND__DEMO", "ref")              # per operation, after a cached answer
    assert backends.get(demo)() == "ref"
    monkeypatch.delenv("AEMG_BACKEND__DEMO")
    backends.register(demo, "faster", lambda: "faster", priority=15)
    assert backends.get(demo)() == "faster"                   # a new registration is seen
    backends.register(demo, "faster", lambda: "replaced", priority=15)
    assert backends.get(demo)() == "replaced"                 # so is a replaced entry
    monkeypatch.setenv("AEMG_STRICT", "1")
    with pytest.raises(BackendUnavailable, match="AEMG_STRICT"):
        backends.get(demo)
    with pytest.raises(ConfigError, match="unknown operation"):
        backends.get("no_such_op")


def test_use_forces_a_backend_and_restores(demo, monkeypatch):
    with backends.use(demo, "ref"):
        assert backends.requested(demo) == "ref"
        assert backends.get(demo)() == "ref"
        assert backends.get(demo, "fast")() == "fast"          # the argument still wins
        with backends.use(demo, "fast"):
            assert backends.get(demo)() == "fast"
        assert backends.get(demo)() == "ref"
    assert backends.requested(demo) is None
    assert backends.get(demo)() == "fast"
    monkeypatch.setenv("AEMG_BACKEND__DEMO", "ref")
    with backends.use(demo, "fast"):                           # use() before the environment
        assert backends.get(demo)() == "fast"
    with pytest.raises(BackendUnavailable, match="broken"), backends.use(demo, "broken"):
        pass
    assert backends.requested(demo) == "ref"


def test_override_swaps_or_disables_and_restores(demo):
    with backends.override(demo, "fast", lambda: "stand-in"):
        assert backends.get(demo)() == "stand-in"
    assert backends.get(demo)() == "fast"
    with backends.override(demo, "fast", error=ImportError("not built here")):
        assert backends.available(demo) == ["ref"]
        assert backends.get(demo)() == "ref"
        with pytest.raises(BackendUnavailable, match="not built here"):
            backends.get(demo, "fast")
    assert backends.available(demo) == ["fast", "ref"]
    with backends.override(demo, "new", lambda: "new", priority=99):
        assert backends.names(demo)[0] == "new"
    assert "new" not in backends.names(demo)
    with pytest.raises(ConfigError, match="exactly one"), backends.override(demo, "fast"):
        pass


def test_table_lists_every_hot_op_with_one_reference():
    ops = backends.list_ops()
    for op in HOT_OPS + ("sosfiltfilt", "resample_poly"):
        assert op in ops
        assert sum(b.reference for b in backends.TABLE[op].values()) == 1, op
        assert backends.reference(op) in backends.available(op), op  # the reference always loads


def test_table_targets_name_real_modules():
    """Every ``module:attribute`` in the table exists, or its module fails with ImportError only
    (an optional dependency or an unbuilt/disabled extension) - a renamed module cannot hide."""
    for op in backends.list_ops():
        for name, b in backends.TABLE[op].items():
            for ref in filter(None, (b.target if isinstance(b.target, str) else None, b.wrap,
                                     b.priority if isinstance(b.priority, str) else None)):
                module, _, attr = ref.partition(":")
                try:
                    mod = importlib.import_module(module)
                except ImportError:
                    assert module.startswith(("aemg._ext.", "aemg.kernels.")), (op, name, ref)
                    continue
                assert hasattr(mod, attr), (op, name, ref)


def test_no_registration_by_import():
    """Dispatch works in a fresh interpreter that imported nothing but aemg.backends: no module has
    to be imported first to register its op."""
    code = ("from aemg import backends; "
            "print(backends.choose('envelope', 'numpy'), backends.reference('vq_lookup'), "
            "backends.get('tokens', 'numpy').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["numpy", "torch", "extract_tokens_reference"]


def test_aemg_no_ext_disables_the_compiled_extensions():
    """AEMG_NO_EXT=1 at run time: no aemg._ext module loads, every op falls back, selfcheck passes."""
    env = {**os.environ, "AEMG_NO_EXT": "1"}
    env.pop("AEMG_STRICT", None)
    code = ("from aemg import backends\n"
            "import aemg._ext\n"
            "try:\n"
            "    import aemg._ext.segment_cy\n"
            "except ImportError:\n"
            "    pass\n"
            "else:\n"
            "    raise SystemExit('segment_cy imported')\n"
            "for op in ('envelope', 'segment', 'tokens', 'sosfiltfilt', 'resample_poly'):\n"
            "    assert 'cython' not in backends.available(op), op\n"
            "    assert 'AEMG_NO_EXT' in backends.unavailable(op)['cython'], op\n"
            "import sys, aemg.data.readers.base, aemg.tokenizer.segment\n"
            "loaded = [m for m in sys.modules if m.startswith('aemg._ext.')]\n"
            "assert not loaded, loaded\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr
    check = subprocess.run([sys.executable, "-m", "aemg.selfcheck"], capture_output=True, text=True,
                           env=env, check=False)
    assert check.returncode == 0, check.stderr
    assert "AEMG_NO_EXT" in check.stdout
