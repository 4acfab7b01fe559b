"""The engine: build a chart, run it, pause, resume. No I/O.

A chart is built with :mod:`~pausepoint.engine.builder` into an immutable
:class:`~pausepoint.engine.chart.FlowChart`. :class:`~pausepoint.engine.executor.FlowChartExecutor`
runs it: per run (or resume) it makes one :class:`~pausepoint.engine._run.ChartRun`
holding the state, the execution tree, the pending pauses and the continuation,
walks the chart with :class:`~pausepoint.engine._traversal.Traversal` and calls
each stage through :class:`~pausepoint.engine._stages.StageRunner`. A pause ends
the walk with a JSON checkpoint (:mod:`~pausepoint.engine.checkpoint`, whose
continuation frames are typed in :mod:`~pausepoint.engine._frames`); a resume
validates it once and walks on from where it stopped.

Nothing here reads a clock for scheduling, opens a file or a socket: durable
runs, stores and the edges build on it (see ``docs/architecture.md``). The
public names are re-exported by :mod:`pausepoint`.
"""
