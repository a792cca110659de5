"""Repository-wide pytest hooks.

With `NEMO_MLX_REFERENCE=required` (set by `.ci/run`, which installs NeMo and torch), the
live NeMo comparisons must run: the session stops at once if NeMo cannot be imported, and a
test that would be skipped for want of the `reference` group fails instead, so a broken
reference install can never pass as a row of skips. Without it they are skipped, saying why.

`mlx_cpu_runtime.auto` is imported here, before any test module imports `mlx`, so that the
tests run MLX with the optimised BLAS the packages load (as users' processes do).
"""

from __future__ import annotations

import os

import mlx_cpu_runtime.auto  # noqa: F401  (before any test module imports mlx)

import pytest

REQUIRED = os.environ.get("NEMO_MLX_REFERENCE") == "required"
_REFERENCE_REASONS = ("reference", "nemo_toolkit", "needs torch")


def _fail_if_skipped_for_want_of_reference(report: pytest.CollectReport | pytest.TestReport):
    """Under REQUIRED, a skip whose reason is a missing reference group becomes a failure."""
    if not (REQUIRED and report.skipped):
        return
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(word in str(reason) for word in _REFERENCE_REASONS):
        report.outcome = "failed"
        report.longrepr = f"skipped for want of NeMo while it is required: {report.longrepr}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not REQUIRED:
        return
    try:
        import nemo.collections.asr  # noqa: F401
        import torch  # noqa: F401
    except Exception as err:  # an install that imports half-way is as broken as none
        pytest.exit(f"NEMO_MLX_REFERENCE=required, but NeMo cannot be imported: {err!r}", 1)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    _fail_if_skipped_for_want_of_reference(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    _fail_if_skipped_for_want_of_reference(report)
    return report
