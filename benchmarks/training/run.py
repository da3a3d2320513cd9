"""Training benchmark: how fast our Muon configurations train real models, against the peers.

Run ``python benchmarks/training/run.py`` (26 minutes on 2 busy CPU cores; one thread per
framework) to write ``docs/training.md`` and the plots ``docs/training_digits.png`` and
``docs/training_charlm.png``. ``--quick`` is a smoke run of every path (20 steps, 1 seed,
1 lr per configuration: about a minute, written to a temporary folder unless ``--out`` is
given). ``--save-runs FILE`` keeps every curve; ``--from-runs FILE`` re-renders from it.

Two tasks (``common.TASKS``), each trained by every configuration (``common.CONFIGS``) at
each learning rate of its family's grid (``common.LR_GRIDS``) and 3 seeds (the seed sets
the initial weights and the batch order, identical across optimizers and frameworks):

* digits: the MLP of ``examples/digits_*.py``; the loss is measured on the whole training
  split after every step; target 0.1.
* charlm: the char transformer of ``examples/charlm_*.py`` (Flax: stacked blocks under
  ``nnx.scan``); the loss is measured on 64 fixed windows of the text every 10 steps;
  target 1.8.

The metric is the first measured step from which the loss stays at or under the target
for the rest of the run; a configuration's best lr is the one with the fewest such steps
(median over the seeds; ties go to the lower median final loss).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# One thread per framework, set before torch and jax start: on a shared 2-core machine
# two threads made torch 10-20x slower, and one thread keeps the timings comparable.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from common import CONFIGS, LR_GRIDS, TASKS, RunResult, Task, steps_to_stay
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python benchmarks/training/run.py"
FRAMEWORK_NAMES = {"torch": "PyTorch", "jax": "JAX"}
INF = float("inf")


@dataclass
class Summary:
    """One (task, framework, config, lr) over its seeds."""

    config: str
    framework: str
    lr: float
    steps: list[int | None]  # steps to stay under the target, per seed
    first: list[int | None]  # first measured step at or under the target, per seed
    finals: list[float]
    ms: list[float]
    median_seed: int  # index into the seeds of the run whose steps are the median

    @property
    def median_steps(self) -> float:
        return statistics.median(INF if s is None else s for s in self.steps)

    @property
    def median_first(self) -> float:
        return statistics.median(INF if s is None else s for s in self.first)

    @property
    def median_final(self) -> float:
        return statistics.median(self.finals)


def summarise(task: Task, runs: list[RunResult]) -> dict[tuple[str, str], list[Summary]]:
    """Group runs by (framework, config) and lr, in grid order."""
    grouped: dict[tuple[str, str, float], list[RunResult]] = defaultdict(list)
    for r in runs:
        grouped[(r.framework, r.config, r.lr)].append(r)
    out: dict[tuple[str, str], list[Summary]] = defaultdict(list)
    for (framework, config, lr), rs in sorted(grouped.items(), key=lambda kv: kv[0][2]):
        rs = sorted(rs, key=lambda r: r.seed)
        losses = [np.asarray(r.losses) for r in rs]
        steps = [steps_to_stay(task.eval_steps, loss, task.target) for loss in losses]
        first = [int(task.eval_steps[np.argmax(loss <= task.target)]) if (loss <= task.target).any() else None
                 for loss in losses]
        finals = [float(loss[-1]) for loss in losses]
        order = sorted(range(len(rs)), key=lambda i: (INF if steps[i] is None else steps[i], finals[i]))
        out[(framework, config)].append(Summary(config, framework, lr, steps, first, finals,
                                                [r.ms_per_step for r in rs], order[len(order) // 2]))
    return out


def best(summaries: list[Summary]) -> Summary:
    return min(summaries, key=lambda s: (s.median_steps, s.median_final if np.isfinite(s.median_final) else INF))


def _fmt_steps(value: float) -> str:
    return "not reached" if value == INF else f"{value:g}"


def _fmt_seeds(values: Iterable[int | None]) -> str:
    return ", ".join("–" if v is None else str(v) for v in values)


def _fmt_loss(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "nan"


def results_table(task: Task, summaries: dict[tuple[str, str], list[Summary]]) -> list[str]:
    lines = [
        f"| configuration | framework | best lr (grid) | steps to stay ≤ {task.target:g}: median (per seed) "
        f"| first ≤ {task.target:g} | final loss | ms/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, config in CONFIGS.items():
        for framework in ("torch", "jax"):
            if (framework, key) not in summaries:
                continue
            b = best(summaries[(framework, key)])
            grid = "/".join(f"{lr:g}" for lr in LR_GRIDS[config.scale])
            lines.append(
                f"| {config.label} | {FRAMEWORK_NAMES[framework]} | {b.lr:g} ({grid}) "
                f"| **{_fmt_steps(b.median_steps)}** ({_fmt_seeds(b.steps)}) | {_fmt_steps(b.median_first)} "
                f"| {_fmt_loss(b.median_final)} | {statistics.median(b.ms):.1f} |")
    return lines


def sweep_table(task: Task, summaries: dict[tuple[str, str], list[Summary]]) -> list[str]:
    """Median steps (and median final loss) at every lr of the grid."""
    lines = ["| configuration | framework | lr: steps to stay ≤ target (final loss), median of the seeds |",
             "|---|---|---|"]
    for key, config in CONFIGS.items():
        for framework in ("torch", "jax"):
            if (framework, key) not in summaries:
                continue
            cells = "; ".join(f"{s.lr:g}: {_fmt_steps(s.median_steps)} ({_fmt_loss(s.median_final)})"
                              for s in summaries[(framework, key)])
            lines.append(f"| {config.label} | {FRAMEWORK_NAMES[framework]} | {cells} |")
    return lines


def summary_table(tasks: list[Task], all_summaries: dict[str, dict[tuple[str, str], list[Summary]]]) -> list[str]:
    """One line per configuration: median steps to stay under the target (best lr) per task and framework."""
    columns = [(t, fw) for t in tasks for fw in ("torch", "jax") if any(k[0] == fw for k in all_summaries[t.key])]
    lines = [
        "| configuration | " + " | ".join(f"{t.key} ≤ {t.target:g}, {FRAMEWORK_NAMES[fw]}" for t, fw in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, config in CONFIGS.items():
        cells = []
        for task, framework in columns:
            summaries = all_summaries[task.key].get((framework, key))
            if summaries is None:
                cells.append("")
                continue
            b = best(summaries)
            cells.append(f"{_fmt_steps(b.median_steps)} (lr {b.lr:g})")
        if any(cells):
            lines.append(f"| {config.label} | " + " | ".join(cells) + " |")
    return lines


def target_check(task: Task, summaries: dict[tuple[str, str], list[Summary]]) -> tuple[list[str], bool, bool]:
    """Whether the recommended config needs fewer steps than each peer, framework by framework.

    Returns the lines, whether it beats every peer at its defaults, and whether it beats every peer.
    """
    lines, met_defaults, met_all = [], True, True
    for framework in ("torch", "jax"):
        if (framework, "recommended") not in summaries:
            continue
        ours = best(summaries[(framework, "recommended")]).median_steps
        for key, config in CONFIGS.items():
            if config.ours or (framework, key) not in summaries:
                continue
            theirs = best(summaries[(framework, key)]).median_steps
            ok = ours < theirs
            met_all &= ok
            met_defaults &= ok or config.tuned
            lines.append(f"- {FRAMEWORK_NAMES[framework]}: recommended {_fmt_steps(ours)} vs {config.label} "
                         f"{_fmt_steps(theirs)}: {'fewer' if ok else '**not fewer**'}")
    return lines, met_defaults, met_all


def plot(task: Task, runs: list[RunResult], summaries: dict[tuple[str, str], list[Summary]], path: Path) -> None:
    """Best-lr loss curve (median seed) of every configuration, one panel per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    frameworks = [f for f in ("torch", "jax") if any(k[0] == f for k in summaries)]
    fig, axes = plt.subplots(len(frameworks), 1, figsize=(8, 7 * len(frameworks)), layout="constrained",
                             squeeze=False)
    by_key = {(r.framework, r.config, r.lr, r.seed): r for r in runs}
    colors = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive",
                                   "cyan")] + ["navy", "darkgoldenrod"]
    for ax, framework in zip(axes[:, 0], frameworks, strict=True):
        for i, key in enumerate(CONFIGS):
            if (framework, key) not in summaries:
                continue
            b = best(summaries[(framework, key)])
            seeds = sorted({r.seed for r in runs if (r.framework, r.config, r.lr) == (framework, key, b.lr)})
            run = by_key[(framework, key, b.lr, seeds[b.median_seed])]
            label = f"{CONFIGS[key].label.replace('**', '').replace('`', '')}, lr {b.lr:g}"
            color, width = ("black", 2.6) if key == "recommended" else (colors[i % len(colors)], 1.3)
            ax.plot(task.eval_steps, run.losses, label=label, ls="-" if CONFIGS[key].ours else "--",
                    color=color, lw=width)
        ax.axhline(task.target, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        if task.key == "charlm":  # less than a decade: label the minor ticks too, plainly
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.set_ylabel(f"loss ({task.loss_name.split(' (')[0]})", fontsize=8)
        ax.set_title(f"{task.title}\n{FRAMEWORK_NAMES[framework]}: each configuration at its best lr, "
                     f"median seed; dotted: the target {task.target:g}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_all(tasks: list[Task], frameworks: list[str], seeds: tuple[int, ...], quick: bool) -> list[RunResult]:
    from data import Digits, Text, load_digits, load_text

    data: dict[str, Digits | Text] = {"digits": load_digits(), "charlm": load_text()}
    jobs = [(task, fw, key) for task in tasks for fw in frameworks for key in task.configs.get(fw, ())]
    lrs_of = {key: (LR_GRIDS[c.scale][1],) if quick else LR_GRIDS[c.scale] for key, c in CONFIGS.items()}
    total = sum(len(lrs_of[key]) * len(seeds) for _, _, key in jobs)
    results: list[RunResult] = []
    with tqdm(total=total, desc="training runs", unit="run") as bar:
        for task, framework, key in jobs:
            bar.set_postfix_str(f"{task.key}/{framework}/{key}")
            if framework == "torch":
                import torch
                import torch_runs

                torch.set_num_threads(1)
                for seed in seeds:
                    for lr in lrs_of[key]:
                        losses, ms = torch_runs.run(task, key, lr, seed, data[task.key])
                        results.append(RunResult(task.key, framework, key, lr, seed, losses, ms))
                        bar.update()
            else:
                import jax_runs

                jax_task = jax_runs.JaxTask(task, data[task.key])
                out = jax_task.run(key, lrs_of[key], seeds, progress=bar.update)
                for (lr, seed), (losses, ms) in out.items():
                    results.append(RunResult(task.key, framework, key, lr, seed, losses, ms))
    return results


#: The recommended configuration, one line per framework.
TORCH_LINE = ('opt = muon_torch.Muon(muon_torch.param_groups(model, adamw=("embed", "head"), betas=(0.9, 0.95)), '
              'lr=0.01, method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")')
JAX_LINE = ('tx = muon_jax.muon_with_adamw(0.01, adamw=("embed", "head"), adamw_betas=(0.9, 0.95), '
            'method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")')
RECOMMENDED = f"""\
Muon with Polar Express orthogonalisation and Nesterov momentum on the hidden matrices, step
sizes matched to AdamW's (`adjust_lr="match_rms_adamw"`), and AdamW (betas 0.9, 0.95, the
same lr) for the input layer or embeddings (`embed`), the output layer (`head`) and every
parameter that is not a matrix. One lr for both parts; the sweep's best was 0.01 (digits)
and 0.02 (charlm), 2 to 8 times the best AdamW lr.

```python
# PyTorch
{TORCH_LINE}
# JAX (add matrix_axes=... for stacked layers, as in examples/charlm_flax.py)
{JAX_LINE}
```

`adamw=` takes substrings of parameter names (or a predicate): name your first and last
layers accordingly, or list their names. Worked examples that train both tasks with it and
with AdamW, with a progress bar and a loss plot: `examples/digits_torch.py`,
`examples/digits_flax.py` (10–15 s each), `examples/charlm_torch.py`, `examples/charlm_flax.py`
(30–40 s each; they also write a few lines of text)."""


def write_report(tasks: list[Task], runs: list[RunResult], out: Path, *, seconds: float, quick: bool) -> Path:
    all_summaries = {t.key: summarise(t, [r for r in runs if r.task == t.key]) for t in tasks}
    checks = {t.key: target_check(t, all_summaries[t.key]) for t in tasks}
    met_defaults = all(c[1] for c in checks.values())
    met_all = all(c[2] for c in checks.values())
    n_seeds = len({r.seed for r in runs})
    lines = [
        "# Training benchmark",
        "",
        "How many steps each optimizer needs to train two small real models until the training loss",
        "stays under a target, in PyTorch and in JAX. Reproduce this file and its two plots with",
        "",
        "```bash",
        f"{COMMAND}{' --quick' if quick else ''}",
        "```",
        "",
        f"(measured on {platform.machine()} CPU, 2 cores shared with other work, one thread per framework; "
        f"torch {_version('torch')}, jax {_version('jax')}, optax {_version('optax')}, flax {_version('flax')}; "
        f"the whole sweep took {seconds / 60:.0f} minutes).",
        "",
        "## Summary",
        "",
        f"Steps until the loss stays at or under the target for the rest of the run: median of {n_seeds} seeds, "
        "at each configuration's best learning rate (lower is better; the details, the final losses and "
        "the time per step are in the sections below).",
        "",
        *summary_table(tasks, all_summaries),
        "",
        "### Recommended configuration",
        "",
        RECOMMENDED,
        "",
        "### Target: fewer steps than every peer on both tasks",
        "",
        f"Median of {n_seeds} seeds, each configuration at its best lr:",
        "",
        f"* against the peers the issue names, at their own defaults but the lr (AdamW, torch.optim.Muon "
        f"+ AdamW, optax.contrib.muon): **{'met' if met_defaults else 'not met'}**;",
        f"* against those and the two Muon peers given our options as well: **{'met' if met_all else 'not met'}**.",
        "",
    ]
    for task in tasks:
        lines += [f"{task.key}:", "", *checks[task.key][0], ""]
    lines += [DISCUSSION, "", *setup_lines(), ""]
    for task in tasks:
        task_runs = [r for r in runs if r.task == task.key]
        if not task_runs:
            continue
        summaries = all_summaries[task.key]
        png = out / f"training_{task.key}.png"
        plot(task, task_runs, summaries, png)
        lines += [
            f"## {task.key}: {task.title}",
            "",
            f"![{task.key} loss curves]({png.name})",
            "",
            f"Best lr of each configuration; loss = {task.loss_name}.",
            "",
            *results_table(task, summaries),
            "",
            "Every learning rate:",
            "",
            *sweep_table(task, summaries),
            "",
        ]
    path = out / "training.md"
    path.write_text("\n".join(lines))
    return path


DISCUSSION = """\
### Why, and what the figures say

* **The options matter more than the polynomial.** With the reference options (every matrix to
  Muon, spectral-norm steps, no Nesterov) the orthogonalisation decides: on digits `ns` (5
  cubic steps, far from orthogonal) needs 65 steps, `quintic` 53, `polar_express` and `svd` 47;
  on charlm `ns` never gets under 1.8 (final 2.15) and `polar_express` takes 250. Nesterov and
  AdamW-matched steps (biases to AdamW) bring `polar_express` to 29 on digits (PyTorch; in JAX
  the same lr bounced back late and 0.005 gave 54) and 190 on charlm; giving the input layer /
  embeddings and the output head to AdamW as well brings it to 16 and 170. With those options
  `quintic` and `polar_express` are within one measurement of each other (17 vs 16, 170 vs 170).
* **The Muon peers at their defaults** send every matrix, the input and output layers included,
  to Muon with spectral-norm steps: torch.optim.Muon needs 42 and 230 steps, optax.contrib.muon
  72 and 220. **AdamW** is strong on the digits MLP (26 steps, and by far the lowest final loss)
  and never gets under 1.8 on the transformer in 300 steps (best final loss 2.18).
* **Why the target is not met against every peer:** the options that make the difference are
  not ours alone. optax.contrib.muon given the same split, AdamW-matched steps and AdamW betas
  needs 15 steps on digits (one step ahead of ours on every seed) and 170 on charlm in JAX, where
  ours needs 180 (our PyTorch twin: 170; the charlm loss is measured every 10 steps and the seeds
  spread by as much). torch.optim.Muon given the same options needs 17 and 190. So against
  optax.contrib.muon configured like ours this is a tie at the resolution of the measure, not a
  win. No option we offer moved it in pilots: `beta=0.95` (optax's default) made our digits runs
  unstable (276, 17 and 58 steps), `weight_decay=0` changed nothing.
* **Where the grid ends:** the AdamW-sized Muon configurations are best at the grid's top
  (0.02) on charlm; a pilot at 0.04 (PyTorch, 3 seeds) was slower for ours (210 steps), ours
  with `quintic` (190) and torch.optim.Muon's hybrid (240). AdamW is best at the grid's bottom
  (0.0025) on charlm; at 0.001 its final loss was worse (2.34, one seed).
* **Constant learning rate:** one grid step above its best lr, almost every configuration first
  dips under the digits target and then bounces back above it (the earlier "first time under"
  measure rewarded that). An orthogonalised step keeps its size when the gradient turns to
  noise: at its best lr our recommended configuration levels off near 1e-2 on digits, where it
  reaches 2e-7 at half that lr and AdamW reaches 1e-4. A decaying lr would likely help every
  Muon here (not measured).
* **Wall time:** a Muon step costs 4–5× an AdamW step on the digits MLP (a 256×256
  orthogonalisation against a tiny model; 16 steps × 5.4 ms take longer than AdamW's
  26 × 1.4 ms) and about 1.1× on the transformer, where the model dominates. torch.optim.Muon's
  step is faster on digits because it runs Newton–Schulz in bfloat16, whose matmuls are 4× as
  fast as float32 ones on this CPU (our `orthogonalize_dtype="bfloat16"` does the same; not
  benchmarked here). JAX's CPU backward is slower than torch's on the transformer (31 vs 25 ms
  a step) whatever the optimizer."""


def setup_lines() -> list[str]:
    return [
        "## Setup",
        "",
        "* **digits**: scikit-learn's 8×8 digits, 80/20 stratified split, standardised; MLP "
        "64→256→256→10 (layers `embed`, `hidden`, `head`), ReLU, torch's default init drawn with NumPy; "
        "batch 128 drawn without replacement each step; "
        f"{TASKS['digits'].steps} steps; loss = {TASKS['digits'].loss_name}, after every step; "
        f"**target {TASKS['digits'].target:g}**.",
        "* **charlm**: the English dataset descriptions that ship with scikit-learn "
        "(`sklearn/datasets/descr/*.rst`, 43,067 characters, 92 symbols), character level; "
        "transformer with 2 pre-norm blocks (causal attention, 4 heads; GELU MLP ×4), d_model 64, "
        "context 64, parameter-free RMS norms, no biases, untied `head`, GPT-2 init drawn with NumPy; "
        "in Flax the blocks are built with `nnx.vmap` and run with `nnx.scan`, so each block weight is "
        "one `(layers, in, out)` array given to Muon as `MatrixAxes(rows=1, cols=2)` "
        "(optax.contrib.muon: `MuonDimensionNumbers(1, 2)`); "
        f"batch 32 random windows; {TASKS['charlm'].steps} steps; loss = {TASKS['charlm'].loss_name}, "
        f"every {TASKS['charlm'].eval_every} steps; **target {TASKS['charlm'].target:g}** "
        "(the best final losses are 1.4–1.5).",
        "* Both frameworks start from the same weights and see the same batches (`examples/data.py`); "
        "the seed (0, 1, 2) sets both. The twins' curves agree until float rounding makes the "
        "trajectories part.",
        "* **Metric**: the first measured step from which the loss stays at or under the target for "
        "the rest of the run (\"not reached\" if the run ends above it); the median of the 3 seeds. "
        "\"first ≤\" is the first step at or under the target (the issue's earlier measure), for "
        "reference. Each configuration's best lr is the one with the fewest median steps (ties: the "
        "lower median final loss); its final loss and ms/step (median of the seeds) are shown. "
        "ms/step is the wall time of a training step (forward, backward, update; PyTorch: timed "
        "inside the runs; JAX: a jitted step timed over 20 calls); it is as noisy as a shared "
        "machine makes it, so compare it within a framework.",
        "* **Learning rates**, the same grid for every configuration of a family: "
        f"spectral-norm steps (no lr adjustment, or Keller Jordan's `original`) {_grid('spectral')}; "
        f"AdamW-sized steps (AdamW, and Muon with `match_rms_adamw` / `consistent_rms=0.2`) {_grid('adamw')}. "
        "Every hybrid gives its AdamW part the same lr (optax.contrib.muon's default). The learning "
        "rate is constant (no warm-up, no decay).",
        "* **Peers** run with their own defaults but the lr: AdamW with weight decay 0.01 in both "
        "frameworks (betas 0.9, 0.999); torch.optim.Muon (quintic in bf16, momentum 0.95, nesterov, "
        "wd 0.1, `original` lr scaling) with torch.optim.AdamW (defaults, wd 0.01) for what it cannot "
        "take; optax.contrib.muon (quintic, beta 0.95, nesterov, width lr scaling, Adam for "
        "non-matrices, wd 0). Both Muon peers also run with everything we recommend that they offer: "
        "AdamW for `embed`, `head` and non-matrices with betas (0.9, 0.95), and AdamW-matched step "
        "sizes, so that the tables separate what the options are worth from what the Muon "
        "implementation is worth.",
        "* charlm: the full comparison runs in PyTorch; JAX runs the reference, the recommended "
        "configuration and optax.contrib.muon (both ways); AdamW on charlm runs in PyTorch.",
    ]


def _grid(scale: str) -> str:
    return "{" + ", ".join(f"{lr:g}" for lr in LR_GRIDS[scale]) + "}"


def _version(module: str) -> str:
    from importlib.metadata import version

    try:
        return version(module)
    except Exception:
        return "?"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 1 seed, 1 lr per config")
    parser.add_argument("--out", type=Path, help="folder for training.md and the PNGs (default: docs/; "
                        "with --quick, a temporary folder)")
    parser.add_argument("--tasks", default="digits,charlm")
    parser.add_argument("--frameworks", default="torch,jax")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--save-runs", type=Path, help="also write every run's curve to this JSON file")
    parser.add_argument("--from-runs", type=Path, help="render the report from a --save-runs file, train nothing")
    args = parser.parse_args(argv)

    tasks = [TASKS[t] for t in args.tasks.split(",")]
    out = args.out or (Path(tempfile.gettempdir()) / "muon_training_quick" if args.quick else ROOT / "docs")
    if args.quick:
        tasks = [replace(t, steps=20) for t in tasks]
    start = time.perf_counter()
    if args.from_runs:
        saved = json.loads(args.from_runs.read_text())
        runs, seconds = [RunResult(**r) for r in saved["runs"]], saved["seconds"]
    else:
        runs = run_all(tasks, args.frameworks.split(","), tuple(range(args.seeds)), args.quick)
        seconds = time.perf_counter() - start
        if args.save_runs:
            args.save_runs.write_text(json.dumps({"seconds": seconds, "runs": [asdict(r) for r in runs]}))
    path = write_report(tasks, runs, out, seconds=seconds, quick=args.quick)
    print(path.read_text())
    print(f"wrote {path} in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
