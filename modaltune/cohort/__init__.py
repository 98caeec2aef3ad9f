"""Clinical tables -> one harmonised patient table per site, survival labels, subtype groups, splits.

Readers (:mod:`.readers`) detect the download format from the header; :mod:`.harmonise` collapses the
records into one row per patient with documented rules, leaving out patients without a usable slide;
:mod:`.report` writes what each rule set aside and why a cohort cannot be built; :mod:`.splits` makes the
stratified 68/12/20 split (one per site, shared by every seed) or takes the paper's released split (:mod:`.release`);
:mod:`.build` ties them together for the `modaltune cohort` command.
"""

from modaltune.cohort.build import CohortError, SiteCohort, build_site_cohort
from modaltune.cohort.harmonise import COHORT_COLUMNS, harmonise
from modaltune.cohort.readers import FORMATS, ClinicalFormatError, detect_format, read_clinical
from modaltune.cohort.splits import make_splits
from modaltune.cohort.subtypes import RARE_SET_CLASS, load_subtype_table

__all__ = [
    "COHORT_COLUMNS",
    "FORMATS",
    "RARE_SET_CLASS",
    "ClinicalFormatError",
    "CohortError",
    "SiteCohort",
    "build_site_cohort",
    "detect_format",
    "harmonise",
    "load_subtype_table",
    "make_splits",
    "read_clinical",
]
