"""``python -m pausepoint.cli``."""

from pausepoint.cli import main

main()
