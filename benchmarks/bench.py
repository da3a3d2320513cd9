"""Speed and memory of the Muon twins against their baselines, printed as markdown tables.

Run ``python benchmarks/bench.py`` (full sizes, a few minutes on a 2-core CPU) or
``python benchmarks/bench.py --quick`` (small sizes, a smoke run of every path). Options:
``--device cpu|cuda`` (``gpu`` is a synonym of ``cuda``: torch's ``cuda`` device and JAX's
``gpu`` platform; every tensor, array and model of the benchmark is placed there), ``--sizes
quick|cpu|gpu`` (the shapes; by default ``quick`` with ``--quick``, ``gpu`` on a GPU: from
2048x2048 to 8192x2048 and 2048x8192, and a 16x1024x1024 stack; else ``cpu``),
``--sections 1,2,3,5`` and ``--repeats N``. ``benchmarks/gpu.sh`` runs it on a GPU.

Sections:

1. the machine's float32 matmul ceiling in torch and in ``jax.jit`` (GFLOP/s);
2. orthogonalisation time: ours (``"ns"``, ``"svd"``), the reference formulation
   (coupled Newton–Schulz inverse square root of ``G^T G + eps I``, re-implemented
   here), and the quintic Newton–Schulz of ``optax.contrib`` and ``torch.optim``,
   as time, ratio to the reference in the same framework and % of the matmul ceiling;
3. optimizer step time on 6 ``Linear(1024, 1024)`` layers (``Linear(2048, 2048)`` with the
   GPU sizes), against AdamW, the frameworks' own Muon and a re-implementation of the
   reference step;
4. optimizer-state memory after one step, against the params' bytes;
5. the Newton–Schulz form the optimizers run (Gram or standard, by shape) against the
   standard form.

Timing: ``time.perf_counter``, one warm-up call, then the median of up to
``--repeats`` calls (fewer when a call is slow: see ``measure``). JAX functions are
jitted and compiled ahead of time, and every JAX timing waits on
``block_until_ready``; on CUDA every torch timing is bracketed by ``torch.cuda.synchronize``;
torch runs under ``torch.no_grad()``. float32 throughout, except the rows marked bf16 and
``torch.optim``'s Newton–Schulz, which casts to bfloat16 itself. The header gives both
frameworks' float32 matmul precision setting (on a GPU, JAX's default may use TF32).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

# bench.py runs torch and JAX in one process: on a GPU, JAX's default preallocation of 75% of its
# memory would leave torch the rest. Read when JAX's GPU backend starts.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import torch
from optax.contrib import _muon as optax_muon
from torch import nn
from torch.optim import _muon as torch_muon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _device  # benchmarks/_device.py: this script's folder is on sys.path

import muon_jax
import muon_torch
from muon_common import NS_METHODS, gram_costs, ns_schedule, use_gram
from muon_jax._orthogonalize import newton_schulz as jax_newton_schulz
from muon_torch._orthogonalize import newton_schulz as torch_newton_schulz
from muon_torch._orthogonalize import orthogonalize_ as torch_orthogonalize_

EPS = 1e-8
COMPILED = "torch.compile(opt.step, fullgraph=True)"
NS_ITERS = 5
QUINTIC = (3.4445, -4.7750, 2.0315)
LR = 0.02


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Median seconds of ``n`` timed calls."""

    seconds: float
    n: int
    warm_only: bool = False  # the single sample is the (un-warmed) first call

    @property
    def label(self) -> str:
        return "1 (no warm-up)" if self.warm_only else str(self.n)

    @property
    def ms(self) -> float:
        return self.seconds * 1e3


@dataclass
class Config:
    repeats: int  # most timed calls per case
    budget_s: float  # aim for about this much timed work per case
    slow_s: float  # a warm-up longer than this is the only sample


Sync = Callable[[Any], Any] | None


def measure_many(calls: Sequence[tuple[Callable[[], Any], Sync]], cfg: Config) -> list[Timing]:
    """Time calls that are compared with each other, interleaved: one warm-up call each, then
    ``n`` rounds in which every call runs once (each round starting one call later), and the
    median of its ``n`` times per call, ``1 <= n <= cfg.repeats``.

    Interleaving puts a change in the machine's speed during the run (other load, clock
    changes) on every compared call alike; timed one after the other, whole cases fell in
    faster or slower stretches (the same computation read 235 ms in one section and 429 ms in
    another of one run, measured). ``n`` is chosen so the rounds take about ``cfg.budget_s``
    per call, at least 3 when that fits. A call whose warm-up alone takes more than
    ``cfg.slow_s`` is timed by that call only (the JAX functions are compiled beforehand, so it
    is a plain run) and sits the rounds out. ``sync(out)`` waits for the work of a call that
    returned ``out`` (``jax_sync``, or :meth:`Place.sync` for torch); it also runs, with
    ``None``, before the clock starts, so no call is charged for work queued before it (on CUDA).
    """

    def timer(fn: Callable[[], Any], sync: Sync) -> Callable[[], float]:
        def call() -> float:
            if sync is not None:
                sync(None)
            start = time.perf_counter()
            out = fn()
            if sync is not None:
                sync(out)
            return time.perf_counter() - start

        return call

    timers = [timer(fn, sync) for fn, sync in calls]
    first = [call() for call in timers]
    rounds = [i for i, t in enumerate(first) if t <= cfg.slow_s]
    n = 0
    if rounds:
        n = max(1, min(cfg.repeats, int(cfg.budget_s * len(rounds) / max(sum(first[i] for i in rounds), 1e-6))))
    samples: dict[int, list[float]] = {i: [] for i in rounds}
    for r in range(n):
        for i in rounds[r % len(rounds):] + rounds[:r % len(rounds)]:
            samples[i].append(timers[i]())
    return [Timing(statistics.median(samples[i]), n) if i in samples else Timing(first[i], 1, warm_only=True)
            for i in range(len(calls))]


def measure(fn: Callable[[], Any], cfg: Config, sync: Sync = None) -> Timing:
    """:func:`measure_many` of one call."""
    return measure_many([(fn, sync)], cfg)[0]


def jax_sync(out: Any) -> Any:
    return jax.block_until_ready(out)


def aot(fn: Callable[..., Any], *args: Any, donate_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """``jax.jit(fn)`` compiled ahead of time for ``args``, so no timing sees a compile."""
    return jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()


@dataclass(frozen=True)
class Place:
    """Where the benchmarked work runs (``--device``): a torch device and a JAX device."""

    tdev: torch.device
    jdev: Any  # jax.Device

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        """``a`` as a torch tensor on ``tdev`` (on the CPU it shares ``a``'s memory)."""
        return torch.from_numpy(a).to(self.tdev)

    def array(self, a: np.ndarray) -> jax.Array:
        """``a`` as a JAX array committed to ``jdev``, its transfer done."""
        return jax.block_until_ready(jax.device_put(a, self.jdev))

    def sync(self, out: Any) -> None:
        """The torch ``sync`` of :func:`measure`: ``torch.cuda.synchronize`` on CUDA, nothing on the CPU."""
        if self.tdev.type == "cuda":
            torch.cuda.synchronize(self.tdev)


@dataclass(frozen=True)
class Sizes:
    """The shapes of a run (``--sizes``)."""

    matmul: int  # section 1: a square matmul of this size
    width: int  # section 3: Linear(width, width) layers
    shapes: Sequence[tuple[int, ...]]  # section 2: (m, n) or (batch, m, n)
    gram: Sequence[tuple[int, ...]]  # section 5: the same


#: The CPU sizes are those of docs/benchmark.md. On a GPU the shapes that matter are larger: single
#: matrices from 2048x2048 to 8192x2048 (and its transpose), and stacks of equal matrices.
_GPU_SHAPES = ((2048, 2048), (4096, 1024), (1024, 4096), (8192, 2048), (2048, 8192), (16, 1024, 1024))
SIZES = {
    "quick": Sizes(256, 128, ((64, 64), (128, 128), (128, 512), (512, 128), (6, 128, 128)),
                   ((512, 128), (128, 512), (256, 256), (4, 256, 64))),
    "cpu": Sizes(2048, 1024, ((512, 512), (1024, 1024), (1024, 4096), (4096, 1024), (6, 1024, 1024)),
                 ((4096, 1024), (1024, 4096), (2048, 1024), (1024, 1024))),
    "gpu": Sizes(8192, 2048, _GPU_SHAPES, _GPU_SHAPES),
}


# --------------------------------------------------------------------------- output


def table(headers: list[str], rows: Iterable[list[str]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def fmt_ms(t: Timing) -> str:
    return f"{t.ms:.2f}" if t.ms < 100 else f"{t.ms:.0f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def fmt_pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def fmt_bytes(b: int) -> str:
    return f"{b / 2**20:.2f} MiB"


# --------------------------------------------------------------------------- reference formulation


def reference_torch(G: torch.Tensor, iters: int = NS_ITERS, eps: float = EPS) -> torch.Tensor:
    """The reference: ``G (G^T G + eps I)^{-1/2}``, coupled Newton–Schulz on the column side."""
    n = G.shape[-1]
    eye = torch.eye(n, dtype=G.dtype, device=G.device)
    S = G.mT @ G + eps * eye
    trace = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    Y = S / (trace + eps)
    Z = eye.expand_as(S)
    for _ in range(iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y = Y @ T
        Z = T @ Z
    return G @ (Z / torch.sqrt(trace + eps))


def reference_jax(G: jax.Array, iters: int = NS_ITERS, eps: float = EPS) -> jax.Array:
    """:func:`reference_torch` in JAX."""
    n = G.shape[-1]
    eye = jnp.eye(n, dtype=G.dtype)
    S = jnp.swapaxes(G, -1, -2) @ G + eps * eye
    trace = jnp.trace(S, axis1=-2, axis2=-1)[..., None, None]
    Y = S / (trace + eps)
    Z = jnp.broadcast_to(eye, S.shape)
    for _ in range(iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y = Y @ T
        Z = T @ Z
    return G @ (Z / jnp.sqrt(trace + eps))


class ReferenceMuon:
    """The reference optimizer step in torch, one parameter at a time (as ``parity_tests/oracle.py``)."""

    def __init__(self, params: list[torch.Tensor], lr: float, beta: float = 0.9, weight_decay: float = 0.01,
                 eps: float = EPS, ns_iters: int = NS_ITERS) -> None:
        self.params, self.lr, self.beta, self.wd, self.eps, self.iters = params, lr, beta, weight_decay, eps, ns_iters
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            assert p.grad is not None
            st = self.state.setdefault(p, {"momentum_buffer": torch.zeros_like(p)})
            m = st["momentum_buffer"]
            m.mul_(self.beta).add_(p.grad, alpha=1.0 - self.beta)
            p.mul_(1.0 - self.lr * self.wd)
            if p.ndim == 2:
                U = reference_torch(m, self.iters, self.eps)
            else:
                U = m / torch.sqrt(m.square().mean() + self.eps)
            p.add_(U, alpha=-self.lr)


# --------------------------------------------------------------------------- FLOP counts


def flops_ours_ns(m: int, n: int, batch: int) -> float:
    s, l = min(m, n), max(m, n)
    return batch * NS_ITERS * (2 * s * s * l * 2)


def flops_reference(m: int, n: int, batch: int) -> float:
    return batch * (2 * m * n * n + NS_ITERS * 3 * 2 * n**3 + 2 * m * n * n)


def flops_quintic(m: int, n: int, batch: int) -> float:
    s, l = min(m, n), max(m, n)
    return batch * NS_ITERS * (4 * s * s * l + 2 * s**3)


# --------------------------------------------------------------------------- sections


def section_ceiling(size: int, cfg: Config, place: Place) -> dict[str, float]:
    print(f"## 1. fp32 matmul ceiling ({size}x{size} @ {size}x{size})\n")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flops = 2 * size**3
    ta, tb = place.tensor(a), place.tensor(b)
    t_torch = measure(lambda: ta @ tb, cfg, place.sync)
    ja, jb = place.array(a), place.array(b)
    mm = aot(lambda x, y: x @ y, ja, jb)
    t_jax = measure(lambda: mm(ja, jb), cfg, jax_sync)
    ceiling = {"torch": flops / t_torch.seconds / 1e9, "jax": flops / t_jax.seconds / 1e9}
    table(["framework", "time (ms)", "n", "GFLOP/s"], [
        ["torch", fmt_ms(t_torch), t_torch.label, f"{ceiling['torch']:.1f}"],
        ["jax.jit", fmt_ms(t_jax), t_jax.label, f"{ceiling['jax']:.1f}"],
    ])
    return ceiling


def section_orthogonalize(shapes: Sequence[tuple[int, ...]], cfg: Config, ceiling: dict[str, float],
                          place: Place) -> None:
    print(f"## 2. Orthogonalisation ({NS_ITERS} iterations, fp32 unless stated)\n")
    print("ratio = time / time of the reference formulation in the same framework (lower is faster); "
          "% ceiling = useful FLOPs of the algorithm / time / that framework's matmul GFLOP/s.\n")
    rng = np.random.default_rng(1)
    quintic_j = jnp.array(QUINTIC, dtype=jnp.float32)

    def optax_ns(x: jax.Array) -> jax.Array:
        f = lambda y: optax_muon.orthogonalize_via_newton_schulz(y, ns_coeffs=quintic_j, ns_steps=NS_ITERS)  # noqa: E731
        return jax.vmap(f)(x) if x.ndim == 3 else f(x)

    def torch_ns(x: torch.Tensor) -> torch.Tensor:
        f = lambda y: torch_muon._zeropower_via_newtonschulz(y, QUINTIC, NS_ITERS, 1e-7)  # noqa: E731
        return torch.stack([f(y) for y in x]) if x.ndim == 3 else f(x)

    for shape in shapes:
        *batch_dims, m, n = shape
        batch = int(np.prod(batch_dims)) if batch_dims else 1
        name = "x".join(map(str, shape))
        g = rng.standard_normal(shape, dtype=np.float32)
        tg, jg = place.tensor(g), place.array(g)
        f_ours, f_ref, f_quint = flops_ours_ns(m, n, batch), flops_reference(m, n, batch), flops_quintic(m, n, batch)

        j_ref = aot(reference_jax, jg)
        j_ns = aot(partial(muon_jax.orthogonalize, method="ns", ns_iters=NS_ITERS), jg)
        j_svd = aot(partial(muon_jax.orthogonalize, method="svd"), jg)
        j_quint = aot(optax_ns, jg)
        j_ours_q = aot(partial(muon_jax.orthogonalize, method="quintic", ns_iters=NS_ITERS), jg)
        j_ours_pe = aot(partial(muon_jax.orthogonalize, method="polar_express", ns_iters=NS_ITERS), jg)
        j_ours_q16 = aot(partial(muon_jax.orthogonalize, method="quintic", ns_iters=NS_ITERS, dtype="bfloat16"), jg)
        batch_note = " (loop over batch)" if batch_dims else ""
        # (label, framework, call, useful FLOPs or None, JAX?)
        cases: list[tuple[str, str, Callable[[], Any], float | None, bool]] = [
            ("reference formulation", "torch", partial(reference_torch, tg), f_ref, False),
            ("ours ns", "torch", partial(muon_torch.orthogonalize, tg, method="ns", ns_iters=NS_ITERS), f_ours, False),
            ("ours svd", "torch", partial(muon_torch.orthogonalize, tg, method="svd"), None, False),
            ("ours quintic", "torch", partial(muon_torch.orthogonalize, tg, method="quintic"), f_quint, False),
            ("ours polar_express", "torch", partial(muon_torch.orthogonalize, tg, method="polar_express"), f_quint,
             False),
            ("ours quintic, bf16", "torch", partial(muon_torch.orthogonalize, tg, method="quintic", dtype="bfloat16"),
             f_quint, False),
            (f"torch.optim quintic NS, bf16{batch_note}", "torch", partial(torch_ns, tg), f_quint, False),
            ("reference formulation", "jax", partial(j_ref, jg), f_ref, True),
            ("ours ns", "jax", partial(j_ns, jg), f_ours, True),
            ("ours svd", "jax", partial(j_svd, jg), None, True),
            ("ours quintic", "jax", partial(j_ours_q, jg), f_quint, True),
            ("ours polar_express", "jax", partial(j_ours_pe, jg), f_quint, True),
            ("ours quintic, bf16", "jax", partial(j_ours_q16, jg), f_quint, True),
            ("optax.contrib quintic NS" + (" (vmap)" if batch_dims else ""), "jax", partial(j_quint, jg), f_quint,
             True),
        ]

        print(f"### {name}\n")
        rows = []
        ref_time: dict[str, float] = {}
        with torch.no_grad():
            timings = measure_many([(call, jax_sync if is_jax else place.sync) for _, _, call, _, is_jax in cases], cfg)
            for (label, fw, _, flops, _), t in zip(cases, timings, strict=True):
                if label == "reference formulation":
                    ref_time[fw] = t.seconds
                ratio = fmt_ratio(t.seconds / ref_time[fw])
                pct = fmt_pct(flops / t.seconds / 1e9 / ceiling[fw]) if flops is not None else "-"
                rows.append([label, fw, fmt_ms(t), t.label, ratio, pct])
                print(f"  .. {name} {fw} {label}: {t.ms:.1f} ms (n={t.n})", file=sys.stderr, flush=True)
        table(["algorithm", "framework", "time (ms)", "n", "ratio to reference", "% ceiling"], rows)


def section_gram(shapes: Sequence[tuple[int, ...]], cfg: Config, place: Place) -> None:
    print(f"## 5. Gram Newton–Schulz against the standard form ({NS_ITERS} steps, fp32)\n")
    print("What the optimizers run (the form chosen by shape: `muon_common.use_gram`) against the standard "
          "steps on the small side, in the same framework and the same run; `gram/standard` is the time "
          "ratio, `mult-adds` the count ratio (`muon_common.gram_costs`, restarts included).\n")
    def timed_forms(fw: str, tg: torch.Tensor, jg: jax.Array, coefficients: list[tuple[float, float, float]],
                    scale: float, forms: Sequence[bool | None], compute_dtype: str | None = None) -> list[Timing]:
        """``newton_schulz`` of one twin in each form (``gram=``), timed interleaved."""
        calls: list[tuple[Callable[[], Any], Sync]] = []
        for form in forms:
            if fw == "torch":
                calls.append((partial(torch_newton_schulz, tg, coefficients, EPS, scale, compute_dtype, gram=form),
                              place.sync))
            else:
                f = aot(partial(jax_newton_schulz, coefficients=coefficients, eps=EPS, norm_scale=scale,
                                compute_dtype=compute_dtype, gram=form), jg)
                calls.append((partial(f, jg), jax_sync))
        return measure_many(calls, cfg)

    rng = np.random.default_rng(2)
    methods: dict[str, Any] = {"ns": "ns", "quintic": "quintic", "polar_express": "polar_express",
                               "a user list": [list(t) for t in NS_METHODS["polar_express"].coefficients[:5]]}
    rows = []
    for shape in shapes:
        *_, m, n = shape
        name = "x".join(map(str, shape))
        g = rng.standard_normal(shape, dtype=np.float32)
        tg, jg = place.tensor(g), place.array(g)
        for label, method in methods.items():
            coefficients, scale = ns_schedule(method, NS_ITERS)
            standard_count, gram_count = gram_costs(m, n, coefficients)
            chosen = "Gram" if use_gram(m, n, coefficients) else "standard"
            for fw in ("torch", "jax"):
                times = dict(zip((None, False), timed_forms(fw, tg, jg, coefficients, scale, (None, False)),
                                 strict=True))
                ratio = times[None].seconds / times[False].seconds
                count = (gram_count if chosen == "Gram" else standard_count) / standard_count
                rows.append([name, label, fw, chosen, fmt_ms(times[None]), fmt_ms(times[False]),
                             fmt_ratio(ratio), fmt_ratio(count)])
                print(f"  .. {name} {label} {fw}: {ratio:.2f}", file=sys.stderr, flush=True)
    table(["shape", "method", "framework", "form chosen", "chosen (ms)", "standard (ms)", "gram/standard",
           "mult-adds"], rows)

    print("With `orthogonalize_dtype=\"bfloat16\"` the optimizers keep the standard steps "
          "(`use_gram(..., low_precision=True)` is false): the Gram form multiplies in float32. Here the "
          "standard bfloat16 steps against the Gram form on the rectangular shapes, in the same framework and "
          "the same run.\n")
    rows = []
    for shape in shapes:
        *_, m, n = shape
        if m == n:
            continue
        name = "x".join(map(str, shape))
        g = rng.standard_normal(shape, dtype=np.float32)
        tg, jg = place.tensor(g), place.array(g)
        for label in ("quintic", "polar_express"):
            coefficients, scale = ns_schedule(label, NS_ITERS)
            for fw in ("torch", "jax"):
                standard, gram = timed_forms(fw, tg, jg, coefficients, scale, (False, True), "bfloat16")
                ratio = gram.seconds / standard.seconds
                rows.append([name, label, fw, fmt_ms(standard), fmt_ms(gram), fmt_ratio(ratio)])
                print(f"  .. {name} {label} {fw} bf16: {ratio:.2f}", file=sys.stderr, flush=True)
    table(["shape", "method", "framework", "standard, bf16 (ms)", "Gram, float32 products (ms)", "gram/standard"],
          rows)


def torch_state_bytes(*opts: Any) -> int:
    total = 0
    for opt in opts:
        for st in opt.state.values():
            for v in st.values():
                if isinstance(v, torch.Tensor):
                    total += v.nbytes
    return total


def jax_state_bytes(state: Any) -> int:
    return sum(int(leaf.nbytes) for leaf in jax.tree.leaves(state) if hasattr(leaf, "nbytes"))


def section_step(width: int, layers: int, cfg: Config, place: Place) -> None:
    print(f"## 3. Optimizer step ({layers} x Linear({width}, {width}) with bias, fp32)\n")
    rng = np.random.default_rng(2)
    weights = [rng.standard_normal((width, width), dtype=np.float32) * width**-0.5 for _ in range(layers)]
    biases = [rng.standard_normal((width,), dtype=np.float32) * 0.01 for _ in range(layers)]
    gw = [rng.standard_normal((width, width), dtype=np.float32) for _ in range(layers)]
    gb = [rng.standard_normal((width,), dtype=np.float32) for _ in range(layers)]
    param_bytes = sum(w.nbytes for w in weights) + sum(b.nbytes for b in biases)

    # ---- torch
    def torch_model() -> nn.Sequential:
        model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)]).to(place.tdev)
        with torch.no_grad():
            for i, lin in enumerate(model):
                assert isinstance(lin, nn.Linear)
                lin.weight.copy_(place.tensor(weights[i]))
                lin.bias.copy_(place.tensor(biases[i]))
                lin.weight.grad = place.tensor(gw[i]).clone()
                lin.bias.grad = place.tensor(gb[i]).clone()
        return model

    def torch_opts(model: nn.Sequential) -> list[Any]:
        return [torch.optim.AdamW(model.parameters(), lr=1e-3)]

    def torch_builtin_muon(model: nn.Sequential) -> list[Any]:
        mats = [p for p in model.parameters() if p.ndim == 2]
        vecs = [p for p in model.parameters() if p.ndim != 2]
        return [torch.optim.Muon(mats, lr=LR), torch.optim.AdamW(vecs, lr=1e-3)]

    def quintic_bf16(m: nn.Sequential) -> list[Any]:
        return [muon_torch.Muon(m.parameters(), lr=LR, method="quintic", nesterov=True, orthogonalize_dtype="bfloat16")]

    torch_cases: list[tuple[str, Callable[[nn.Sequential], list[Any]]]] = [
        ("torch.optim.AdamW", torch_opts),
        ("ours: muon_torch.Muon", lambda m: [muon_torch.Muon(m.parameters(), lr=LR)]),
        (f"ours: muon_torch.Muon, {COMPILED}", lambda m: [muon_torch.Muon(m.parameters(), lr=LR)]),
        ("ours: muon_torch.Muon, quintic + nesterov, bf16 orthogonalisation", quintic_bf16),
        (f"ours: muon_torch.Muon, quintic + nesterov, bf16 orthogonalisation, {COMPILED}", quintic_bf16),
        ("torch.optim.Muon (2-D, quintic in bf16) + AdamW (biases)", torch_builtin_muon),
        ("reference formulation (per-param loop)", lambda m: [ReferenceMuon(list(m.parameters()), lr=LR)]),
    ]
    step_rows, mem_rows = [], []
    results: dict[str, float] = {}
    # Every case of a framework is built first and then timed interleaved, with the batched
    # orthogonalisation that the "outside" table subtracts.
    with torch.no_grad():
        torch_steps: list[tuple[Callable[[], Any], Sync]] = []
        torch_opts_of: list[list[Any]] = []
        for label, make in torch_cases:
            model = torch_model()
            opts = make(model)
            steps = [torch.compile(o.step, fullgraph=True) if COMPILED in label else o.step for o in opts]
            if COMPILED in label:
                for s in steps:
                    s()  # compile outside the timing (the measured warm-up would include it otherwise)

            def step(steps: list[Any] = steps) -> None:
                for s in steps:
                    s()

            torch_steps.append((step, place.sync))
            torch_opts_of.append(opts)
        stacked = place.tensor(np.stack(gw))
        *timings, t_orth_torch = measure_many(
            [*torch_steps, (lambda: torch_orthogonalize_(stacked, "ns", NS_ITERS, EPS), place.sync)], cfg)
        for (label, _), opts, t in zip(torch_cases, torch_opts_of, timings, strict=True):
            results[label] = t.seconds
            step_rows.append([label, "torch", fmt_ms(t), t.label, fmt_ratio(t.seconds / results["torch.optim.AdamW"])])
            sb = torch_state_bytes(*opts)
            mem_rows.append([label, "torch", fmt_bytes(sb), fmt_ratio(sb / param_bytes)])
            print(f"  .. step torch {label}: {t.ms:.1f} ms (n={t.n})", file=sys.stderr, flush=True)

    # ---- jax
    jparams = {f"layer{i}": {"kernel": place.array(weights[i]), "bias": place.array(biases[i])}
               for i in range(layers)}
    jgrads = {f"layer{i}": {"kernel": place.array(gw[i]), "bias": place.array(gb[i])} for i in range(layers)}
    jax_cases: list[tuple[str, optax.GradientTransformation]] = [
        ("optax.adamw", optax.adamw(1e-3)),
        ("ours: muon_jax.muon", muon_jax.muon(LR)),
        ("ours: muon_jax.muon, quintic + nesterov", muon_jax.muon(LR, method="quintic", nesterov=True)),
        ("optax.contrib.muon (quintic, nesterov)", optax.contrib.muon(LR)),
    ]
    jax_steps: list[tuple[Callable[[], Any], Sync]] = []
    holders: list[list[Any]] = []
    for _, tx in jax_cases:

        def update(params: Any, state: Any, grads: Any, tx: optax.GradientTransformation = tx) -> Any:
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params = jax.tree.map(jnp.copy, jparams)
        state = tx.init(params)
        compiled = aot(update, params, state, jgrads, donate_argnums=(0, 1))
        holder = [params, state]

        def jax_step(compiled: Any = compiled, holder: list[Any] = holder) -> Any:
            holder[0], holder[1] = compiled(holder[0], holder[1], jgrads)
            return holder

        jax_steps.append((jax_step, jax_sync))
        holders.append(holder)
    jstacked = place.array(np.stack(gw))
    j_orth = aot(lambda x: muon_jax.orthogonalize(x, method="ns", ns_iters=NS_ITERS), jstacked)
    *timings, t_orth_jax = measure_many([*jax_steps, (lambda: j_orth(jstacked), jax_sync)], cfg)
    for (label, _), holder, t in zip(jax_cases, holders, timings, strict=True):
        results[label] = t.seconds
        step_rows.append([label, "jax", fmt_ms(t), t.label, fmt_ratio(t.seconds / results["optax.adamw"])])
        sb = jax_state_bytes(holder[1])
        mem_rows.append([label, "jax", fmt_bytes(sb), fmt_ratio(sb / param_bytes)])
        print(f"  .. step jax {label}: {t.ms:.1f} ms (n={t.n})", file=sys.stderr, flush=True)

    print("ratio = step time / AdamW's step time in the same framework. "
          "JAX: one jitted update + apply_updates, params and state donated.\n")
    table(["optimizer", "framework", "ms/step", "n", "ratio to AdamW"], step_rows)

    print(f"Time outside the orthogonalisation: step time minus the time of orthogonalising the same "
          f"{layers} matrices batched ({layers}x{width}x{width}, ns, {NS_ITERS} iterations).\n")
    rows = []
    for label, fw, t_orth in [("ours: muon_torch.Muon", "torch", t_orth_torch),
                              ("ours: muon_jax.muon", "jax", t_orth_jax)]:
        step_s = results[label]
        outside = step_s - t_orth.seconds
        rows.append([label, fw, f"{step_s * 1e3:.2f}", fmt_ms(t_orth), f"{outside * 1e3:.2f}",
                     fmt_pct(outside / step_s)])
    table(["optimizer", "framework", "step (ms)", "batched orthogonalisation (ms)", "outside (ms)",
           "outside (% of step)"], rows)

    print(f"## 4. Optimizer-state memory after one step (params: {fmt_bytes(param_bytes)})\n")
    print("torch: sum of the tensors' nbytes in opt.state (both optimizers where two are used); "
          "jax: sum of the opt state's leaves' nbytes.\n")
    table(["optimizer", "framework", "state", "state / params"], mem_rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="most timed calls per case")
    parser.add_argument("--sections", default="1,2,3,5", help="which sections to run, e.g. 1,3 (1 is always run)")
    _device.add_device_argument(parser)
    parser.add_argument("--sizes", choices=tuple(SIZES), default=None,
                        help="the shapes (default: quick with --quick, gpu with --device cuda/gpu, else cpu)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch's intra-op threads (torch.set_num_threads; default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            parser.error(f"--torch-threads must be at least 1, got {args.torch_threads}")
        torch.set_num_threads(args.torch_threads)
    _device.check_torch(parser, args.device)
    place = Place(_device.torch_device(args.device), _device.check_jax(parser, args.device))
    on_gpu = _device.is_gpu(args.device)

    if args.quick:
        cfg = Config(repeats=args.repeats or 3, budget_s=0.2, slow_s=1.0)
    elif on_gpu:  # calls of milliseconds: more samples, less time each
        cfg = Config(repeats=args.repeats or 10, budget_s=0.5, slow_s=3.0)
    else:
        cfg = Config(repeats=args.repeats or 7, budget_s=3.0, slow_s=6.0)
    sizes_name = args.sizes or ("quick" if args.quick else "gpu" if on_gpu else "cpu")
    sizes = SIZES[sizes_name]

    start = time.perf_counter()
    print("# Muon twins benchmark" + (" (--quick)" if args.quick else "") + "\n")
    print(f"- {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"- device {args.device}: torch on {_device.torch_description(place.tdev)}, "
          f"jax on {_device.jax_description(place.jdev)}; sizes {sizes_name}")
    print(f"- torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__} "
          f"({jax.default_backend()}), optax {optax.__version__}, numpy {np.__version__}")
    jax_precision = jax.config.jax_default_matmul_precision  # type: ignore[attr-defined]  # not in the stubs
    print(f"- float32 matmul precision: torch.get_float32_matmul_precision() = "
          f"{torch.get_float32_matmul_precision()!r}, jax_default_matmul_precision = "
          f"{jax_precision!r} (None: the backend's default)")
    print(f"- timing: 1 warm-up, then median of n calls (n <= {cfg.repeats}, fewer for slow cases; "
          f"a case whose warm-up takes over {cfg.slow_s:.0f} s is timed by that call alone); the calls "
          f"of one table (one shape in section 2) run interleaved, one call each per round\n")

    sections = set(args.sections.split(","))
    with jax.default_device(place.jdev):  # what JAX creates without a device (optimizer state) goes there too
        ceiling = section_ceiling(sizes.matmul, cfg, place)
        if "2" in sections:
            section_orthogonalize(sizes.shapes, cfg, ceiling, place)
        if "3" in sections:
            section_step(sizes.width, 6, cfg, place)
        if "5" in sections:
            section_gram(sizes.gram, cfg, place)
    print(f"_Total wall time {time.perf_counter() - start:.0f} s; "
          f"load average at end {os.getloadavg()[0]:.2f}._")


if __name__ == "__main__":
    main()
