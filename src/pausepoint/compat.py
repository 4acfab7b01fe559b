"""Resuming a run paused under an older version of its chart.

The public path of :mod:`pausepoint.durable.compat`, where the rules live:
``Runs(compatibility=unchanged_from_pause)``.
"""

from pausepoint.durable.compat import CompatibilityRule, unchanged_from_pause

__all__ = ["CompatibilityRule", "unchanged_from_pause"]
