"""Why this risk? Integrated-gradient pathway attributions and attention maps of one patient (paper Fig. 3).

``risk`` (the survival probe's risk as a differentiable function of the scaled genes), ``attributions`` (captum
integrated gradients per pathway), ``attention`` (the three attention maps, recorded with hooks from the real
forward pass), ``heatmaps`` (tiles back on their slides, thumbnails), ``figure`` (the patient's figure) and ``run``
(one experiment, site and seed). Importing this package does not import torch.
"""
