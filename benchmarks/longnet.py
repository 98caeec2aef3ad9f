"""Dilated attention cost: time, peak memory and (query, key) pair rates at N = 1k .. 64k tiles.

For one full-width Gigapath layer (768-d, 16 heads, its segment lengths and ratios) and for the ``tiny`` config,
at each N (sequence n = N + 1 with the CLS token) it prints:

* pairs: (query, key) pairs the dilated attention evaluates (zero-padding rows included) and their growth from
  the previous N, beside the growth of dense attention's n^2;
* dilated: time and peak memory of the attention alone (q, k, v -> merged output) and of the whole layer;
* rate: pairs per second of the dilated attention relative to ONE dense ``scaled_dot_product_attention`` call over
  the same number of pairs (sqrt(pairs / heads) tokens); 1.0 means segmenting, dilation gathers and the
  log-sum-exp merge cost nothing beside the attention kernels (target >= 0.7);
* dense: one dense SDPA over all n tokens, for comparison; with ``--device cuda`` also flash-attn if installed.

Calls predicted to exceed ``--max-call-seconds`` (from the dense kernel's rate measured at the previous N; CPU
seconds on CPU) are skipped with a note: on a 2-core CPU that drops N = 64k for the full-width layer and the dense
64k comparisons; ``--device cuda`` runs everything by default.
Peak memory: CUDA's allocator peak; on CPU the resident-set growth sampled every millisecond (an estimate).

    python benchmarks/longnet.py                 # CPU, about 2-3 minutes
    python benchmarks/longnet.py --device cuda   # everything, fp16 like the official pipeline
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time

import torch
import torch.nn.functional as F

from modaltune.models.longnet import LongNetLayer, dilated_attention, pair_count
from modaltune.models.slide_encoder import SLIDE_ENCODERS

SIZES = (1024, 4096, 16384, 65536)


class PeakMemory:
    """Peak memory above the starting level during the ``with`` block, in MiB."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start = self.peak = _rss_bytes()
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self.running = False
            self.thread.join()
            peak = max(self.peak, _rss_bytes())
        self.peak_mib = (peak - self.start) / 2**20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn, device: torch.device) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, peak MiB); short calls are repeated and the fastest kept.

    On a shared CPU the process CPU time is the steadier measure of the work done (other processes inflate wall
    time), so CPU rates are computed from it.
    """
    def timed():
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu

    with PeakMemory(device) as memory:
        runs = [timed()]
    while sum(wall for wall, _ in runs) < 1.0 and len(runs) < 6:
        runs.append(timed())
    runs = runs[1:] if len(runs) > 1 else runs  # the first call warms up caches and allocators
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs), memory.peak_mib


def flash_attn_func():
    try:
        from flash_attn import flash_attn_func as function
    except ImportError:
        return None
    return function


class Budget:
    """Predicts call times from the dense kernel's measured pair rate and records what it skips.

    On CPU the rate and the limit are in process CPU seconds, so other processes on the machine do not change
    which sizes run.
    """

    def __init__(self, max_call_seconds: float):
        self.max_call_seconds = max_call_seconds
        self.pairs_per_second = None
        self.notes: list[str] = []

    def allows(self, pairs: int, what: str) -> bool:
        if self.pairs_per_second is None or pairs / self.pairs_per_second <= self.max_call_seconds:
            return True
        self.notes.append(f"{what}: skipped, predicted {pairs / self.pairs_per_second:.0f} s > --max-call-seconds "
                          f"{self.max_call_seconds:g} (run with --device cuda, or raise the limit)")
        return False


def bench_size(config, layer, n: int, device, dtype, budget: Budget, flash) -> str:
    """Table columns after the pair counts for one sequence length n."""
    heads, dim = config.num_heads, config.embed_dim // config.num_heads
    segments, ratios = config.segment_lengths, config.dilated_ratios
    pairs = pair_count(n, heads, segments, ratios)
    if not budget.allows(pairs, f"N={n - 1} {config.name} dilated attention, layer and dense equivalent"):
        return "  (skipped, see notes)"
    generator = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, n, heads, dim, generator=generator, device=device, dtype=dtype) for _ in range(3))
    tokens = torch.randn(1, n, config.embed_dim, generator=generator, device=device, dtype=dtype)
    attn_s, attn_cpu, attn_mib = measure(lambda: dilated_attention(q, k, v, segments, ratios), device)
    layer_s, _, layer_mib = measure(lambda: layer(tokens), device)
    side = max(1, round(math.sqrt(pairs / heads)))
    equivalent = [torch.randn(1, heads, side, dim, device=device, dtype=dtype) for _ in range(3)]
    eq_s, eq_cpu, _ = measure(lambda: F.scaled_dot_product_attention(*equivalent), device)
    on_cpu = device.type == "cpu"
    budget.pairs_per_second = heads * side * side / (eq_cpu if on_cpu else eq_s)
    relative = eq_cpu / attn_cpu if on_cpu else eq_s / attn_s
    row = f" {attn_s:>8.3f} {attn_mib:>6.0f} {layer_s:>8.3f} {layer_mib:>6.0f} | {eq_s:>10.3f} {relative:>5.2f} |"
    dense = [x.transpose(1, 2) for x in (q, k, v)]
    if budget.allows(heads * n * n, f"N={n - 1} {config.name} dense attention over all tokens"):
        dense_s, _, dense_mib = measure(lambda: F.scaled_dot_product_attention(*dense), device)
        row += f" {dense_s:>9.3f} {dense_mib:>6.0f}"
    else:
        row += f" {'skipped':>9}"
    if flash is not None and dtype in (torch.float16, torch.bfloat16):
        flash_s, _, _ = measure(lambda: flash(q, k, v), device)
        row += f" | flash-attn dense {flash_s:.3f} s"
    return row


def bench_config(name: str, args, device: torch.device, dtype: torch.dtype) -> None:
    config = SLIDE_ENCODERS[name]
    heads = config.num_heads
    print(f"\n== {name}: one layer, {config.embed_dim}-d, {heads} heads of {config.embed_dim // heads}, segment "
          f"lengths {list(config.segment_lengths)}, ratios {list(config.dilated_ratios)}, {device.type} "
          f"{str(dtype).removeprefix('torch.')}")
    print(f"{'N':>6} {'pairs':>9} {'growth':>6} {'dense x':>7} | {'attn s':>8} {'MiB':>6} {'layer s':>8} {'MiB':>6} "
          f"| {'eq-dense s':>10} {'rate':>5} | {'dense-N s':>9} {'MiB':>6}")
    layer = LongNetLayer(config.embed_dim, heads, config.ffn_dim, config.segment_lengths, config.dilated_ratios,
                         dropout=0.0, drop_path=0.0).to(device, dtype).eval()
    flash = flash_attn_func() if device.type == "cuda" else None
    budget = Budget(args.max_call_seconds)
    previous = None
    for tiles in args.sizes:
        n = tiles + 1  # the CLS token
        pairs = pair_count(n, heads, config.segment_lengths, config.dilated_ratios)
        growth = f"{pairs / previous[1]:.1f}x" if previous else ""
        dense_growth = f"{(n / previous[0]) ** 2:.0f}x" if previous else ""
        previous = (n, pairs)
        with torch.no_grad():
            columns = bench_size(config, layer, n, device, dtype, budget, flash)
        print(f"{tiles:>6} {pairs / 1e6:>8.1f}M {growth:>6} {dense_growth:>7} |{columns}", flush=True)
    for note in budget.notes:
        print("  " + note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default: float32 on CPU, float16 on CUDA (as the official pipeline)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of tiles N")
    parser.add_argument("--max-call-seconds", type=float, default=None,
                        help="skip calls predicted to take longer (default 15 CPU seconds on CPU, unlimited on CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    if args.max_call_seconds is None:
        args.max_call_seconds = math.inf if device.type == "cuda" else 15.0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" +
          (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print("rate = time of one dense SDPA over the same number of pairs / time of the dilated attention"
          + (" (process CPU time: steadier than wall time on a shared machine)" if device.type == "cpu" else ""))
    print("times are wall-clock seconds; MiB = peak memory above the level before the call")
    for name in ("gigapath_slide_enc12l768d", "tiny"):
        bench_config(name, args, device, dtype)


if __name__ == "__main__":
    main()
