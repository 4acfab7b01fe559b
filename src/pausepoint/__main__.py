"""``python -m pausepoint``: the ``pausepoint`` command."""

from pausepoint.cli import main

main()
