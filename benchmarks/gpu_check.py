"""A prepared GPU check: one run of a few minutes on one GPU, one JSON with the figures that size a real run.

Sections of the JSON (``--out``, default gpu_check.json; written again after each section, so a run stopped early
keeps what it measured):

* ``tile_encoder``: Gigapath's tile encoder (ViT-g, 1.1 B parameters, bf16 autocast on the GPU) with benchmark-only
  random weights, batch sweep: model-only tiles/s (``Encoder.encode`` on device-resident batches) and whole-pipeline
  tiles/s (``extract_slide`` on a synthetic 40x slide: reads, resize, copy, forward, h5 write), the model's TFLOP/s
  from the FLOPs counted on one tile, and both against 60 % of the GPU's dense bf16 peak (table in
  benchmarks/features.py keyed by device name; ``unknown`` for other GPUs unless ``--peak-tflops``).
* ``longnet``: Gigapath's slide encoder (12 LongNet layers, 768-d) forward + backward with activation checkpointing
  at 10k, 25k and 50k tiles: seconds and peak memory above the level before the call.
* ``modaltune_step``: one ModalTune training step (benchmarks/train_step.py, full width, three task passes batched)
  at 25k tiles.
* ``baseline_steps``: one training step of each supervised baseline (benchmarks/baselines.py) at 25k tiles, when
  ``modaltune.baselines`` is importable; otherwise a recorded skip.
* ``flash_attention``: whether the flash SDP backend is enabled and which attention kernels a profiled LongNet and
  tile-encoder forward actually ran (kernel names containing ``flash``).

``--toy`` runs the same code on the CPU at toy sizes (the ``tiny`` encoders, hundreds of tiles) in under a minute;
tests/unit/test_gpu_check.py runs it that way so the script cannot rot. Sections that would pass ``--budget-s``
are recorded as skipped, not dropped.

    python benchmarks/gpu_check.py --out gpu_check.json          # on a GPU machine, under 8 minutes on an H100/H200
    python benchmarks/gpu_check.py --toy --out /tmp/toy.json      # CPU, toy sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from features import bf16_peak_entry, forward_rate, make_slide, pipeline_rate
from longnet import measure
from train_step import measure as measure_modaltune_step

from modaltune.features import create_encoder
from modaltune.models import create_slide_encoder

# The only place this script asks for random weights (throughput and memory do not depend on them): both encoders
# take the explicit "random" of modaltune/weights.py, which the workflow refuses.
BENCHMARK_WEIGHTS = {"tile_encoder": "random", "slide_encoder": "random"}  # explicit: benchmarks only
TARGET_FRACTION_OF_PEAK = 0.6

SIZES = {
    "full": {
        "tile_encoder": "gigapath",
        "batches": [32, 64, 128, 256],
        "forward_tiles": 2048,
        "pipeline_tiles": 2048,
        "slide_encoder": "gigapath_slide_enc12l768d",
        "longnet_tiles": [10_000, 25_000, 50_000],
        "step_tiles": 25_000,
        "modaltune_width": "full",
    },
    "toy": {
        "tile_encoder": "tiny",
        "batches": [4, 8],
        "forward_tiles": 16,
        "pipeline_tiles": 16,
        "slide_encoder": "tiny",
        "longnet_tiles": [64, 128, 256],
        "step_tiles": 128,
        "modaltune_width": "tiny",
    },
}
FLASH_KERNEL = re.compile(r"flash", re.IGNORECASE)
ATTENTION_NAME = re.compile(r"flash|fmha|efficient_attention|scaled_dot_product", re.IGNORECASE)


class Check:
    """The JSON being filled in: sections, elapsed time, the budget; rewritten to ``out`` after each section."""

    def __init__(self, out: Path, budget_s: float, header: dict):
        self.out, self.budget_s, self.started = out, budget_s, time.monotonic()
        self.data = dict(header, sections_seconds={})

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self, name: str, section, *args) -> None:
        if self.elapsed() > self.budget_s:
            self.data[name] = {"skipped": f"over --budget-s {self.budget_s:.0f} s after {self.elapsed():.0f} s"}
        else:
            began = time.monotonic()
            self.data[name] = section(*args)
            self.data["sections_seconds"][name] = round(time.monotonic() - began, 1)
        self.data["total_seconds"] = round(self.elapsed(), 1)
        _release_memory()
        self.out.write_text(json.dumps(self.data, indent=2) + "\n")
        print(f"{name}: {json.dumps(self.data[name])[:300]}", flush=True)


def _release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def device_info(device: torch.device, peak_override: float | None) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count()}
    if device.type != "cuda":
        return dict(info, device_name=platform.processor() or "cpu", bf16_peak_tflops="unknown",
                    bf16_peak_source="not a GPU")
    name = torch.cuda.get_device_name(device)
    entry = bf16_peak_entry(name)
    if peak_override is not None:
        peak, source = peak_override, "--peak-tflops"
    elif entry is not None:
        peak, source = entry[1], f"benchmarks/features.py BF16_PEAK_TFLOPS['{entry[0]}'] (dense, no sparsity)"
    else:
        peak, source = "unknown", f"'{name}' is not in benchmarks/features.py BF16_PEAK_TFLOPS; pass --peak-tflops"
    props = torch.cuda.get_device_properties(device)
    return dict(info, device_name=name, memory_gib=round(props.total_memory / 2**30, 1),
                capability=".".join(map(str, torch.cuda.get_device_capability(device))), cuda=torch.version.cuda,
                bf16_peak_tflops=peak, bf16_peak_source=source)


def gflop_per_tile(encoder) -> float:
    """FLOPs of one tile's forward, counted by torch on the model itself (matmuls and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    tile = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, device=encoder.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        encoder.encode(tile)
    return counter.get_total_flops() / 1e9


def build_tile_encoder(sizes: dict, device: torch.device):
    return create_encoder(sizes["tile_encoder"], weights=BENCHMARK_WEIGHTS["tile_encoder"], device=str(device))


def tile_encoder(encoder, sizes: dict, peak, workers: int, folder: Path) -> dict:
    gflop = gflop_per_tile(encoder)
    target = None if peak == "unknown" else TARGET_FRACTION_OF_PEAK * peak * 1e3 / gflop  # tiles/s
    slide, tiles_path = make_slide(folder, sizes["pipeline_tiles"])
    warm_slide, warm_tiles = make_slide(folder, max(sizes["batches"]))  # other tiles: no OpenSlide cache hits later
    sweep = []
    for batch_size in sizes["batches"]:
        pipeline_rate(encoder, warm_slide, warm_tiles, folder / "warm.h5", batch_size, workers)
        pipeline = pipeline_rate(encoder, slide, tiles_path, folder / "out.h5", batch_size, workers)
        batch = torch.randint(0, 256, (batch_size, 3, 224, 224), dtype=torch.uint8)
        model = forward_rate(encoder, batch, sizes["forward_tiles"])
        row = {"batch": batch_size, "model_only_tiles_per_s": round(model, 1),
               "pipeline_tiles_per_s": round(pipeline, 1), "pipeline_over_model": round(pipeline / model, 3),
               "model_tflops": round(model * gflop / 1e3, 2)}
        if target is not None:
            row.update(model_fraction_of_peak=round(model * gflop / 1e3 / peak, 3),
                       pipeline_fraction_of_peak=round(pipeline * gflop / 1e3 / peak, 3),
                       model_meets_60pct_of_peak=bool(model >= target),
                       pipeline_meets_60pct_of_peak=bool(pipeline >= target))
        sweep.append(row)
        print(f"  tile encoder batch {batch_size}: {json.dumps(row)}", flush=True)
    parameters = sum(p.numel() for p in encoder.model.parameters())
    return {"encoder": encoder.name, "architecture": encoder.config.arch, "parameters_m": round(parameters / 1e6, 1),
            "weights": f"{encoder.weights} (benchmark only)", "precision": encoder.precision,
            "gflop_per_tile": round(gflop, 1), "workers": workers,
            "target_tiles_per_s_at_60pct_of_peak": None if target is None else round(target, 1),
            "sweep": sweep}


def _grid(tiles: int, device: torch.device) -> torch.Tensor:
    side = int(np.ceil(np.sqrt(tiles)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:tiles] * 256
    return torch.from_numpy(grid).to(device)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _slide_encoder(sizes: dict, device: torch.device):
    encoder = create_slide_encoder(sizes["slide_encoder"], weights=BENCHMARK_WEIGHTS["slide_encoder"],
                                   checkpointing=True)
    return encoder.to(device).train()


def _forward_backward(encoder, tiles: int, device: torch.device):
    features = torch.randn(1, tiles, encoder.config.in_chans, device=device)
    coords = _grid(tiles, device).unsqueeze(0)

    def step():
        with _autocast(device):
            pooled = encoder(features, coords)[0]
        pooled.float().square().mean().backward()
        encoder.zero_grad(set_to_none=True)

    return step


def longnet(sizes: dict, device: torch.device) -> dict:
    encoder = _slide_encoder(sizes, device)
    runs = []
    for tiles in sizes["longnet_tiles"]:
        try:
            seconds, _, peak_mib = measure(_forward_backward(encoder, tiles, device), device)
            runs.append({"tiles": tiles, "forward_backward_s": round(seconds, 3), "peak_mib": round(peak_mib)})
        except torch.cuda.OutOfMemoryError as error:
            runs.append({"tiles": tiles, "error": f"out of memory: {str(error).splitlines()[0]}"})
        _release_memory()
        print(f"  longnet: {json.dumps(runs[-1])}", flush=True)
    return {"slide_encoder": sizes["slide_encoder"], "checkpointing": True,
            "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
            "weights": f"{BENCHMARK_WEIGHTS['slide_encoder']} (benchmark only)",
            "peak_memory": "CUDA allocator peak above the level before the call" if device.type == "cuda" else
            "resident-set growth sampled every millisecond (estimate)", "runs": runs}


def _step_result(measure_step, *args) -> dict:
    """Run one of the training-step benchmarks' ``measure(..., queue)`` in this process."""
    results = queue.SimpleQueue()
    try:
        measure_step(*args, results)
    except torch.cuda.OutOfMemoryError as error:
        return {"error": f"out of memory: {str(error).splitlines()[0]}"}
    seconds, peak = results.get()
    return {"step_s": round(seconds, 3), "peak_mib": round(peak / 2**20)}


def _peak_note(device: torch.device) -> str:
    return ("CUDA allocator peak of the timed step" if device.type == "cuda" else
            "process peak resident set above the level before the step (this process ran earlier sections too)")


def modaltune_step(sizes: dict, device: torch.device, threads: int) -> dict:
    result = _step_result(measure_modaltune_step, sizes["modaltune_width"], sizes["step_tiles"], True, device.type,
                          threads)
    return dict(result, width=sizes["modaltune_width"], tiles=sizes["step_tiles"], tasks_batched=True,
                step="forward + KL to text + backward + AdamW, one patient (benchmarks/train_step.py)",
                peak_memory=_peak_note(device))


def baseline_steps(sizes: dict, device: torch.device, threads: int) -> dict:
    try:
        from modaltune.baselines import BASELINES
    except ImportError as error:
        return {"skipped": f"modaltune.baselines is not importable ({error}); the supervised baselines come with "
                           "the `baselines` branch and benchmarks/baselines.py"}
    import baselines as baseline_benchmark  # benchmarks/baselines.py, shipped with modaltune.baselines

    steps = {}
    for name, spec in BASELINES.items():
        steps[name] = dict(_step_result(baseline_benchmark.measure, name, sizes["step_tiles"], device.type, threads),
                           modality=spec.modality)
        print(f"  baseline {name}: {json.dumps(steps[name])}", flush=True)
        _release_memory()
    return {"tiles": sizes["step_tiles"], "step": "forward + cross-entropy + backward + AdamW, one patient "
            "(benchmarks/baselines.py; genomics models read no tiles)", "peak_memory": _peak_note(device),
            "models": steps}


def _attention_names(profile, device: torch.device) -> list[str]:
    """Attention kernels of the GPU trace on CUDA (the aten ops on the CPU), names cut to 160 characters."""
    from torch.autograd import DeviceType

    wanted = DeviceType.CUDA if device.type == "cuda" else DeviceType.CPU
    return sorted({event.name[:160] for event in profile.events()
                   if event.device_type == wanted and ATTENTION_NAME.search(event.name)})


def flash_attention(tile_encoder, sizes: dict, device: torch.device) -> dict:
    """Which attention kernels ran in a profiled LongNet forward + backward and a tile-encoder forward."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    encoder = _slide_encoder(sizes, device)
    step = _forward_backward(encoder, sizes["longnet_tiles"][0], device)
    step()  # warm-up outside the profile
    with profile(activities=activities) as longnet_profile:
        step()
    batch = torch.randint(0, 256, (sizes["batches"][0], 3, 224, 224), dtype=torch.uint8, device=device)
    tile_encoder.encode(batch)  # warm-up outside the profile
    with profile(activities=activities) as tile_profile:
        tile_encoder.encode(batch)
    found = {"longnet": _attention_names(longnet_profile, device),
             "tile_encoder": _attention_names(tile_profile, device)}
    backends = torch.backends.cuda
    return {
        "flash_sdp_enabled": backends.flash_sdp_enabled(),
        "mem_efficient_sdp_enabled": backends.mem_efficient_sdp_enabled(),
        "attention_ops_and_kernels": found,
        "flash_used": {part: any(FLASH_KERNEL.search(name) for name in names) for part, names in found.items()},
        "note": "on CUDA the names are the GPU trace's kernels; on the CPU the aten ops "
                "(_scaled_dot_product_flash_attention_for_cpu is PyTorch's CPU flash kernel)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="toy sizes on the CPU (the test runs this)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON to write")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--workers", type=int, help="tile-reading workers (default: cores - 2 on a GPU, 0 on --toy)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: 1 on --toy, where tensors are tiny; else torch's)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip (and record) the sections that would start after this many seconds")
    args = parser.parse_args()
    if args.toy:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        sys.exit("gpu_check: no CUDA device visible; run it on a GPU machine, or with --toy for the CPU toy sizes")
    sizes = SIZES["toy" if args.toy else "full"]
    torch.set_num_threads(args.threads or (1 if args.toy else torch.get_num_threads()))
    threads = torch.get_num_threads()
    workers = args.workers if args.workers is not None else (0 if args.toy else max(1, (os.cpu_count() or 4) - 2))
    header = dict(device_info(device, args.peak_tflops), mode="toy" if args.toy else "full", sizes=sizes,
                  target_fraction_of_peak=TARGET_FRACTION_OF_PEAK)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget_s, header)
    print(f"gpu_check on {header['device_name']} ({header['mode']} sizes), writing {args.out}", flush=True)
    began = time.monotonic()
    encoder = build_tile_encoder(sizes, device)  # ViT-g's random initialisation takes a while: built once
    check.data["tile_encoder_build_s"] = round(time.monotonic() - began, 1)
    with tempfile.TemporaryDirectory(prefix="modaltune-gpu-check-") as folder:
        check.run("tile_encoder", tile_encoder, encoder, sizes, header["bf16_peak_tflops"], workers, Path(folder))
    check.run("flash_attention", flash_attention, encoder, sizes, device)
    del encoder
    check.run("longnet", longnet, sizes, device)
    check.run("modaltune_step", modaltune_step, sizes, device, threads)
    check.run("baseline_steps", baseline_steps, sizes, device, threads)
    print(f"done in {check.elapsed():.0f} s: {args.out}")


if __name__ == "__main__":
    main()
