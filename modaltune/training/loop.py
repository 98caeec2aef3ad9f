"""Train one ModalTune model (one experiment, one seed) with per-epoch checkpoints, resume and model selection.

Per epoch: shuffle the training patients, one optimiser step per ``accumulate`` patients (batch size 1), the KL loss
to the projected text targets averaged over tasks; then embed the training and validation patients with the General
task (eval mode, deterministic tile cap), fit a logistic-regression probe on the training subtypes and score the
validation patients' balanced accuracy (pooled experiments: the mean over sites). The epoch with the best score
(ties go to the later epoch, as upstream) is kept.

Outputs in ``out_dir`` (results/models/{experiment}/{name}/seed{seed}/): ``model.safetensors`` (best epoch's
trainable weights, the target projector, and the frozen encoder when it has no weights file), ``config.json``
(everything needed to rebuild the model and embed patients, including the gene scaler and the clinical
encoder fitted on the training patients) and ``history.csv``; ``checkpoint/`` for resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from modaltune.cohort.clinical_encoding import ClinicalEncoder
from modaltune.devices import resolve_device
from modaltune.io import atomic_path, write_json
from modaltune.models.modaltune import ModalTune, build_modaltune
from modaltune.models.omics_encoder import pathway_gene_indices
from modaltune.omics import GeneScaler
from modaltune.text.projector import TargetSpace
from modaltune.training.checkpoint import BEST_FILE, load_checkpoint, save_checkpoint, save_tensors
from modaltune.training.data import ExperimentData, TextTargets
from modaltune.training.objective import kl_to_text, learning_rate

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"


def autocast(device: torch.device, precision: str):
    """bf16 autocast on the GPU by default; full precision on the CPU."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class Embedder:
    """Runs a model over patients: bag -> tensors on the device -> task embeddings."""

    def __init__(self, model: ModalTune, data: ExperimentData, scaled_genes: pd.DataFrame | None,
                 device: torch.device, precision: str, clinical: pd.DataFrame | None = None):
        self.model, self.data, self.device, self.precision = model, data, device, precision
        self.genes = scaled_genes
        self.clinical = clinical  # encoded clinical vectors by patient (ModalTune w/ Clinical), else None

    def forward(self, patient: str, generator: np.random.Generator | None = None,
                tasks: Sequence[str] | None = None) -> torch.Tensor:
        bag = self.data.bag(patient, generator)
        features = torch.from_numpy(bag.features).to(self.device)
        coords = torch.from_numpy(bag.coords).to(self.device)
        genes = None  # Single Modal: learned tokens in place of the genes
        if self.genes is not None:
            genes = torch.tensor(self.genes.loc[patient].to_numpy(np.float32), device=self.device)
        extra = {}
        if self.clinical is not None:
            extra["clinical"] = torch.tensor(self.clinical.loc[patient].to_numpy(np.float32), device=self.device)
        with autocast(self.device, self.precision):
            return self.model(features, coords, genes, tasks=tasks, **extra).float()

    @torch.no_grad()
    def embed(self, patients: Sequence[str], tasks: Sequence[str] | None = None, desc: str = "embed") -> np.ndarray:
        """(patients, tasks, output_dim) raw embeddings in eval mode with the deterministic tile cap."""
        self.model.eval()
        out = [self.forward(p, None, tasks).cpu().numpy() for p in tqdm(patients, desc=desc, leave=False)]
        return np.stack(out) if out else np.zeros((0, len(tasks or self.model.tasks), 0), np.float32)


def probe_balanced_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray) -> float:
    """Upstream's selection probe: LogisticRegression(liblinear, max_iter 200, random_state 0), one-vs-rest."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.multiclass import OneVsRestClassifier

    train, val = train_y >= 0, val_y >= 0
    if len(np.unique(train_y[train])) < 2 or not val.any():
        return float("nan")
    probe = OneVsRestClassifier(LogisticRegression(solver="liblinear", max_iter=200, random_state=0))
    probe.fit(train_x[train], train_y[train])
    return float(balanced_accuracy_score(val_y[val], probe.predict(val_x[val])))


def validation_scores(embedder: Embedder, data: ExperimentData) -> dict[str, float]:
    """Validation balanced accuracy per site of a probe fitted on the training patients' General embeddings."""
    table = data.patients[data.patients["split"].isin(["train", "val"])]
    general = embedder.embed(table["patient"].tolist(), tasks=["general"], desc="probe")[:, 0]
    scores = {}
    for site in table["site"].unique():
        rows = (table["site"] == site).to_numpy()
        train = rows & (table["split"] == "train").to_numpy()
        val = rows & (table["split"] == "val").to_numpy()
        labels = table["subtype_class"].to_numpy()
        scores[site] = probe_balanced_accuracy(general[train], labels[train], general[val], labels[val])
    return scores


def train_model(data: ExperimentData, text_paths: Sequence[str | Path], pathways: str | Path, *,
                model_section: Mapping[str, Any], slide_encoder_section: Mapping[str, Any],
                training: Mapping[str, Any], projector_dim: int, seed: int, out_dir: str | Path,
                stop_after_epochs: int | None = None, run_info: Mapping[str, Any] | None = None,
                baseline: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Train (or resume) one run; returns the history. ``stop_after_epochs`` ends early (an interruption).
    ``baseline``: the architecture settings of a model on a registered baseline (``model.architecture`` other than
    modaltune), the non-optimiser keys of its ``baselines.<name>`` section."""
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / CHECKPOINT_DIR
    device = resolve_device(training["device"])
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)

    train_patients = data.split_patients("train")
    tasks = tuple(model_section["tasks"])
    # Only the training patients' text is read: validation and test text never enters this process.
    targets = TextTargets(text_paths, train_patients, tasks)
    target_space = TargetSpace(model_section["projector"], targets.dim, projector_dim, seed=seed).to(device)
    scaler, scaled_genes, memberships, pathway_names, pathway_genes = None, None, None, [], []
    if data.genes is not None:  # Single Modal reads no gene table and no pathways
        scaler = GeneScaler().fit(data.genes.loc[train_patients])
        scaled_genes = scaler.transform(data.genes)
        memberships = pd.read_parquet(pathways)
        pathway_names, pathway_genes = pathway_gene_indices(
            data.gene_names, list(zip(memberships["pathway"], memberships["gene"], strict=True)))
    clinical_encoder, clinical = None, None
    if model_section["clinical"]["enabled"]:  # statistics of the training patients only, as the gene scaler
        clinical_encoder = ClinicalEncoder(model_section["clinical"]["fields"]).fit(data.clinical.loc[train_patients])
        clinical = clinical_encoder.transform(data.clinical)
    feature_dim = int(data.slides["dim"].iloc[0])
    model = build_modaltune(dict(model_section, output_dim=projector_dim), slide_encoder_section, pathway_genes,
                            len(data.gene_names), feature_dim=feature_dim, baseline=baseline,
                            clinical_features=clinical_encoder.width if clinical_encoder else 0).to(device)
    # The trainable projector and the model-side projector are optimised with the model.
    trainable = [p for p in [*model.parameters(), *target_space.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=training["lr"], betas=tuple(training["betas"]),
                                  eps=training["eps"], weight_decay=training["weight_decay"])
    embedder = Embedder(model, data, scaled_genes, device, training["precision"], clinical)

    key = run_key(data, targets, memberships, model_section, slide_encoder_section, training, projector_dim, seed,
                  baseline)
    state = load_checkpoint(checkpoint_dir, model, optimizer, key, extra={TARGET_SPACE: target_space})
    history: list[dict[str, Any]] = []
    best_epoch, best_score = -1, float("-inf")
    start = 0
    if state is not None:
        start, history = state["epoch"] + 1, state["history"]
        best_epoch, best_score = state["best_epoch"], state["best_score"]
        generator.bit_generator.state = state["numpy_rng"]
        log.info("resuming %s after epoch %d", out_dir, state["epoch"])

    epochs = training["epochs"]
    for epoch in range(start, epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return pd.DataFrame(history)
        began = time.time()
        lr = learning_rate(epoch, epochs, training["lr"], training["warmup_epochs"], training["warmup_factor"],
                           training["schedule"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _train_epoch(model, embedder, targets, target_space, optimizer, generator, train_patients, training,
                            desc=f"epoch {epoch + 1}/{epochs}")
        scores = validation_scores(embedder, data)
        valid = [s for s in scores.values() if np.isfinite(s)]
        score = float(np.mean(valid)) if valid else float("nan")
        row = {"epoch": epoch, "lr": lr, "train_loss": loss, "val_balanced_accuracy": score}
        if len(scores) > 1:
            row.update({f"val_balanced_accuracy_{site}": value for site, value in scores.items()})
        row["seconds"] = round(time.time() - began, 3)
        history.append(row)
        log.info("epoch %d: lr %.3g, train loss %.6g, validation balanced accuracy %.4f", epoch, lr, loss, score)
        if not valid:
            log.warning("epoch %d: no validation score (need 2 subtype classes in train and labelled validation "
                        "patients); the last such epoch is kept", epoch)
        if (score if valid else float("-inf")) >= best_score:
            best_epoch, best_score = epoch, (score if valid else float("-inf"))
            save_tensors(_trained_tensors(model, target_space), checkpoint_dir / BEST_FILE,
                         metadata={"epoch": str(epoch)})
        save_checkpoint(checkpoint_dir, epoch, _trained_tensors(model, target_space), optimizer, {
            "history": history, "best_epoch": best_epoch, "best_score": best_score,
            "numpy_rng": generator.bit_generator.state, "run_key": key,
        })
        _write_history(history, out_dir / "history.csv")

    _write_history(history, out_dir / "history.csv")  # also when a finished run is resumed with nothing left
    _write_final(out_dir, model, target_space, scaler, pathway_names, pathway_genes, model_section,
                 slide_encoder_section, projector_dim, targets.dim, seed, best_epoch, best_score, data, run_info,
                 feature_dim, baseline, clinical_encoder)
    return pd.DataFrame(history)


TARGET_SPACE = "target_space."  # checkpoint prefix of the loss's projectors, trained or not


def _trained_tensors(model: ModalTune, target_space: TargetSpace) -> dict[str, torch.Tensor]:
    return {**model.trainable_state_dict(), **{TARGET_SPACE + k: v for k, v in target_space.state_dict().items()}}


# Settings that change where and how fast a run goes, not its result: a checkpoint stays valid across them.
RUNTIME_KEYS = ("device", "threads", "gpus", "mem_mb", "runtime", "seeds_per_job", "experiments_per_job")


def run_key(data: ExperimentData, targets: TextTargets, memberships: pd.DataFrame, *sections_and_values) -> str:
    """SHA-256 over the settings and inputs of a run: config sections, patients and splits, genes, text targets,
    pathways and each feature file's size and modification time (regenerated features start the run afresh)."""
    digest = hashlib.sha256()
    settings = [{k: v for k, v in s.items() if k not in RUNTIME_KEYS} if isinstance(s, Mapping) else s
                for s in sections_and_values]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(pd.util.hash_pandas_object(data.patients.astype(str), index=False).to_numpy().tobytes())
    # genes and memberships do not exist for Single Modal, the clinical fields only with clinical tokens
    for table, index in ((data.genes, True), (memberships, False), (data.clinical, True)):
        if table is not None:
            digest.update(pd.util.hash_pandas_object(table, index=index).to_numpy().tobytes())
    for patient in sorted(targets.patients):
        digest.update(patient.encode() + targets[patient].numpy().tobytes())
    for slides in data.patients["slides"]:
        for slide in slides:
            stat = data.feature_path(slide).stat()
            digest.update(f"{slide}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _train_epoch(model, embedder, targets, target_space, optimizer, generator, patients, training, desc) -> float:
    model.train()
    order = generator.permutation(len(patients))
    accumulate = training["accumulate"]
    losses = []
    optimizer.zero_grad(set_to_none=True)
    progress = tqdm(order, desc=desc, leave=False)
    for step, index in enumerate(progress, start=1):
        patient = patients[index]
        outputs, target = target_space(embedder.forward(patient, generator), targets[patient].to(embedder.device))
        loss = kl_to_text(outputs, target, training["temperature"], training["loss_reduction"])
        (loss / accumulate).backward()
        if step % accumulate == 0 or step == len(order):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{np.mean(losses):.4g}")
    return float(np.mean(losses))


def _write_history(history: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def encoder_fingerprint(model: torch.nn.Module) -> str | None:
    """SHA-256 over the frozen encoder's tensors (not the trained LoRA matrices of ModalTune w/ LoRA): embedding
    later checks it rebuilt the same encoder. None for a model without a slide encoder (a baseline architecture)."""
    if model.encoder is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(model.encoder.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_final(out_dir, model, target_space, scaler, pathway_names, pathway_genes, model_section,
                 slide_encoder_section, projector_dim, text_dim, seed, best_epoch, best_score, data, run_info,
                 feature_dim, baseline, clinical_encoder):
    from safetensors.torch import load_file

    best = load_file(str(out_dir / CHECKPOINT_DIR / BEST_FILE))
    tensors = {k: v for k, v in best.items() if not k.startswith(TARGET_SPACE)}
    target_space.load_state_dict({k.removeprefix(TARGET_SPACE): v for k, v in best.items() if k.startswith(TARGET_SPACE)})
    tensors.update(target_space.saved_tensors())  # the best epoch's projectors
    if model.encoder is not None and slide_encoder_section.get("weights") is None:
        # A random encoder's weights exist nowhere else (LoRA matrices inside it keep their best-epoch values).
        tensors.update({f"encoder.{k}": v for k, v in model.encoder.state_dict().items() if f"encoder.{k}" not in tensors})
    save_tensors(tensors, out_dir / "model.safetensors", metadata={"best_epoch": str(best_epoch)})
    write_json({
        **dict(run_info or {}),
        "seed": seed,
        "sites": [files.site for files in data.sites],
        "model": dict(model_section),
        "slide_encoder": dict(slide_encoder_section),
        "output_dim": projector_dim,
        "feature_dim": feature_dim,
        "baseline": dict(baseline) if baseline is not None else None,
        "text_dim": text_dim,
        "tile_cap": data.bag_options.tile_cap,
        "gap_px": data.bag_options.gap_px,
        "pathways": pathway_names,
        "pathway_genes": pathway_genes,
        "gene_scaler": scaler.state_dict() if scaler is not None else None,
        "clinical_encoder": clinical_encoder.state_dict() if clinical_encoder is not None else None,
        "encoder_sha256": encoder_fingerprint(model),
        "best_epoch": best_epoch,
        "best_val_balanced_accuracy": best_score if np.isfinite(best_score) else None,
        "excluded_patients": data.excluded,
    }, out_dir / "config.json")
