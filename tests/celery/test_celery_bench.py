"""``python -m bench.celery_bench --quick`` runs and prints a row per process count.

Only that the benchmark runs is checked, never a figure (CI machines are noise).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from celery_support import POSTGRES_URL, REDIS_URL, ROOT, require_url

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def test_celery_bench_quick_prints_a_row_for_1_2_and_4_processes() -> None:
    require_url(REDIS_URL)
    require_url(POSTGRES_URL)
    done = subprocess.run(
        [sys.executable, "-m", "bench.celery_bench", "--quick", "--broker", REDIS_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for processes in (1, 2, 4):
        # processes | prefetch | five figures | speed-up
        row = rf"^ +{processes} \| +\S+ \|( +[\d,.]+x? \|){{5}} +[\d.]+x$"
        assert re.search(row, done.stdout, re.M), done.stdout
