"""Time per training step of every configuration, measured alone on a quiet machine.

The sweep (``run.py``) times its steps while the other framework trains beside it, so its
ms/step column says how the runs went, not what a step costs. Run this with nothing else
running: ``python benchmarks/training/step_time.py [--tasks lm] [--steps 30]``. Each
configuration runs ``--steps`` training steps (PyTorch: timed inside a short run; JAX: a
jitted step timed over the same number of calls after two warm-up calls), one thread per
framework, one configuration at a time; it prints a markdown table (ms per step, and the
ratio to AdamW's step in that framework).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from common import CONFIGS, TASKS
from run import FRAMEWORK_NAMES, load_data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="lm")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    print("| task | framework | configuration | ms/step | × AdamW |")
    print("|---|---|---|---|---|")
    for name in args.tasks.split(","):
        task = replace(TASKS[name], steps=args.steps, eval_every=args.steps)
        data = load_data(task)
        for framework in ("torch", "jax"):
            times = {}
            for key in task.configs[framework]:
                lr = task.grid(key)[0]
                if framework == "torch":
                    import torch
                    import torch_runs

                    torch.set_num_threads(1)
                    times[key] = torch_runs.run(task, key, lr, 0, data)[1]
                else:
                    import jax_runs

                    times[key] = jax_runs.JaxTask(task, data)._time_step(key, lr, 0, n=args.steps)
            adamw = times.get("adamw")
            for key, ms in times.items():
                ratio = f"{ms / adamw:.2f}" if adamw else ""
                print(f"| {name} | {FRAMEWORK_NAMES[framework]} | {CONFIGS[key].label} | {ms:.1f} | {ratio} |",
                      flush=True)


if __name__ == "__main__":
    main()
