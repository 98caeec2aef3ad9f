"""DAG building at TCGA scale: a dry run of ~11,000 placeholder slides across six sites under the SLURM profile.

Prints, from one dry run: the wall and CPU time to parse the workflow, to build the DAG (up to Snakemake's job
table), and to plan and print every job; the number of jobs; and the number of SLURM submissions the profile's
groups make of them.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "workflow"))
from snakemake_cli import SLURM_ENV, SLURM_PROFILE, SNAKEFILE, TCGA_CONFIG, placeholder_tcga_config  # noqa: E402

# Relative sizes of the paper's six sites in TCGA (diagnostic slides: BRCA 1133, LUAD+LUSC 1053, KIRC+KIRP+KICH
# 940, GBM+LGG 1703, COAD+READ 620, BLCA 457), scaled up to all of TCGA's ~11,000 diagnostic slides.
SLIDES_PER_SITE = {"BRCA": 1133, "NSCLC": 1053, "RCC": 940, "GBMLGG": 1703, "COADREAD": 620, "BLCA": 457}
TOTAL_SLIDES = 11_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slides", type=int, default=TOTAL_SLIDES, help="placeholder slides in all sites")
    scale = parser.parse_args().slides / sum(SLIDES_PER_SITE.values())
    counts = {site: round(count * scale) for site, count in SLIDES_PER_SITE.items()}
    with tempfile.TemporaryDirectory() as tmp:
        placeholders = placeholder_tcga_config(Path(tmp) / "inputs", counts)
        command = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(SNAKEFILE),
            "--directory",
            f"{tmp}/run",
        ]
        command += ["--workflow-profile", "none", "--profile", str(SLURM_PROFILE), "--dry-run"]
        command += ["--configfile", str(TCGA_CONFIG), str(placeholders)]
        output, marks = timed_run(command, markers=("Building DAG of jobs", "Job stats:"))
    (parse, parse_cpu), (dag, dag_cpu), (total, total_cpu) = (
        marks["Building DAG of jobs"],
        marks["Job stats:"],
        marks["end"],
    )

    stats = job_stats(output)
    groups = Counter(re.findall(r"Group job (\S+) ", output))
    submissions = sum(groups.values()) + stats["total"] - sum(stats[rule] for rule in groups)
    print(
        f"slides: {sum(counts.values())} in {len(counts)} sites ({', '.join(f'{s} {n}' for s, n in counts.items())})"
    )
    print(
        f"jobs: {stats['total']} ({', '.join(f'{rule} {n}' for rule, n in stats.items() if rule != 'total')})"
    )
    print(
        f"parse: {parse:.1f} s wall, {parse_cpu:.1f} s CPU; DAG: {dag - parse:.1f} s wall, "
        f"{dag_cpu - parse_cpu:.1f} s CPU; plan + print jobs: {total - dag:.1f} s wall, {total_cpu - dag_cpu:.1f} s CPU "
        f"(the wall time depends on what else runs on these {os.cpu_count()} cores; CPU time does not)"
    )
    print(
        f"SLURM submissions: at most {submissions} ({', '.join(f'{g} {n} groups' for g, n in groups.items())}; "
        f"local rules such as `all` are not submitted): {stats['total'] / max(submissions, 1):.0f} jobs per submission"
    )


def timed_run(command, markers):
    """Run `command`; for the first output line containing each marker, and for the end, note the wall seconds
    since the start and the CPU seconds the process had used by then."""
    started = time.perf_counter()
    marks, lines = {}, []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **SLURM_ENV}
    ) as process:
        for line in process.stdout:
            lines.append(line)
            for marker in markers:
                if marker in line and marker not in marks:
                    marks[marker] = (time.perf_counter() - started, cpu_seconds(process.pid))
        last_cpu = cpu_seconds(process.pid)
    end = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit("".join(lines[-40:]))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    marks["end"] = (end, max(last_cpu, usage.ru_utime + usage.ru_stime))
    return "".join(lines), marks


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc; fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job_stats(output: str) -> Counter:
    """The first 'Job stats' table of a Snakemake run: {rule: count, 'total': n}."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)$", table, re.M)})


if __name__ == "__main__":
    main()
