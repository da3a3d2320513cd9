"""The loss plot the training examples save: the training-split and held-out losses side by
side, one curve per optimizer, log scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LossCurves", "save_loss_panels"]


class LossCurves(NamedTuple):
    """Losses measured at ``steps`` (0 is before the first step), one list per optimizer name."""

    steps: list[int]
    train: dict[str, list[float]]
    held_out: dict[str, list[float]]


def _draw(ax: Any, curves: Mapping[str, Sequence[float]], steps: Sequence[int], ylabel: str) -> None:
    from matplotlib.ticker import FuncFormatter

    for name, losses in curves.items():
        ax.plot(steps, losses, label=name)
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
