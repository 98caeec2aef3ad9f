"""benchmarks/demo_profile.py: per-rule jobs, wall and CPU seconds of a finished run, from Snakemake's log and the
CPU line every `modaltune` command writes at the end of its job log."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from modaltune.cli import USAGE_LINE, main

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("demo_profile", REPO / "benchmarks" / "demo_profile.py")
demo_profile = importlib.util.module_from_spec(SPEC)
sys.modules["demo_profile"] = demo_profile  # its dataclass looks its module up there
SPEC.loader.exec_module(demo_profile)

SNAKEMAKE_LOG = """\
Building DAG of jobs...

[Tue Dec  1 15:09:39 2026]
localrule tile_batch0:
    input: a.svs
    output: results/tiles/a.parquet
    log: results/logs/tile/batch0.log
    jobid: 3
    reason: Missing output files
Select jobs to execute...

[Tue Dec  1 15:09:40 2026]
rule tile_batch1:
    output: results/tiles/b.parquet
    log: results/logs/tile/batch1.log
    jobid: 4

[Tue Dec  1 15:09:46 2026]
Finished jobid: 3 (Rule: tile_batch0)
1 of 3 steps (33%) done

[Tue Dec  1 15:09:50 2026]
Finished jobid: 4 (Rule: tile_batch1)

[Tue Dec  1 15:09:50 2026]
rule report:
    input: results/tiles/a.parquet
    output: results/report.txt
    log: results/logs/report.log
    jobid: 5

[Tue Dec  1 15:09:51 2026]
Finished jobid: 5 (Rule: report)

[Tue Dec  1 15:09:51 2026]
localrule all:
    input: results/tiles/b.parquet, results/report.txt
    jobid: 0

[Tue Dec  1 15:09:52 2026]
Finished jobid: 0 (Rule: all)
"""


def test_breakdown_sums_jobs_wall_and_cpu_per_rule(tmp_path):
    log = tmp_path / ".snakemake" / "log" / "2026-12-01T150939.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text(SNAKEMAKE_LOG)
    (tmp_path / "results" / "logs" / "tile").mkdir(parents=True)
    (tmp_path / "results" / "logs" / "tile" / "batch0.log").write_text(
        "slide a: ok\n2026-12-01 INFO modaltune: " + USAGE_LINE % ("tile", 6.1, 2.25) + "\n")
    (tmp_path / "results" / "logs" / "tile" / "batch1.log").write_text(USAGE_LINE % ("tile", 9.0, 1.5))
    (tmp_path / "results" / "logs" / "report.log").write_text(USAGE_LINE % ("results-table", 1.2, 1.0))
    jobs = demo_profile.finished_jobs(tmp_path, demo_profile.latest_log(tmp_path))
    rows = {row["rule"]: row for row in demo_profile.breakdown(jobs)}
    assert set(rows) == {"tile_batch", "report", "all"}
    tile = rows["tile_batch"]
    assert (tile["jobs"], tile["wall"], tile["cpu"], tile["cpu_jobs"]) == (2, 7 + 10, 3.75, 2)
    assert (rows["all"]["jobs"], rows["all"]["cpu_jobs"]) == (1, 0)  # no log, no CPU line
    text = demo_profile.render(list(rows.values()), log)
    assert "tile_batch" in text and "4 jobs = 4 process start-ups" in text
    # replay: the batches side by side, the report after the batch whose output it reads, `all` last
    assert demo_profile.replay(jobs, cores=2) == pytest.approx(2.25 + 1.0)
    assert demo_profile.replay(jobs, cores=1) == pytest.approx(2.25 + 1.5 + 1.0)


def test_every_command_ends_its_log_with_the_line_the_profile_reads(tmp_path, caplog):
    caplog.set_level("INFO")
    status = tmp_path / "s.json"
    status.write_text('{"slide": "a", "path": "a.svs", "status": "ok", "n_tiles": 3, "reason": ""}')
    assert main(["tiling-report", "--status", str(status), "--summary", str(tmp_path / "summary.tsv")]) == 0
    line = caplog.records[-1].getMessage()
    match = demo_profile.USAGE.search(line)
    assert match and float(match.group(2)) > 0, line


def test_no_run_in_the_default_folder_is_said_not_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demo_profile.main([]) == 0
    assert "no workflow run" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no .snakemake/log"):
        demo_profile.main([str(tmp_path)])


@pytest.mark.workflow
def test_the_demo_run_is_profiled_job_by_job(demo_run):
    """Every job of the session's demo run that has a log ran a `modaltune` command whose CPU line is there; the
    demo's small items run in batch jobs (few process start-ups)."""
    log = demo_profile.latest_log(demo_run)
    jobs = demo_profile.finished_jobs(demo_run, log)
    assert len(jobs) == log.read_text().count("Finished jobid:")
    unprofiled = [job.rule for job in jobs if job.log and job.cpu is None]
    assert not unprofiled
    rules = {row["rule"]: row for row in demo_profile.breakdown(jobs)}
    assert {"tile_batch", "extract_features_batch", "train_batch", "evaluate_batch"} <= set(rules)
    assert "tile" not in rules and "train" not in rules
