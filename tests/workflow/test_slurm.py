"""The demo's tiling runs on a real single-node SLURM cluster through the shipped SLURM profile.

tests/slurm/start_cluster.sh installs slurm-wlm and munge when missing (root + apt-get), writes slurm.conf for this
host and starts the daemons, with their files in a temporary folder: the machine's munge key is never touched
(a private munged and key), and its /etc/slurm/slurm.conf, which srun inside a job must read, is saved and put
back when the cluster stops; the test checks that both are as it found them. The test is skipped only when SLURM cannot be
installed here (set MODALTUNE_REQUIRE_SLURM=1, as .ci/run does, to make that a failure; `make test` ends with a
loud note when it was skipped). Evidence that the jobs ran under SLURM comes
from SLURM itself: its job-completion records (jobcomp/filetxt) and the job logs it wrote as <jobid>.log.
"""

import os
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from snakemake_cli import REPO, SLURM_ENV, SLURM_PROFILE, snakemake

import modaltune.config
from modaltune.synth import demo_site_inputs

pytestmark = pytest.mark.slurm

CLUSTER_SCRIPTS = REPO / "tests" / "slurm"
CANNOT_INSTALL = 3  # start_cluster.sh's exit status when SLURM cannot be installed on this machine
# The machine's own SLURM configuration and munge key: the test cluster must leave them as it found them.
MACHINE_FILES = [Path("/etc/slurm/slurm.conf"), Path("/etc/munge/munge.key")]


def machine_files() -> dict[Path, bytes | None]:
    return {path: path.read_bytes() if path.is_file() else None for path in MACHINE_FILES}


@pytest.fixture(scope="module")
def slurm_partition(tmp_path_factory):
    """Start the cluster for this module, stop its daemons afterwards; yields (state folder, environment of the
    cluster's commands, partition name)."""
    state = tmp_path_factory.mktemp("slurm")
    before = machine_files()
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / "start_cluster.sh"), str(state)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode == CANNOT_INSTALL:
        reason = result.stderr.strip().splitlines()[-1]
        if os.environ.get("MODALTUNE_REQUIRE_SLURM") == "1":
            pytest.fail(f"MODALTUNE_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    try:
        assert result.returncode == 0, f"start_cluster.sh failed:\n{result.stderr[-4000:]}"
        print(f"\nSLURM install + start-up: {time.monotonic() - started:.0f} s ({result.stderr.strip()})")
        settings = dict(re.findall(r"^(SLURM_CONF|PARTITION)=(\S+)$", result.stdout, re.M))
        yield state, {**os.environ, "SLURM_CONF": settings["SLURM_CONF"]}, settings["PARTITION"]
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPTS / "stop_cluster.sh"), str(state)], timeout=60)
        after = machine_files()
        # A key that the munge package's installation created is not ours to judge; everything else must match.
        changed = [str(path) for path, content in before.items()
                   if after[path] != content and not (content is None and path.name == "munge.key")]
        assert not changed, f"the SLURM test changed {changed}"


def completion_records(state: Path) -> dict[str, dict[str, str]]:
    """SLURM's job-completion log: {job id: {field: value}}."""
    records = {}
    for line in (state / "jobcomp.txt").read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        records[fields["JobId"]] = fields
    return records


def test_demo_tiling_runs_as_slurm_jobs(slurm_partition, tmp_path):
    state, cluster_env, partition = slurm_partition
    demo = modaltune.config.load([REPO / "config" / "demo.yaml"])["demo"]
    slides = demo_site_inputs(demo, root="results/demo")["NSCLC"]["slide_ids"][:2]
    targets = [f"results/tiles/{slide}.parquet" for slide in slides]
    node_cpus = int(
        subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, env=cluster_env).stdout.split()[0]
    )

    env = {**SLURM_ENV, "SLURM_CONF": cluster_env["SLURM_CONF"], "MODALTUNE_SLURM_PARTITION": partition}
    run = snakemake(
        tmp_path,
        *targets,
        "--profile", SLURM_PROFILE,
        "--cores", str(min(2, node_cpus)),  # the profile's per-job CPU cap, lowered to fit this node
        "--slurm-status-command", "squeue",  # no accounting database: sacct cannot answer
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        env=env,
    )  # fmt: skip

    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", run.stdout + run.stderr))
    assert submitted, "Snakemake submitted nothing to SLURM"
    records = completion_records(state)
    job_logs = {}
    for job_id, log in submitted.items():
        record = records.get(job_id)
        assert record, f"SLURM has no completion record of job {job_id}"
        assert record["JobState"] == "COMPLETED" and record["Partition"] == partition, record
        assert Path(record["WorkDir"]).resolve() == tmp_path.resolve(), record
        assert Path(log).name == f"{job_id}.log", "SLURM names each job's log after its job id (%j)"
        job_logs[job_id] = Path(log).read_text()

    # The two tile jobs form one `tile` group: one SLURM job runs both slides.
    tiling_jobs = [job_id for job_id, text in job_logs.items() if all(target in text for target in targets)]
    assert len(tiling_jobs) == 1, f"expected both slides tiled in one SLURM job, logs: {sorted(job_logs)}"
    # The synthetic inputs were made by another SLURM job, not by the driver.
    assert any(
        "rule demo_site_NSCLC" in text for job_id, text in job_logs.items() if job_id not in tiling_jobs
    )

    tables = [pd.read_parquet(tmp_path / target) for target in targets]
    assert all({"x", "y", "tissue"} <= set(table.columns) for table in tables)
    assert sum(len(table) for table in tables) > 0, "no tissue tile found on either demo slide"
