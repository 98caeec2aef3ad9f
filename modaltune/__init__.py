"""modaltune: the ModalTune method (ICCV 2025) from raw slides, transcriptomics and clinical tables."""

__version__ = "0.1.0"
