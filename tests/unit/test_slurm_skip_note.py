"""`make test` says loudly when the real-SLURM test was skipped (tests/conftest.py's terminal summary)."""

import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def run_pytest(folder: Path, test_body: str) -> str:
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "test_cluster.py").write_text(f"import pytest\n\n\n@pytest.mark.slurm\ndef test_cluster():\n{test_body}\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "ignore", str(folder)],
                            capture_output=True, text=True, timeout=120, cwd=folder)
    return result.stdout


def test_a_skipped_slurm_test_is_announced_with_its_reason(tmp_path):
    output = run_pytest(tmp_path, '    pytest.skip("cannot install SLURM: not root")')
    assert "REAL-SLURM TEST SKIPPED" in output and "cannot install SLURM: not root" in output


def test_no_note_when_the_slurm_test_ran(tmp_path):
    assert "REAL-SLURM TEST SKIPPED" not in run_pytest(tmp_path, "    pass")
