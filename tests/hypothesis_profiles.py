"""Hypothesis profiles, independent of conftest.py: ``HYPOTHESIS_PROFILE=dev`` for long runs.

"ci" (the default) keeps the suite fast on 2 cores and derandomized (the same examples every
run, so CI's verdict does not change from run to run); "dev" explores 10x more examples, new
ones each run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
