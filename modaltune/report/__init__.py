"""Result tables laid out like the paper's Table 2: a block per task, a row per experiment, a column per site."""

from modaltune.report.tables import (
    TASK_METRICS,
    collect_baselines,
    collect_probes,
    results_table,
    write_tables,
)

__all__ = ["TASK_METRICS", "collect_baselines", "collect_probes", "results_table", "write_tables"]
