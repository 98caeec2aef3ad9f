"""The synthetic TCGA-like demo cohort, in the real file formats, with planted and documented signal.

Sites (``modaltune.synth.cohort.SITE_SPECS``): NSCLC = TCGA-LUAD + TCGA-LUSC (2 subtypes) and RCC = TCGA-KIRC +
TCGA-KIRP + TCGA-KICH (3 subtypes), each with a few "rare set" diagnoses (NSCLC: Basaloid squamous cell carcinoma,
Large cell neuroendocrine carcinoma; RCC: Collecting duct carcinoma). Everything derives from ``demo.seed``:
same config, same bytes.

Files per site under ``{root}/{site}/`` (``root`` = ``results/demo`` in the workflow):

- ``clinical.tsv``: GDC classic export layout (41 of its columns, original order), ``'--`` for missing, one row
  per treatment (1-3 rows per case; on some extra rows of dead cases ``days_to_death`` is ``'--``, so survival must
  be collapsed per case), AJCC 7th-edition strings (``Stage IIA``, ``T2a``, ``N0``, ``NX``, ``M1a``, ``MX``), a few
  cases with stage/T/N/M all missing, ``days_to_birth`` negative, ``vital_status`` Alive/Dead.
- ``HiSeqV2.tsv``: Xena HiSeqV2 layout: header ``sample`` + 15-character sample ids, one gene per row,
  log2(norm_count+1) as ``%.4f``; ``-01`` tumour samples, ``-11`` normals for some patients (shuffled column
  order), no tumour sample for a few patients; the pathway genes plus 20 genes outside every pathway.
- ``slides/{patient}-01Z-00-DX{n}.{UUID}.svs``: Aperio-style pyramidal BigTIFFs (see :mod:`.slides`), 1 or 2 per
  patient, level 0 at 0.25 um/px (AppMag 40) or for some 0.5 um/px (AppMag 20); one pen-marked slide, one glass-only
  slide and one truncated file per site (the latter two always a patient's second slide); every slide has its true
  tissue mask beside it (``{slide}.mask.png``, at the lowest pyramid level's size, 255 = tissue).
- ``truth.tsv``: what real data would not say (subtype group, true stage group, log hazard and its planted terms,
  the part of it each modality carries, planted latents). Only the validation report reads it.

``{root}/pathways.csv``: SurvPath-style composition (first column ``gene``, then 60 binary pathway columns: ten
Reactome/PID-style names and the 50 Hallmarks), synthetic gene symbols ``SYN0001``...

Planted signal (so that a multimodal model can beat either modality alone):

- Subtype -> slides: each subtype has its own stain colours, nuclei density and size and fraction of clear
  space (``slides.APPEARANCE``: e.g. LUSC dense, dark, eosinophilic; KIRC pale with many clear cells; KIRP
  purple and crowded); rare-set diagnoses share a neutral appearance.
- Subtype -> expression: a few pathways shift by about one standard deviation per subtype
  (``Subtype.pathway_shift``: LUSC up MYC_TARGETS_V1 and GLYCOLYSIS, LUAD up XENOBIOTIC_METABOLISM; KIRC up HYPOXIA
  and ANGIOGENESIS, KIRP up KRAS_SIGNALING_UP, KICH up OXIDATIVE_PHOSPHORYLATION and PEROXISOME).
- Hazard (exponential survival, baseline median 1800 days, uniform censoring 60-3650 days): log hazard =
  0.9 x (stage group - 2.5) + 0.9 E2F_TARGETS + 0.6 G2M_CHECKPOINT - 0.75 INTERFERON_GAMMA_RESPONSE + a small
  subtype term (KIRP -0.3, KICH -0.8, LUSC +0.1). The hazard pathways are independent of subtype, so only
  expression reveals them; stage also shows on the slides (nuclei denser and larger with stage, ``severity``),
  including for patients whose recorded stage is missing.

Each pathway gene's expression = gene baseline + spread x (loading x mean activity of its pathways + noise), so
a pathway's mean z-scored expression tracks its latent activity.
"""

from modaltune.synth.cohort import SITE_SPECS, demo_pathways_file, demo_site_inputs, plan_site
from modaltune.synth.slides import APPEARANCE, SLIDE_KINDS, mask_path_of, write_slide

__all__ = [
    "APPEARANCE",
    "SITE_SPECS",
    "SLIDE_KINDS",
    "demo_pathways_file",
    "demo_site_inputs",
    "mask_path_of",
    "plan_site",
    "write_slide",
]
