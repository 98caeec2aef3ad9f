"""t-SNE of patient embeddings together with their (projected) text embeddings."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from modaltune.io import atomic_path

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def joint_points(embeddings: list[pd.DataFrame], cohort: pd.DataFrame, text: list[pd.DataFrame] | None = None,
                 projector_dim: int | None = None, seed: int = 0, task: str = "general") -> pd.DataFrame:
    """The points of a t-SNE figure: patients' ``task`` embeddings, optionally with their projected text.

    ``embeddings``: frames of results/embeddings (patient, task, embedding); ``cohort``: patient, site, subtype;
    ``text``: frames of results/text/{site}_seed{seed}_{encoder}.parquet (before the projector), projected here by
    the training run's fixed random projector (``projector_dim``, ``seed``). With text, every vector is
    L2-normalised: the training objective compares the normalised model output with the unit-norm text target,
    so that is the space where both meet. Returns columns patient, site, subtype, source ("patient"/"text"),
    embedding.
    """
    patients = pd.concat([e.loc[e["task"] == task, ["patient", "embedding"]] for e in embeddings])
    if patients.empty:
        raise ValueError(f"no '{task}' embeddings to draw")
    frames = [patients.assign(source="patient")]
    if text:
        import torch

        width = len(patients["embedding"].iloc[0])
        if width != projector_dim:
            raise ValueError(f"patient embeddings have {width} dimensions, the projected text {projector_dim}: "
                             "only models trained on the text share its space")

        from modaltune.text.projector import RandomProjector

        rows = pd.concat([t.loc[t["task"] == task, ["patient", "embedding"]] for t in text])
        rows = rows[rows["patient"].isin(set(patients["patient"]))]
        raw = torch.tensor(np.stack([np.asarray(e, dtype=np.float32) for e in rows["embedding"]]))
        projected = RandomProjector(raw.shape[1], projector_dim, seed=seed)(raw).numpy()
        frames.append(pd.DataFrame({"patient": rows["patient"].to_numpy(), "source": "text",
                                    "embedding": list(projected.astype(np.float64))}))
    points = pd.concat(frames, ignore_index=True)
    if text:
        vectors = np.stack([np.asarray(e, dtype=np.float64) for e in points["embedding"]])
        points["embedding"] = list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12))
    points = points.merge(cohort[["patient", "site", "subtype"]], on="patient", how="inner")
    return points.reset_index(drop=True)


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
