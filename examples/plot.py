"""The loss plots the training examples save: one curve per optimizer, log scale.

``save_loss_panels`` draws the training-split and held-out losses side by side (the digits
and charlm examples); ``save_loss_plot`` draws one panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LossCurves", "save_loss_panels", "save_loss_plot"]


class LossCurves(NamedTuple):
    """Losses measured at ``steps`` (0 is before the first step), one list per optimizer name."""

    steps: list[int]
    train: dict[str, list[float]]
    held_out: dict[str, list[float]]


def _draw(ax: Any, curves: Mapping[str, Sequence[float]], steps: Sequence[int] | None, ylabel: str) -> None:
    from matplotlib.ticker import FuncFormatter

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
    ax.grid(alpha=0.3, which="both")
    ax.legend()


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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

    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    _draw(ax, curves, steps, ylabel)
    ax.set_title(title)
    return _save(fig, path)


def save_loss_panels(curves: LossCurves, path: str | Path, *, title: str, held_out_label: str = "held-out loss",
                     train_label: str = "training-split loss") -> Path:
    """Two panels against ``curves.steps``: the training-split loss (left) and the held-out loss (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.0), layout="constrained")
    _draw(left, curves.train, curves.steps, train_label)
    _draw(right, curves.held_out, curves.steps, held_out_label)
    left.set_title("train")
    right.set_title("held out")
    fig.suptitle(title)
    return _save(fig, path)
