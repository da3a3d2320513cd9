"""The loss plot the training examples save: one curve per optimizer, log scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["save_loss_plot"]


def save_loss_plot(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str,
    steps: Sequence[int] | None = None,
    ylabel: str = "train loss",
) -> Path:
    """Plot each named loss curve against ``steps`` (default ``0, 1, 2, ...``) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for name, losses in curves.items():
        xs = list(steps) if steps is not None else list(range(len(losses)))
        ax.plot(xs, losses, label=name)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    values = [v for losses in curves.values() for v in losses if v > 0]
    if values and max(values) < 10 * min(values):  # less than a decade: label the minor ticks too
        ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
