"""pausepoint benchmarks: ``python -m bench`` (full) or ``python -m bench --quick`` (CI smoke).

Every scenario is measured for three contenders in the same process run:

- plain Python, the floor: the same logic as function calls over a dict, with
  ``json.dumps`` / ``json.loads`` of the dict standing in for a checkpoint;
- pausepoint;
- LangGraph (``StateGraph`` + ``interrupt()`` + ``Command(resume=...)`` +
  ``InMemorySaver``), when installed (``pip install 'pausepoint[bench]'``).

Modules: :mod:`bench.harness` times things, :mod:`bench.scenarios` holds what
the contenders share, :mod:`bench.plain`, :mod:`bench.pp` and :mod:`bench.lg`
build each contender's cases, :mod:`bench.overhead` measures import time and
the thread hop, :mod:`bench.__main__` runs it all and prints the table;
``python -m bench.profiling`` shows where pausepoint spends its time (cProfile).
"""
