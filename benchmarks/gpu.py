"""The GPU measurement: every speed and memory question of a GPU generation job, in one run.

    make bench-gpu                                  # python benchmarks/gpu.py --device cuda
    python benchmarks/gpu.py --device cpu --quick   # tiny sizes on the CPU: checks that it runs

The network is the demo's backbone (BlanketNet: factorised 1x3x3 convolutions, time filters
of 2K - 1 = 95 taps, K = 48) scaled up to about 100 M parameters (width 1024, 10 blocks:
97 M) for the demo's latent scaled up to a research grid: latent (8, 32, 64) is what the
demo's autoencoder (4x downsampling to 8 channels; latent (8, 8, 16) of its 32 x 64,
5.625-degree grid) gives on WeatherBench2's 128 x 256, 1.40625-degree ERA5 grid. A blanket is
then 48 x 2,048 latent points and a forward pass costs 18.7 TFLOP, so batching, memory
and precision are measured where a real model's GPU time goes, not where the CPU demo's
does. The weights are torch's default initialisation (speed and memory do not depend on
them); the model directory is written once under benchmarks/output/gpu.

Each result is a ratio (or a measured quantity) taken in this run, both sides interleaved,
best of the repeats, printed and appended to benchmarks/results.csv; the sampler, steps,
overlap (O = 24) and precision are those of --config (default config/config.yaml):

1. memory: peak GPU memory per blanket (from calls of 1, 2 and 4 blankets) and the largest
   `generation.max_blankets_per_batch` that fits, confirmed by a call of that many, for the
   config's precision and bfloat16;
2. batched vs a per-blanket loop at T = 240 and 720 (N = 9 and 29), the batched side in
   calls of at most the fitting cap; target >= 5 on a GPU;
3. time outside the denoiser's forward in a member (T = 72, 32 steps) through
   `skyquilt.sampling.generation.generate_member` and the shard write; target <= 2 %;
4. bfloat16 and float16 vs float32 per step of a member (T = 72, 16 steps, the same seed),
   with the max difference of the sampled latents; target >= 1.8;
5. one real workflow run (`snakemake --cores all`, hardware.gen.gpus: 1, the demo model from
   its shipped weights, one start date x 2 members, the config's sampler and steps) whose
   shards must say device=cuda;
6. P = 2 processes (torchrun, NCCL; gloo on a CPU) vs P = 1 for one member (T = 240, 8
   steps), when the machine has two GPUs.

A part that cannot run here (GPU memory on a CPU, P = 2 on one GPU, a part whose estimate
would pass --budget-minutes) is recorded as not measured, with the reason. Budget on one
H100, estimated from FLOPs: about 615 float32-equivalent blanket forwards (1: 87, 2: 266,
3: 130, 4: 132) of 18.7 TFLOP, 11.5 PFLOP: 2 minutes at 100 TFLOP/s (a fifth of the H100's
dense TF32 peak), 5 at 40; plus about 75 s of process starts, model writing and the
workflow run: 3 to 6.5 minutes. The run prints each part's estimate from its first measured
forward pass before running it.
"""

import argparse
import dataclasses
import math
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml
from batched_vs_loop import sample_difference, time_batching
from common import (
    OUTPUT,
    REPO,
    default_plan,
    not_measured,
    parser,
    record,
    run_command,
    run_config,
    shipped_demo_model,
)
from overhead import in_process_overhead
from torch import nn

from skyquilt.io.shards import read_shard
from skyquilt.models.blanket_net import TimeMixing
from skyquilt.models.calendar import time_features
from skyquilt.models.config import ModelConfig, parse_model_config
from skyquilt.models.weights import build_denoiser, load_denoiser, write_model_directory
from skyquilt.planning.slurm.launcher import launcher_command
from skyquilt.sampling.blankets import blanket_count
from skyquilt.sampling.composition import ComposedDenoiser
from skyquilt.sampling.generation import MemberResult, NonFiniteSampleError, generate_member
from skyquilt.sampling.request import MemberRequest, RunSettings
from skyquilt.sampling.timestamps import trajectory_times

ROOT = OUTPUT / "gpu"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
START = "2000-04-03T00"
# The demo's backbone at about 100 M parameters, for the demo's latent scaled to 1.40625 deg.
NETWORK = {"latent_shape": (8, 32, 64), "blanket_size": 48, "hidden_channels": 1024,
           "blocks": 10, "embedding": 64, "time_kernel": 95, "factorised": True}  # fmt: skip
QUICK_NETWORK = {**NETWORK, "latent_shape": (2, 4, 8), "hidden_channels": 8, "blocks": 2,
                 "embedding": 16}  # fmt: skip
SIZES = {"batching": (240, 720), "member": 72, "precision_steps": 16, "overhead_steps": 32,
         "processes": 240, "processes_steps": 8, "repeats": 3, "member_repeats": 2,
         "workflow_steps": None}  # fmt: skip
QUICK_SIZES = {"batching": (72, 120), "member": 72, "precision_steps": 2, "overhead_steps": 2,
               "processes": 72, "processes_steps": 2, "repeats": 1, "member_repeats": 1,
               "workflow_steps": 2}  # fmt: skip
TARGETS = {"batching": 5.0, "overhead": 0.02, "precision": 1.8}
# Blankets of the largest call the memory part confirms (bounds its time).
MOST_BLANKETS = 256
LOG_STEP = re.compile(r"sampled in [0-9.]+ s \(([0-9.]+) s/step\)")


@dataclass
class Run:
    """What every part of the measurement shares."""

    arguments: argparse.Namespace
    device: torch.device
    sizes: dict
    path: Path  # the network's model directory
    denoiser: nn.Module
    model: ModelConfig
    settings: RunSettings
    inputs: dict  # recorded with every row: device, network, config
    deadline: float
    blanket_seconds: float = math.nan  # one float32 blanket forward, measured at set-up
    fitting: dict = dataclasses.field(default_factory=dict)  # precision -> blankets per call

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def fits_budget(self, part: str, quantity: str, forwards: float, fixed_s: float) -> bool:
        """Whether a part of ~`forwards` blanket forwards and `fixed_s` s fits the time left;
        if not, it is recorded as not measured."""
        estimate = forwards * self.blanket_seconds + fixed_s
        left = self.deadline - time.perf_counter()
        if estimate <= left:
            print(f"  {part}: estimated {estimate:.0f} s of the {left:.0f} s left", flush=True)
            return True
        reason = (
            f"its estimated {estimate:.0f} s would pass the {self.arguments.budget_minutes:g}-"
            f"minute budget ({left:.0f} s left)"
        )
        not_measured(self.arguments, part, quantity, "-", self.inputs, reason)
        return False


def network_config(spec: dict) -> dict:
    """The denoiser config.yaml of the measured network."""
    kwargs = ("hidden_channels", "blocks", "embedding", "time_kernel", "factorised")
    return {
        "latent_shape": list(spec["latent_shape"]),
        "backbone": {"name": "blanket_net", "kwargs": {key: spec[key] for key in kwargs}},
        "train": {
            "blanket_size": spec["blanket_size"],
            "blanket_dt": 1,
            "noise_schedule": "rectified",
            "sigma_min": 1e-3,
            "sigma_max": 1e3,
            "precision": "float32",
        },
        "valid": {"denoising_steps": 32},
    }


def write_network(spec: dict) -> Path:
    """The network's model directory (written once; reused while its config is the same).

    Torch's default initialisation, except that parameters which start at zero (the noise
    modulation, the time filters) get small random values, so every path carries signal.
    """
    config = network_config(spec)
    label = "x".join(map(str, spec["latent_shape"]))
    root = ROOT / f"network-{label}-K{spec['blanket_size']}-w{spec['hidden_channels']}"
    path = root / f"b{spec['blocks']}/autoencoders/ae/0/latents/dump/denoisers/denoiser/0"
    config_file = path / "config.yaml"
    if config_file.is_file() and yaml.safe_load(config_file.read_text()) == config:
        if (path / "best.safetensors").is_file():
            return path
    torch.manual_seed(0)
    denoiser = build_denoiser(parse_model_config(config))
    with torch.no_grad():
        for parameter in denoiser.parameters():
            if not parameter.any():
                parameter.normal_(std=0.02)
    return write_model_directory(path, config, denoiser)


def blanket_flops(denoiser: nn.Module, model: ModelConfig) -> float:
    """FLOPs of one blanket's forward: 2 x multiply-adds of every convolution at every latent
    point (stride 1, same padding) and of each block's time filter (a K x K band per channel)."""
    points = model.blanket_size * math.prod(model.latent_shape[1:])
    flops = 0.0
    for module in denoiser.modules():
        if isinstance(module, nn.Conv3d):
            flops += 2 * module.weight.numel() * points
        elif isinstance(module, TimeMixing):
            flops += 2 * module.taps.shape[0] * model.blanket_size * points
    return flops


def blankets(run: Run, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` noisy blankets (M, K, C, H, W), their noise levels (M,) and features (M, K, 4)."""
    size = run.model.blanket_size
    generator = torch.Generator().manual_seed(count)
    noisy = torch.randn(count, size, *run.model.latent_shape, generator=generator)
    features = time_features(trajectory_times(np.datetime64(START, "ns"), size, 1))
    return (
        noisy.to(run.device),
        torch.ones(count, device=run.device),
        features.expand(count, -1, -1).to(run.device),
    )


def composed(run: Run, precision: str) -> ComposedDenoiser:
    """The library's composed denoiser (one call for any number of blankets) at `precision`."""
    size = run.model.blanket_size
    features = time_features(trajectory_times(np.datetime64(START, "ns"), size, 1))
    return ComposedDenoiser(run.denoiser, features, size, 0, precision=precision).to(run.device)


def forward_seconds(run: Run, count: int, precision: str) -> float:
    """Wall seconds of one denoiser call on `count` blankets (after a warm-up call)."""
    denoiser, inputs = composed(run, precision), blankets(run, count)
    with torch.inference_mode():
        denoiser.denoise_blankets(*inputs)
        denoiser.forward_seconds = 0.0
        denoiser.denoise_blankets(*inputs)
    return denoiser.forward_seconds


def set_up(arguments: argparse.Namespace) -> Run:
    """Load the network on the device, time one blanket and print the run's estimate."""
    device = torch.device(arguments.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu.py --device cuda: torch sees no CUDA device here (use --device cpu)")
    spec, sizes = (QUICK_NETWORK, QUICK_SIZES) if arguments.quick else (NETWORK, SIZES)
    torch.set_num_threads(arguments.threads)
    path = write_network(spec)
    settings = default_plan(arguments, path, sizes["member"], None).settings
    denoiser, model = load_denoiser(path, settings.model_target)
    parameters = sum(parameter.numel() for parameter in denoiser.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    label = "x".join(map(str, spec["latent_shape"]))
    network = (
        f"BlanketNet {parameters / 1e6:.1f}M, latent {label}, K{spec['blanket_size']}, "
        f"width {spec['hidden_channels']}, {spec['blocks']} blocks"
    )
    inputs = {"device": name, "network": network, "config": str(arguments.config)}
    if device.type == "cuda":  # torch's defaults: float32 convolutions in TF32, matmuls not
        inputs["tf32"] = {"convolutions": torch.backends.cudnn.allow_tf32,
                          "matmul": torch.backends.cuda.matmul.allow_tf32}  # fmt: skip
    deadline = time.perf_counter() + 60 * arguments.budget_minutes
    run = Run(arguments, device, sizes, path, denoiser.to(device), model, settings, inputs,
              deadline)  # fmt: skip
    run.blanket_seconds = forward_seconds(run, 1, "float32")
    flops = blanket_flops(denoiser, model)
    print(
        f"gpu: {network} on {name}; one blanket's float32 forward: {flops / 1e12:.3g} TFLOP in "
        f"{run.blanket_seconds:.3g} s ({flops / run.blanket_seconds / 1e12:.3g} TFLOP/s)",
        flush=True,
    )
    return run


def peak_bytes(run: Run, count: int, precision: str) -> int:
    """Peak GPU memory of one denoiser call on `count` blankets, above what was allocated."""
    denoiser, inputs = composed(run, precision), blankets(run, count)
    torch.cuda.synchronize(run.device)
    torch.cuda.reset_peak_memory_stats(run.device)
    before = torch.cuda.memory_allocated(run.device)
    with torch.inference_mode():
        denoiser.denoise_blankets(*inputs)
    del inputs
    return torch.cuda.max_memory_allocated(run.device) - before


def largest_fitting(run: Run, precision: str, base: float, per_blanket: float) -> tuple[int, int]:
    """The most blankets per call that fit 95 % of the free memory, confirmed by a call of that
    many (10 % fewer after each out-of-memory error): (blankets, that call's peak bytes)."""
    if per_blanket <= 0:
        raise RuntimeError(f"peak memory did not grow with the blankets at {precision}")
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(run.device)
    count = min(MOST_BLANKETS, int((0.95 * free - base) // per_blanket))
    while count >= 1:
        try:
            return count, peak_bytes(run, count, precision)
        except torch.cuda.OutOfMemoryError:
            pass  # its traceback holds the call's tensors until this block ends
        torch.cuda.empty_cache()
        count = int(count * 0.9)
    raise RuntimeError(f"not even one blanket fits in {free / 2**30:.1f} GiB at {precision}")


def measure_memory(run: Run) -> None:
    """Part 1: peak memory per blanket and the largest max_blankets_per_batch that fits."""
    quantity = "peak GPU memory per blanket (GiB)"
    precisions = list(dict.fromkeys([run.settings.precision, "bfloat16"]))
    if not run.cuda:
        for precision in precisions:
            inputs = {**run.inputs, "precision": precision}
            reason = "--device cpu: no GPU memory to measure"
            not_measured(run.arguments, "gpu_memory", quantity, "none", inputs, reason)
        return
    if not run.fits_budget("gpu_memory", quantity, 2 * (7 + 64), 5):
        return
    for precision in precisions:
        peaks = {count: peak_bytes(run, count, precision) for count in (1, 2, 4)}
        per_blanket = (peaks[4] - peaks[2]) / 2
        base = peaks[2] - 2 * per_blanket
        count, peak = largest_fitting(run, precision, base, per_blanket)
        run.fitting[precision] = count
        total = torch.cuda.get_device_properties(run.device).total_memory
        record(run.arguments, "gpu_memory", quantity, per_blanket / 2**30,
               "none (sets max_blankets_per_batch)", None,
               {**run.inputs, "precision": precision},
               {"largest_max_blankets_per_batch": count,
                "largest_call_peak_gib": round(peak / 2**30, 2),
                "base_gib": round(base / 2**30, 3),
                **{f"peak_{n}_gib": round(value / 2**30, 3) for n, value in peaks.items()},
                "device_total_gib": round(total / 2**30, 1),
                "capped_at": MOST_BLANKETS})  # fmt: skip


def measure_batching(run: Run) -> None:
    """Part 2: batched (in calls of the fitting cap) vs one call per blanket, per step."""
    quantity = "per-blanket loop / batched time"
    cap = run.fitting.get(run.settings.precision) if run.cuda else None
    cap = cap or run.settings.max_blankets_per_batch
    steps, repeats = 1, run.sizes["repeats"]
    for size in run.sizes["batching"]:
        count = blanket_count(size, run.model.blanket_size, run.settings.overlap)
        forwards = (1 + 2 * repeats) * count * steps
        if not run.fits_budget("gpu_batched_vs_loop", quantity, forwards, 2):
            continue
        measured = time_batching(run.denoiser, run.model, run.settings, size,
                                 {"batched": cap, "loop": 1}, steps, repeats,
                                 run.device)  # fmt: skip
        exact = run.settings.precision == "float32" and not run.cuda
        difference = sample_difference(measured["samples"], 1e-3 if exact else 3e-2)
        per_step = measured["seconds_per_step"]
        ratio = per_step["loop"] / per_step["batched"]
        record(run.arguments, "gpu_batched_vs_loop", quantity, ratio,
               f">= {TARGETS['batching']} at N >= 8 on a GPU",
               ratio >= TARGETS["batching"] if run.cuda and count >= 8 else None,
               {**run.inputs, "T": size, "N": measured["count"], "K": run.model.blanket_size,
                "O": run.settings.overlap, "max_blankets_per_batch": cap,
                "sampler": run.settings.sampler, "precision": run.settings.precision,
                "steps": steps, "repeats": repeats},
               {"batched_s_per_step": round(per_step["batched"], 4),
                "loop_s_per_step": round(per_step["loop"], 4),
                "max_abs_difference": float(f"{difference:.2g}")})  # fmt: skip


def member_at(
    run: Run, request: MemberRequest, precision: str, steps: int | None = None
) -> MemberResult:
    """`request` sampled by generate_member at `precision` (and `steps`, if given)."""
    settings = replace(request.settings, precision=precision, steps=steps or request.settings.steps)
    member = replace(request, settings=settings)
    return generate_member(run.denoiser, run.model, member, run.device, progress=False)


def measure_precision(run: Run) -> None:
    """Part 4: bfloat16 and float16 vs float32 per step of a member, and their latents."""
    quantity = "float32 / {} s per step"
    size, steps = run.sizes["member"], run.sizes["precision_steps"]
    repeats = run.sizes["member_repeats"]
    count = blanket_count(size, run.model.blanket_size, run.settings.overlap)
    estimate = 3 * (1 + repeats * steps) * count
    if not run.fits_budget("gpu_precision", quantity.format("reduced"), estimate, 3):
        return
    request = default_plan(run.arguments, run.path, size, steps).request(size, START, 0)
    precisions = ("float32", "bfloat16", "float16")
    results, seconds, failed = {}, dict.fromkeys(precisions, math.inf), {}
    for repeat in range(1 + repeats):  # the first, one-step members warm each precision up
        for precision in precisions:
            if precision in failed:
                continue
            began = time.perf_counter()
            try:
                result = member_at(run, request, precision, steps=1 if repeat == 0 else None)
            except (NonFiniteSampleError, RuntimeError) as error:
                # A CPU may lack a precision's kernels; on a GPU, only NaN/Inf is a result.
                if run.cuda and not isinstance(error, NonFiniteSampleError):
                    raise
                failed[precision] = f"{type(error).__name__}: {str(error)[:300]}"
                continue
            if repeat > 0:
                seconds[precision] = min(seconds[precision], time.perf_counter() - began)
                results[precision] = result
    report_precision(run, quantity, steps, repeats, results, seconds, failed)


def report_precision(
    run: Run, quantity: str, steps: int, repeats: int, results: dict, seconds: dict, failed: dict
) -> None:
    """The rows of part 4: per reduced precision, its speed-up and its latents' difference."""
    if "float32" in failed:
        raise RuntimeError(f"the float32 member failed: {failed['float32']}")
    reference = results["float32"].latent
    inputs = {**run.inputs, "T": run.sizes["member"], "steps": steps, "repeats": repeats,
              "sampler": run.settings.sampler, "N": results["float32"].blanket_count}  # fmt: skip
    for precision in ("bfloat16", "float16"):
        if precision in failed:
            not_measured(run.arguments, "gpu_precision", quantity.format(precision),
                         f">= {TARGETS['precision']}", inputs, failed[precision])  # fmt: skip
            continue
        ratio = seconds["float32"] / seconds[precision]
        difference = np.abs(results[precision].latent - reference)
        record(run.arguments, "gpu_precision", quantity.format(precision), ratio,
               f">= {TARGETS['precision']} on a GPU",
               ratio >= TARGETS["precision"] if run.cuda else None, inputs,
               {"float32_s_per_step": round(seconds["float32"] / steps, 4),
                f"{precision}_s_per_step": round(seconds[precision] / steps, 4),
                "max_abs_difference": float(f"{difference.max():.3g}"),
                "mean_abs_difference": float(f"{difference.mean():.3g}"),
                "float32_latent_std": float(f"{reference.std():.3g}")})  # fmt: skip


def measure_overhead(run: Run) -> None:
    """Part 3: time outside the denoiser's forward in a member, through generate_member."""
    quantity = "time outside the denoiser forward / generation time"
    size, steps = run.sizes["member"], run.sizes["overhead_steps"]
    repeats = run.sizes["member_repeats"]
    if not run.fits_budget("gpu_overhead", quantity, 2 * (1 + repeats * steps), 3):
        return
    plan = default_plan(run.arguments, run.path, size, steps)
    measured = in_process_overhead(
        run.path, plan, size, run.arguments.threads, repeats, str(run.device)
    )
    fraction = 1 - measured["denoiser_s"] / measured["total_s"]
    record(run.arguments, "gpu_overhead", quantity, fraction,
           f"<= {TARGETS['overhead']} on a GPU",
           fraction <= TARGETS["overhead"] if run.cuda else None,
           {**run.inputs, "T": size, "N": measured["blankets"], "steps": steps,
            "sampler": run.settings.sampler, "precision": run.settings.precision,
            "repeats": repeats},
           {key: round(measured[key], 4)
            for key in ("total_s", "denoiser_s", "write_s")})  # fmt: skip


def job_seconds_per_step(run: Run, plan, size: int, processes: int) -> tuple[float, Path]:
    """Run the real generation job (scripts/generate.py, under torchrun when P > 1) for one
    member: (seconds per step from its log, its shard)."""
    output = ROOT / f"processes/P{processes}.zarr"
    shutil.rmtree(output, ignore_errors=True)
    command = [*shlex.split(launcher_command(processes)), str(REPO / "scripts/generate.py"),
               "--settings", plan.settings.to_json(), "--size", str(size), "--date", START,
               "--member", "0", "--output", str(output),
               "--threads", str(max(2, run.arguments.threads))]  # fmt: skip
    env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(processes)))} if run.cuda else {}
    _, log = run_command(command, env=env)
    per_step = [float(value) for value in LOG_STEP.findall(log)]
    if not per_step:
        raise RuntimeError(f"no 'sampled in' line in the job's log:\n{log[-3000:]}")
    return max(per_step), output


def measure_processes(run: Run) -> None:
    """Part 6: one member with P = 2 processes vs P = 1 (two GPUs, or two CPU processes)."""
    quantity = "P = 1 / P = 2 processes s per step"
    size, steps = run.sizes["processes"], run.sizes["processes_steps"]
    if run.cuda and torch.cuda.device_count() < 2:
        reason = f"{torch.cuda.device_count()} CUDA device here; P = 2 needs two"
        not_measured(run.arguments, "gpu_processes", quantity, "none", run.inputs, reason)
        return
    count = blanket_count(size, run.model.blanket_size, run.settings.overlap)
    repeats = run.sizes["member_repeats"]
    if not run.fits_budget("gpu_processes", quantity, 2 * repeats * count * steps, 40):
        return
    plan = default_plan(run.arguments, run.path, size, steps)
    per_step = {1: math.inf, 2: math.inf}
    for _ in range(repeats):
        for processes in per_step:
            seconds, _ = job_seconds_per_step(run, plan, size, processes)
            per_step[processes] = min(per_step[processes], seconds)
    shards = [read_shard(ROOT / f"processes/P{p}.zarr")["latent"].values for p in per_step]
    record(run.arguments, "gpu_processes", quantity, per_step[1] / per_step[2], "none", None,
           {**run.inputs, "T": size, "N": count, "steps": steps, "repeats": repeats,
            "backend": "nccl" if run.cuda else "gloo"},
           {"p1_s_per_step": per_step[1], "p2_s_per_step": per_step[2],
            "max_abs_difference": float(f"{np.abs(shards[0] - shards[1]).max():.3g}")})  # fmt: skip


def workflow_config(run: Run) -> dict:
    """--config with the demo model (shipped weights), one start date x 2 members, and the
    generation jobs on one GPU (on the CPU with --device cpu)."""
    config = run_config(run.arguments)
    hardware = dict(config.get("hardware") or {})
    hardware["gen"] = {**(hardware.get("gen") or {}), "gpus": 1 if run.cuda else 0}
    config.update(
        model_path=str(shipped_demo_model()),
        start_dates=config["start_dates"][:1],
        num_samples_per_date=2,
        output_dir="results",
        hardware=hardware,
    )
    if run.sizes["workflow_steps"] is not None:
        config["diffusion"] = {**config["diffusion"], "num_steps": run.sizes["workflow_steps"]}
    return config


def run_workflow(run: Run) -> None:
    """Part 5: a real `snakemake --cores all` run whose shards must say where they ran."""
    expected = "cuda" if run.cuda else "cpu"
    quantity = f"shards made on {expected} / members"
    if not run.fits_budget("gpu_workflow", quantity, 0, 60):
        return
    workdir = ROOT / "workflow"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = workflow_config(run)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"),
               "--configfile", str(workdir / "config.yaml"),
               "--directory", str(workdir), "--cores", "all"]  # fmt: skip
    wall, _ = run_command(command, cwd=workdir)
    shards = sorted((workdir / "results/prior").glob("*/*h/shards/*/*.zarr"))
    attributes = [read_shard(shard).attrs for shard in shards]
    devices = [attrs["device"] for attrs in attributes]
    made_there = sum(device.startswith(expected) for device in devices)
    members = config["num_samples_per_date"]
    record(run.arguments, "gpu_workflow", quantity, made_there / members,
           f"= 1 ({members} members, device={expected})",
           made_there == members == len(shards),
           {**run.inputs, "model": "demo (shipped weights)", "members": members,
            "sampler": config["diffusion"]["sampler"]["type"],
            "steps": config["diffusion"]["num_steps"], "gpus": config["hardware"]["gen"]["gpus"]},
           {"wall_s": round(wall, 1), "devices": devices,
            "job_wall_s": [attrs["wall_time_s"] for attrs in attributes]})  # fmt: skip


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    arguments.add_argument(
        "--budget-minutes",
        type=float,
        default=7.0,
        help="parts whose estimate would pass this (from the start) are recorded as not "
        "measured; 7 leaves a minute of 8 for creating the environment",
    )
    arguments = arguments.parse_args()
    began = time.perf_counter()
    run = set_up(arguments)
    for part in (measure_memory, measure_batching, measure_overhead, measure_precision,
                 run_workflow, measure_processes):  # fmt: skip
        part(run)
    print(f"gpu: done in {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
