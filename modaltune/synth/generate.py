"""Write a whole demo site: tables, slides and masks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from modaltune.synth.cohort import plan_site
from modaltune.synth.tables import write_site_tables

log = logging.getLogger(__name__)


def build_site(site: str, demo: dict[str, Any], tables: dict[str, str], slide_files: list[str]) -> None:
    """Write the site's tables (``tables``: clinical, rna, truth paths) and its slides with their masks.

    ``slide_files`` are the planned slides' paths in plan order (as ``demo_site_inputs`` lists them).
    """
    plan = plan_site(site, demo)
    planned = [slide.slide_id for slide in plan.slides]
    given = [Path(path).stem for path in slide_files]
    if given != planned:
        raise ValueError(
            f"the slide files given for demo site {site} ({len(given)}) are not the {len(planned)} planned from "
            "the `demo` config; list them with modaltune.synth.demo_site_inputs using the same config"
        )
    write_site_tables(plan, demo, tables)
    log.info(
        "%s: %d patients, tables written to %s", site, len(plan.patients), Path(tables["clinical"]).parent
    )
    for slide, path in zip(tqdm(plan.slides, desc=f"{site} slides", unit="slide"), slide_files, strict=True):
        slide.write(path)
