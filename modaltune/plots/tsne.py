"""t-SNE of patient embeddings together with their (projected) text embeddings."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from modaltune.io import atomic_path

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def plot_tsne(points: pd.DataFrame, path: str | os.PathLike, title: str, seed: int = 0) -> np.ndarray:
    """Embed ``points`` in 2-D and draw them: colour by subtype, marker by site, text points hollow.

    ``points`` has columns embedding, subtype, site and source ("patient" or "text"); returns the 2-D coordinates.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    vectors = np.stack([np.asarray(e, dtype=np.float64) for e in points["embedding"]])
    perplexity = float(min(30.0, max(2.0, (len(vectors) - 1) / 3)))
    coords = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(vectors)

    subtypes = sorted(points["subtype"].astype(str).unique())
    sites = sorted(points["site"].astype(str).unique())
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for (subtype, site, source), rows in points.groupby(["subtype", "site", "source"]).groups.items():
        index = np.asarray([points.index.get_loc(r) for r in rows])
        colour = colours(subtypes.index(str(subtype)) % 10)
        ax.scatter(
            coords[index, 0], coords[index, 1], s=18 if source == "patient" else 40,
            marker=MARKERS[sites.index(str(site)) % len(MARKERS)],
            facecolors=colour if source == "patient" else "none", edgecolors=colour,
            label=f"{site} {subtype or '(none)'} {source}",
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, loc="best", frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return coords
