"""One single-task, single-site run: train, select the epoch on validation, score the test split.

The model is a registered baseline (:func:`train_baseline`) or any :class:`SingleTaskModel`, e.g. the No Text
Embedding ablation's ModalTune with a task head (:mod:`modaltune.baselines.no_text`).

Per epoch: the training patients in a random order, batch of one patient, one optimiser step per ``accumulate``
patients (AdamW; the learning rate warms up linearly, then follows a cosine, times each group's ``lr_scale``); then
the validation patients are scored (balanced accuracy for subtype, Harrell's C-index of the risk for survival) and the
best epoch's weights are kept (ties go to the later epoch, as ModalTune's loop). The best weights score the test
split. A checkpoint per epoch (``{task}.checkpoint/``, safetensors + JSON) lets an interrupted run resume; it belongs
to the settings and inputs that wrote it and is removed once the run's outputs exist.

Outputs: ``{task}.json`` (status ok or skipped with the reason, test metric, validation history, counts, settings;
survival adds the training patients' median risk, the Kaplan-Meier cut)
and ``{task}.parquet`` (per test patient: the label and the class probabilities, or the risk); with ``keep_weights``
also ``{task}.safetensors``, the selected epoch's weights with what rebuilds the model in its metadata (see
:mod:`modaltune.baselines.transfer`, which reuses a trained model as a feature extractor on another site).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from modaltune.baselines.base import Baseline
from modaltune.baselines.data import SiteData, SkipRun, TaskData
from modaltune.baselines.registry import BASELINES, create_baseline
from modaltune.baselines.survival import nll_survival_loss, risk_from_logits
from modaltune.baselines.transfer import save_weights
from modaltune.evaluation.probes import SUBTYPE_METRIC, SURVIVAL_METRIC
from modaltune.io import write_json, write_parquet
from modaltune.training.checkpoint import BEST_FILE, load_checkpoint, save_checkpoint, save_tensors
from modaltune.training.loop import autocast
from modaltune.training.objective import learning_rate

log = logging.getLogger(__name__)

METRICS = {"subtype": SUBTYPE_METRIC, "survival": SURVIVAL_METRIC}
# Keys of a model's config section that set its optimiser or overrides, not its architecture.
NON_ARCHITECTURE_KEYS = ("lr", "weight_decay", "training")
# The baselines' AdamW eps (PyTorch's default) and warm-up shape (from lr / 20, the paper's schedule), not configurable.
BASELINE_SCHEDULE = {"eps": 1e-8, "warmup_factor": 20.0, "schedule": "paper"}


@dataclass(frozen=True)
class SingleTaskModel:
    """What a single-task run trains, and with which settings."""

    name: str  # the record's model name and table row key
    label: str  # its row label
    modality: str  # a key of registry.MODALITY_TITLES
    build: Callable[[int], Baseline]  # n_outputs -> a freshly initialised model
    architecture: dict  # recorded with the run (and rebuilds kept weights)
    optimiser: dict  # lr, weight_decay, eps, warmup_factor, schedule
    training: dict  # protocol: epochs, warmup_epochs, accumulate, betas, tile caps, survival bins and alpha, precision


def run_settings(section: Mapping[str, Any], name: str) -> tuple[dict, dict, dict]:
    """(architecture kwargs, optimiser settings, training protocol) of model ``name`` from the ``baselines`` section:
    the shared ``training`` with the model's own ``training`` overrides on top."""
    model = section[name]
    architecture = {k: v for k, v in model.items() if k not in NON_ARCHITECTURE_KEYS}
    training = {**section["training"], **model.get("training", {})}
    return architecture, {"lr": model["lr"], "weight_decay": model["weight_decay"], **BASELINE_SCHEDULE}, training


def baseline_model(name: str, section: Mapping[str, Any], inputs) -> SingleTaskModel:
    """Registered baseline ``name`` with its settings from the ``baselines`` section, for data shaped like ``inputs``."""
    architecture, optimiser, training = run_settings(section, name)
    spec = BASELINES[name]
    return SingleTaskModel(name, spec.label, spec.modality,
                           lambda n_outputs: create_baseline(name, n_outputs, inputs, **architecture),
                           architecture, optimiser, training)


def metric(task: str, outputs: np.ndarray, labels: pd.DataFrame) -> float:
    """Balanced accuracy of the argmax, or Harrell's C of the risk (NaN without a comparable pair)."""
    if task == "subtype":
        from sklearn.metrics import balanced_accuracy_score

        return float(balanced_accuracy_score(labels["subtype_class"], outputs.argmax(axis=1)))
    from lifelines.utils import concordance_index

    if labels["event"].sum() == 0 or len(labels) < 2:
        return float("nan")
    risk = risk_from_logits(torch.from_numpy(outputs)).numpy()
    try:
        return float(concordance_index(labels["time_months"], -risk, labels["event"]))
    except ZeroDivisionError:  # lifelines: no admissible pair
        return float("nan")


class Run:
    """Model, optimiser and data of one (model, site, seed, task)."""

    def __init__(self, spec: SingleTaskModel, data: SiteData, task: TaskData, device: torch.device, seed: int):
        self.data, self.task, self.training, self.device = data, task, spec.training, device
        torch.manual_seed(seed)
        self.generator = np.random.default_rng(seed)
        self.model = spec.build(task.n_outputs).to(device)
        self.schedule = spec.optimiser
        self.optimizer = torch.optim.AdamW(self.model.param_groups(spec.optimiser["weight_decay"]),
                                           lr=spec.optimiser["lr"], betas=tuple(spec.training["betas"]),
                                           eps=spec.optimiser["eps"])

    def outputs(self, patient: str, generator: np.random.Generator | None = None) -> torch.Tensor:
        cap = self.training["tile_cap"] if generator is not None else self.training["eval_tile_cap"]
        patient_input = self.data.patient(patient, self.model.reads, cap, generator).to(self.device)
        with autocast(self.device, self.training["precision"]):
            return self.model(patient_input).float()

    def loss(self, patient: str, logits: torch.Tensor) -> torch.Tensor:
        row = self.task.labels.loc[patient]
        if self.task.task == "subtype":
            target = torch.tensor([int(row["subtype_class"])], device=self.device)
            return F.cross_entropy(logits.unsqueeze(0), target)
        bins = torch.tensor([int(row["bin"])], device=self.device)
        censored = torch.tensor([1.0 - row["event"]], device=self.device)
        return nll_survival_loss(logits.unsqueeze(0), bins, censored, self.training["survival_alpha"])

    def train_epoch(self, epoch: int) -> float:
        training = self.training
        lr = learning_rate(epoch, training["epochs"], self.schedule["lr"], training["warmup_epochs"],
                           self.schedule["warmup_factor"], self.schedule["schedule"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.model.train()
        patients = self.task.splits["train"]
        order = self.generator.permutation(len(patients))
        accumulate, losses = training["accumulate"], []
        self.optimizer.zero_grad(set_to_none=True)
        for step, index in enumerate(order, start=1):
            patient = patients[index]
            loss = self.loss(patient, self.outputs(patient, self.generator))
            (loss / accumulate).backward()
            if step % accumulate == 0 or step == len(order):
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def predict(self, split: str) -> np.ndarray:
        self.model.eval()
        patients = self.task.splits[split]
        return np.stack([self.outputs(p).cpu().numpy() for p in patients]) if patients else np.zeros((0, 0))

    def score(self, split: str) -> float:
        patients = self.task.splits[split]
        if not patients:
            return float("nan")
        return metric(self.task.task, self.predict(split), self.task.labels.loc[patients])

    def state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()


def train_baseline(name: str, data: SiteData, task_name: str, section: Mapping[str, Any], inputs, *,
                   device: torch.device, seed: int, out_stem: str | Path,
                   run_info: Mapping[str, Any] | None = None, keep_weights: bool = False) -> dict[str, Any]:
    """Train (or resume) one run of registered baseline ``name`` (see :func:`train_single_task`)."""
    return train_single_task(baseline_model(name, section, inputs), data, task_name, device=device, seed=seed,
                             out_stem=out_stem, run_info=run_info, keep_weights=keep_weights)


def train_single_task(spec: SingleTaskModel, data: SiteData, task_name: str, *, device: torch.device, seed: int,
                      out_stem: str | Path, run_info: Mapping[str, Any] | None = None,
                      keep_weights: bool = False) -> dict[str, Any]:
    """Train (or resume) one run and write ``{out_stem}.json`` and ``{out_stem}.parquet`` (and with
    ``keep_weights`` ``{out_stem}.safetensors``); returns the record."""
    out_stem = Path(out_stem)
    name, architecture, training = spec.name, spec.architecture, spec.training
    record: dict[str, Any] = {
        **dict(run_info or {}), "model": name, "label": spec.label, "modality": spec.modality, "site": data.site,
        "seed": seed, "task": task_name, "metric": METRICS[task_name], "value": None, "status": "ok", "reason": None,
        "settings": {"architecture": architecture, "optimiser": spec.optimiser, "training": training},
        "excluded_patients": data.experiment.excluded,
    }
    try:
        task = data.task(task_name, training["survival_bins"])
    except SkipRun as skip:
        log.warning("%s skipped: %s", name, skip)
        record.update(status="skipped", reason=str(skip))
        if keep_weights:  # no model: the file says why, and a reader of the weights reports it
            save_tensors({}, out_stem.with_suffix(".safetensors"), metadata={"model": name, "skipped": str(skip)})
        _write(record, pd.DataFrame({"patient": pd.Series(dtype=str)}), out_stem)
        return record
    record["n_patients"] = {split: len(patients) for split, patients in task.splits.items()}
    record.update(task.details)

    run = Run(spec, data, task, device, seed)
    checkpoint_dir = out_stem.with_name(out_stem.name + ".checkpoint")
    key = _run_key(record["settings"], task, data, name, seed)
    state = load_checkpoint(checkpoint_dir, run.model, run.optimizer, key)
    history: list[dict[str, Any]] = []
    best_epoch, best_score, start = -1, float("-inf"), 0
    if state is not None:
        start, history = state["epoch"] + 1, state["history"]
        best_epoch, best_score = state["best_epoch"], state["best_score"]
        run.generator.bit_generator.state = state["numpy_rng"]
        log.info("resuming %s after epoch %d", out_stem, state["epoch"])
    for epoch in range(start, training["epochs"]):
        began = time.time()
        loss = run.train_epoch(epoch)
        score = run.score("val")
        history.append({"epoch": epoch, "train_loss": loss, f"val_{METRICS[task_name]}": score,
                        "seconds": round(time.time() - began, 3)})
        comparable = score if np.isfinite(score) else float("-inf")
        if comparable >= best_score:
            best_epoch, best_score = epoch, comparable
            save_tensors(run.state(), checkpoint_dir / BEST_FILE, metadata={"epoch": str(epoch)})
        save_checkpoint(checkpoint_dir, epoch, run.state(), run.optimizer, {
            "history": history, "best_epoch": best_epoch, "best_score": best_score,
            "numpy_rng": run.generator.bit_generator.state, "run_key": key})
    from safetensors.torch import load_file

    best = load_file(str(checkpoint_dir / BEST_FILE))
    run.model.load_state_dict(best)
    if keep_weights:
        save_weights(best, out_stem.with_suffix(".safetensors"), name=name, architecture=architecture,
                     n_outputs=task.n_outputs, genes=data.experiment.gene_names, site=data.site, task=task_name,
                     epoch=best_epoch)
    outputs = run.predict("test")
    test = task.splits["test"]
    record.update(value=metric(task_name, outputs, task.labels.loc[test]), best_epoch=best_epoch,
                  best_val=best_score if np.isfinite(best_score) else None, history=history)
    if task_name == "survival":  # the KM figure's cut, fixed on the training patients as the probes' is
        train_risk = risk_from_logits(torch.from_numpy(run.predict("train"))).numpy()
        record["survival"] = {"train_median_risk": float(np.median(train_risk))}
    _write(record, _predictions(task, test, outputs), out_stem)
    shutil.rmtree(checkpoint_dir)
    log.info("%s %s seed %d %s: test %s %.4f (epoch %d)", name, data.site, seed, task_name, METRICS[task_name],
             record["value"], best_epoch)
    return record


def _predictions(task: TaskData, patients: list[str], outputs: np.ndarray) -> pd.DataFrame:
    table = task.labels.loc[patients].reset_index()
    if task.task == "subtype":
        probabilities = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
        table["predicted_class"] = probabilities.argmax(axis=1)
        for c in range(probabilities.shape[1]):
            table[f"probability_{c}"] = probabilities[:, c]
    else:
        table["risk"] = risk_from_logits(torch.from_numpy(outputs)).numpy()
    return table


def _write(record: dict[str, Any], predictions: pd.DataFrame, out_stem: Path) -> None:
    write_parquet(predictions, out_stem.with_suffix(".parquet"))
    write_json(record, out_stem.with_suffix(".json"))


def _run_key(settings: dict, task: TaskData, data: SiteData, name: str, seed: int) -> str:
    """SHA-256 of the settings and the run's labelled patients, genes and feature files (size and mtime)."""
    digest = hashlib.sha256()
    runtime = {"device", "threads", "gpus", "mem_mb", "runtime", "bag_cache_mb"}
    trimmed = dict(settings, training={k: v for k, v in settings["training"].items() if k not in runtime})
    digest.update(json.dumps([name, seed, trimmed, task.details, task.splits], sort_keys=True).encode())
    digest.update(pd.util.hash_pandas_object(task.labels, index=True).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(data.genes, index=True).to_numpy().tobytes())
    for slides in data.experiment.patients["slides"]:
        for slide in slides:
            stat = data.experiment.feature_path(slide).stat()
            digest.update(f"{slide}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()
