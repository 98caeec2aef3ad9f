"""Where a finished workflow run spent its time: jobs, wall and CPU seconds per rule.

    python benchmarks/demo_profile.py [RUN_DIR]      # default: the current directory (after `make demo`)

Reads the run's Snakemake log (RUN_DIR/.snakemake/log/: the latest one in which a job finished, unless --log names
another) for each job's rule, start and finish (second resolution), and each job's own log for the CPU line
`modaltune` writes at exit (user+sys seconds of the job's process, including the interpreter start-up and imports).
Batch rules (`tile_batch3`) are summed under one name (`tile_batch`). Every job is one process start-up, so `jobs`
counts them.

On a shared machine, wall seconds grow with the other load; CPU seconds do not, and are the figure to compare.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
FINISH = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")
# modaltune.cli.USAGE_LINE, written as the last line of every command's log
USAGE = re.compile(r"modaltune \S+: ([\d.]+) s wall, ([\d.]+) s CPU")


@dataclass
class Job:
    rule: str
    start: datetime
    log: str | None = None
    finish: datetime | None = None
    cpu: float | None = None
    threads: int = 1
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def wall(self) -> float:
        return (self.finish - self.start).total_seconds()


def parse_snakemake_log(path: Path) -> dict[int, Job]:
    """Jobs by id with rule, start, finish and log path, from Snakemake's own log of a run."""
    jobs: dict[int, Job] = {}
    stamp, pending = None, None
    for line in path.read_text().splitlines():
        line = line.rstrip()
        if match := STAMP.match(line):
            stamp = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif match := START.match(line):
            pending = Job(match.group(1), stamp)
        elif pending and (match := re.match(r"^\s+log: (\S+)", line)):
            pending.log = match.group(1).rstrip(",")
        elif pending and (match := re.match(r"^\s+(input|output): (.*)$", line)):
            setattr(pending, match.group(1) + "s", tuple(path.strip() for path in match.group(2).split(", ")))
        elif pending and (match := re.match(r"^\s+threads: (\d+)", line)):
            pending.threads = int(match.group(1))
        elif pending and (match := re.match(r"^\s+jobid: (\d+)", line)):
            jobs[int(match.group(1))] = pending
        elif match := FINISH.match(line):
            job = jobs.get(int(match.group(1)))
            if job is not None:
                job.finish = stamp
    return jobs


def job_cpu(run_dir: Path, log: str | None) -> float | None:
    """The CPU seconds of the job's last `modaltune` command, from its log; None without such a line."""
    if log is None or not (run_dir / log).is_file():
        return None
    found = USAGE.findall((run_dir / log).read_text(errors="replace"))
    return float(found[-1][1]) if found else None


def finished_jobs(run_dir: Path, log_path: Path) -> list[Job]:
    jobs = [job for job in parse_snakemake_log(log_path).values() if job.finish is not None]
    for job in jobs:
        job.cpu = job_cpu(run_dir, job.log)
    return jobs


def breakdown(jobs: list[Job]) -> list[dict]:
    rows: dict[str, dict] = {}
    for job in jobs:
        name = re.sub(r"\d+$", "", job.rule) if re.search(r"_batch\d+$", job.rule) else job.rule
        row = rows.setdefault(name, {"rule": name, "jobs": 0, "wall": 0.0, "cpu": 0.0, "cpu_jobs": 0,
                                     "first": job.start, "last": job.finish})
        row["jobs"] += 1
        row["wall"] += job.wall
        row["first"], row["last"] = min(row["first"], job.start), max(row["last"], job.finish)
        if job.cpu is not None:
            row["cpu"] += job.cpu
            row["cpu_jobs"] += 1
    return sorted(rows.values(), key=lambda row: -row["wall"])


def replay(jobs: list[Job], cores: int) -> float:
    """Seconds the run would take on `cores` otherwise idle cores if each job took its CPU seconds: jobs start in the
    run's order once their inputs exist and enough cores are free (a lower bound: no Snakemake overhead, no I/O)."""
    producer = {path: index for index, job in enumerate(jobs) for path in job.outputs}
    needs = [{producer[path] for path in job.inputs if path in producer} for job in jobs]
    done: dict[int, float] = {}
    running: list[tuple[float, int]] = []  # (end, job index)
    now, free, waiting = 0.0, cores, sorted(range(len(jobs)), key=lambda index: jobs[index].start)
    while waiting or running:
        ready = [i for i in waiting if needs[i] <= done.keys() and min(jobs[i].threads, cores) <= free]
        if ready:
            index = ready[0]
            waiting.remove(index)
            free -= min(jobs[index].threads, cores)
            running.append((now + (jobs[index].cpu or 0.0), index))
            continue
        end, index = min(running)
        running.remove((end, index))
        now, done[index] = end, end
        free += min(jobs[index].threads, cores)
    return now


def render(rows: list[dict], log_path: Path) -> str:
    begin = min(row["first"] for row in rows)
    lines = [f"Snakemake log: {log_path}",
             f"{'rule':<26}{'jobs':>6}{'wall s':>9}{'wall/job':>10}{'CPU s':>9}{'CPU/job':>9}{'from s':>8}{'to s':>7}"]
    for row in rows:
        cpu = f"{row['cpu']:9.1f}{row['cpu'] / row['cpu_jobs']:9.2f}" if row["cpu_jobs"] else f"{'n/a':>9}{'n/a':>9}"
        lines.append(f"{row['rule']:<26}{row['jobs']:>6}{row['wall']:9.0f}{row['wall'] / row['jobs']:10.1f}{cpu}"
                     f"{(row['first'] - begin).total_seconds():8.0f}{(row['last'] - begin).total_seconds():7.0f}")
    end = max(row["last"] for row in rows)
    jobs = sum(row["jobs"] for row in rows)
    cpu_jobs = sum(row["cpu_jobs"] for row in rows)
    lines.append(f"{'total':<26}{jobs:>6}{sum(row['wall'] for row in rows):9.0f}{'':>10}"
                 f"{sum(row['cpu'] for row in rows):9.1f}")
    lines.append(f"run wall {(end - begin).total_seconds():.0f} s (first job start to last job end); {jobs} jobs = "
                 f"{jobs} process start-ups; CPU known for {cpu_jobs} (user+sys, imports included)")
    return "\n".join(lines)


def latest_log(run_dir: Path) -> Path:
    """The newest Snakemake log of `run_dir` in which a job finished (dry runs and reports leave logs too)."""
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True)
    for log in logs:
        if "Finished jobid:" in log.read_text(errors="replace"):
            return log
    raise SystemExit(f"{run_dir}: no .snakemake/log/*.snakemake.log with a finished job; give the folder a "
                     "workflow ran in")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=".", type=Path, help="folder the workflow ran in")
    parser.add_argument("--log", type=Path, help="a Snakemake log of that run (default: the latest)")
    parser.add_argument("--cores", type=int, default=2, help="cores of the replay estimate (default 2, as `make demo`)")
    args = parser.parse_args(argv)
    if args.log is None and not (args.run_dir / ".snakemake" / "log").is_dir() and args.run_dir == Path("."):
        print("demo_profile: no workflow run in this folder yet; run `make demo`, then this script")  # `make bench`
        return 0
    log_path = args.log or latest_log(args.run_dir)
    jobs = finished_jobs(args.run_dir, log_path)
    if not jobs:
        raise SystemExit(f"{log_path}: no finished job")
    print(render(breakdown(jobs), log_path))
    print(f"replayed on {args.cores} idle cores, each job taking its CPU seconds: {replay(jobs, args.cores):.0f} s "
          "(a lower bound: without Snakemake's own time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
