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
