"""Shared pytest set-up: hypothesis profiles (tests/hypothesis_profiles.py), the `sim` fixture,
per-test folders, and the two tiers.

The tiers: `pytest -m "not slow"` is the inner loop (about a minute; `scripts/fast.sh` adds the
coverage figure); the whole suite is `bash scripts/test.sh`. A test that takes more than
`FAST_LIMIT_S` is marked ``slow``; olad and browser tests are slow whatever they take (they
start daemons). At the end of a run, the tests of the fast tier that took longer than the
limit are listed (``LATENTDMX_TIER_STRICT=1`` makes that a failure)."""

from __future__ import annotations

import os

# One BLAS thread, as the daemon has (pi_app/__init__), set before anything imports NumPy: with
# OpenBLAS's thread pool, a fork (subprocess with user=, os.fork) runs OpenBLAS's pre-fork
# handler, which joins the pool while the forking thread holds the GIL — and a show thread
# waiting for the GIL after a matrix product deadlocks the test (seen under pytest-xdist).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import hypothesis_profiles  # noqa: F401  (the one place the profiles are set)

_FOREIGN_ENV = ("RUNTIME_DIRECTORY", "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "WATCHDOG_PID", "LATENTDMX_SOCKET", "INVOCATION_ID", "LATENTDMX_SYSTEM_DIR")


FAST_LIMIT_S = 2.0          # a test of the fast tier takes less than this (setup to teardown)
_too_slow: dict[str, float] = {}
_CPU0 = pytest.StashKey[float]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ("olad" in item.keywords or "browser" in item.keywords) \
                and "slow" not in item.keywords:
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # on pytest-xdist's workers: the slow tests first (each worker collects the same
        # order), so that no long test starts near the end while the others have finished
        items.sort(key=lambda item: "slow" not in item.keywords)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Adds up each fast-tier test's setup, call and teardown (under xdist too: the reports
    reach the controller with their keywords)."""
    _record_cpu(report)
    if "slow" in report.keywords or report.skipped:
        return
    _too_slow[report.nodeid] = _too_slow.get(report.nodeid, 0.0) + report.duration


_cpu: dict[str, float] = {}


def _cpu_now() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU0] = _cpu_now()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Each test's CPU time (its process and the processes it started and waited for), for
    the summary's CPU list: the whole suite's time on 2 cores is bounded by its CPU."""
    if call.when == "teardown" and _CPU0 in item.stash:
        item.user_properties.append(("cpu_s", _cpu_now() - item.stash[_CPU0]))
    yield


def _record_cpu(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "cpu_s" and report.when == "teardown":
            _cpu[report.nodeid] = float(value)


def _over_limit() -> list[tuple[float, str]]:
    return sorted(((s, n) for n, s in _too_slow.items() if s > FAST_LIMIT_S), reverse=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("LATENTDMX_TIER_STRICT") == "1" and exitstatus == 0 \
            and not os.environ.get("PYTEST_XDIST_WORKER") and _over_limit():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _cpu and os.environ.get("LATENTDMX_CPU_REPORT"):
        top = sorted(((s, n) for n, s in _cpu.items()), reverse=True)
        terminalreporter.section(f"CPU: {sum(_cpu.values()):.0f} s in all tests; the "
                                 f"{int(os.environ['LATENTDMX_CPU_REPORT'] or 20)} costliest")
        for s, n in top[:int(os.environ["LATENTDMX_CPU_REPORT"] or 20)]:
            terminalreporter.line(f"{s:6.1f} s  {n}")
    over = _over_limit()
    if not over:
        return
    terminalreporter.section(f"fast-tier tests over {FAST_LIMIT_S:g} s (mark them slow, or "
                             "put their show on virtual time)")
    for s, n in over:
        terminalreporter.line(f"{s:6.2f} s  {n}")
    if os.environ.get("LATENTDMX_TIER_STRICT") == "1":
        terminalreporter.line("LATENTDMX_TIER_STRICT=1: these fail the run")


@pytest.fixture(autouse=True)
def _own_folders(monkeypatch, tmp_path_factory):
    """Every test is a stranger to the user's own LatentDMX: its own runtime folder (so its
    daemons bind their own control socket, never the default one a user's show holds), its
    own config, data and state folders (no user fixtures, models or presets leak in), and
    none of the service's variables. Processes a test starts inherit them."""
    base = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_RUNTIME_DIR", "run"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"),
                     ("XDG_CACHE_HOME", "cache")):
        d = base / sub
        d.mkdir(mode=0o700)
        monkeypatch.setenv(var, str(d))
    for var in _FOREIGN_ENV:
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def default_config():
    from pi_app.config import load_config

    return load_config(None)


@pytest.fixture
def sim(default_config):
    """Run the whole loop offline on the simulator: ``sim(seconds, **show_kwargs)`` -> SimOutput.

    Uses the real Show (pipeline, output) at the config's fps with history kept, on virtual
    time (`FastClock`: the same frames, no waiting); pass ``clock=FrameClock`` for real time."""
    from pi_app.clock import FastClock
    from pi_app.outputs.sim import SimOutput
    from pi_app.patch import Patch
    from pi_app.show import Show

    def run(seconds: float = 1.0, config=None, **kwargs) -> SimOutput:
        cfg = config or default_config
        patch = Patch(cfg)
        out = SimOutput(patch.universes, blackout=patch.blackout_frames, keep_history=True)
        kwargs.setdefault("control", False)
        kwargs.setdefault("clock", FastClock)
        Show(cfg, out, duration_s=seconds, **kwargs).run()
        return out

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
