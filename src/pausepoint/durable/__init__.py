"""Durable runs: charts run over a store, resumed exactly once, from any process.

:class:`~pausepoint.durable.runs.Runs` is the entry point: it validates an
answer (an :class:`~pausepoint.durable.answer.Answer`), claims the run in one
compare-and-set on the store, and hands it to its
:class:`~pausepoint.durable._driver.RunDriver`, which runs the engine's executor
inside the run's :class:`~pausepoint.durable._claim.Claim` (a lease renewed by
its own thread) and writes the journal (:mod:`~pausepoint.durable._journal`)
and the outcome. Around it: who may answer (:mod:`~pausepoint.durable.people`),
changed charts (:mod:`~pausepoint.durable.compat`), the lifecycle and batches,
encryption at rest (:mod:`~pausepoint.durable._seal`) and notifications.

The stores it runs over are in :mod:`pausepoint.stores`; the values ``Runs``
takes and returns in :mod:`~pausepoint.durable.records`. The public names are
re-exported by :mod:`pausepoint`.
"""
