"""The charts module of the notification CLI tests (``--charts notifications.cli_charts``)."""

from notifications.charts import approval

charts = {"plain": approval()}
