"""Benchmark session setup: ``--quick`` (CI mode: small sizes, few rounds, ratio guards only) and
a Markdown summary of every suite's throughput table at the end of the run."""
import os
import sys

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1") if os.environ.get("AEMG_TEST_CUDA") != "1" else None
sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", default=False,
                     help="CI mode: small inputs, few rounds; only ratio guards are asserted")


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return bool(request.config.getoption("--quick"))


@pytest.fixture(scope="session")
def memory_read_rate() -> float:
    """This machine's memory-read bandwidth, float32 samples/s, measured in this run."""
    return harness.memory_read_rate()


def pytest_terminal_summary(terminalreporter):
    for table in harness.write_results():
        terminalreporter.write_line("")
        for line in table.splitlines():
            terminalreporter.write_line(line)
