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
