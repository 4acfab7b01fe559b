"""``python -m bench.runs_page [--quick] [--stores sqlite,postgres]``: the ``/runs`` page's server time.

For each store, in a fresh file / schema: load 100,000 runs (80,000 completed,
10,000 failed and 10,000 paused, as :mod:`bench.lifecycle` writes them), then
time requests to the pages through the ASGI app in this process (httpx's
``ASGITransport``: the handler, its store reads and the template, no network):

* ``/runs``: the ordered view, one section per status (six indexed reads);
* ``/runs?status=completed`` and its second page (a cursor);
* ``/runs?status=failed&chart=refund&age=1h``: filters;
* ``/runs?q=<run id>``: an exact look-up, answered by a redirect;
* ``/runs?q=<words>``: a question search, which reads at most 2,000 waiting pauses.

Each figure is the median and the slowest of ``repeat`` requests after one
warm-up, in ms. ``--quick`` loads 2,400 runs. The machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from pausepoint import Runs, open_store
from pausepoint.server import create_app

from .lifecycle import Sizes, analyze, load, timed
from .servers import POSTGRES, SQLITE, down, places

FULL = Sizes(completed=80_000, others=20_000, repeat=30)
QUICK = Sizes(completed=2_000, others=400, repeat=5)


@dataclass
class Report:
    store: str
    loaded: int = 0
    pages: dict[str, tuple[float, float]] = field(default_factory=dict)


async def measure(kind: str, sizes: Sizes) -> Report:
    report = Report(kind, sizes.completed + sizes.others)
    with places("runs_page") as where:
        url = where.sqlite_url("runs") if kind == SQLITE else where.postgres_url()
        store = open_store(url)
        async with Runs(store, {}) as runs:
            await load(store, kind, sizes)
            if kind == POSTGRES:
                analyze(where.schema)
            app = create_app(runs, {}, session_secret="bench", metrics=False, public_read=True)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                first = (await client.get("/runs", params={"status": "completed"})).text
                cursor = re.search(r"cursor=([^\"&]+)", first)
                assert cursor is not None, "the completed view has a second page"
                run_id = f"run-{sizes.completed + 2:08d}"
                paths = {
                    "/runs (every status, in order)": "/runs",
                    "/runs?status=completed": "/runs?status=completed",
                    "/runs?status=completed, page 2": f"/runs?status=completed&cursor={cursor[1]}",
                    "/runs?status=failed&chart=refund&age=1h": "/runs?status=failed&chart=refund&age=1h",
                    "/runs?q=<run id> (redirect)": f"/runs?q={run_id}",
                    "/runs?q=<question words> (scan)": "/runs?q=Approve+ORD-0000",
                }
                for label, path in paths.items():

                    async def get(path: str = path) -> None:
                        response = await client.get(path)
                        assert response.status_code in (200, 303), (path, response.status_code)

                    report.pages[label] = await timed(get, sizes.repeat)
    return report


def render(reports: Sequence[Report]) -> str:
    lines = []
    for report in reports:
        lines.append(f"== {report.store}: {report.loaded:,} runs")
        for label, (median, slowest) in report.pages.items():
            lines.append(f"  {label:<44} {median:7.1f} ms median, {slowest:7.1f} ms slowest")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runs_page", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,400 runs instead of 100,000")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    reports = []
    for kind in args.stores.split(","):
        why = down(kind)
        if why:
            print(f"{kind}: {why}")
            continue
        reports.append(asyncio.run(measure(kind, sizes)))
    print(render(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
