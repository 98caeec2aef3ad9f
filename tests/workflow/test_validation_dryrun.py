"""config/validation.yaml plans the validation report, and only that rule reads the generator's truth tables."""

import re
from pathlib import Path

from snakemake_cli import planned_jobs, snakemake

REPO = Path(__file__).resolve().parents[2]
_JOB = re.compile(r"^\s*(?:local)?rule (\S+):$")
_INPUT = re.compile(r"^\s+input: (.*)$")


def job_inputs(dry_run_output: str) -> dict[str, set[str]]:
    """{rule: every input file of its planned jobs}, from `snakemake -n` output."""
    inputs, rule = {}, None
    for line in dry_run_output.splitlines():
        if start := _JOB.match(line):
            rule = start.group(1)
        elif rule is not None and (found := _INPUT.match(line)):
            inputs.setdefault(rule, set()).update(found.group(1).split(", "))
    return inputs


def test_validation_config_plans_the_report_and_only_it_reads_the_truth(tmp_path):
    output = snakemake(tmp_path, "--dry-run", "all", "--configfile", REPO / "config" / "demo.yaml",
                      REPO / "config" / "validation.yaml").stdout
    jobs = planned_jobs(output)
    report = [job for job in jobs if job.rule == "validation_report"]
    assert len(report) == 1
    assert set(report[0].outputs) == {"results/tables/validation.md", "results/tables/validation.csv"}
    readers = {rule for rule, files in job_inputs(output).items() if any(f.endswith("truth.tsv") for f in files)}
    assert readers == {"validation_report"}
    # the larger cohort: every patient's slides are planned
    tiled = [path for job in jobs if job.rule.startswith("tile") for path in job.outputs if path.endswith(".parquet")]
    assert len(tiled) > 500


def test_demo_config_has_no_validation_report(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "--dry-run", "all").stdout)
    assert "validation_report" not in {job.rule for job in jobs}
