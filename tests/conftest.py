from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The public TCGA-derived tables in ../shared/data/real (never copied into the project)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real TCGA tables not found at {REAL_DATA} (shared/ folder absent beside the project)")
    return REAL_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: a second OpenMP thread only adds synchronisation (dozens of times slower on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter):
    """Say loudly, at the very end, that the real-SLURM test was skipped: a green run without it has not shown
    that the workflow runs under SLURM."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if "slurm" in report.keywords]
    if not skipped:
        return
    longrepr = skipped[0].longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    terminalreporter.section("REAL-SLURM TEST SKIPPED", sep="!", red=True, bold=True)
    terminalreporter.line(
        f"The workflow was NOT tested on a real SLURM cluster ({reason}). Run `make test-slurm` as root on a "
        "Debian/Ubuntu machine, or set MODALTUNE_REQUIRE_SLURM=1 to make this a failure.",
        red=True,
        bold=True,
    )
