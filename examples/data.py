"""NumPy-only data and initial weights shared by the training examples and ``benchmarks/training``.

Everything here is drawn with NumPy from a seed, so the PyTorch and Flax twins of an
example start from the same weights and see the same batches in the same order.

* Digits: scikit-learn's 8x8 handwritten digits (1797 images, 10 classes; it ships with
  scikit-learn, no download), split 80/20 (stratified, fixed), standardised with the
  training split's mean and standard deviation.
* Text: the English dataset descriptions that ship with scikit-learn
  (``sklearn/datasets/descr/*.rst``, 14 files, about 43,000 characters), concatenated in
  file-name order, modelled character by character. ``load_text_split`` holds out
  ``TEXT_HELD_OUT`` (3 whole files, about 17% of the characters) for evaluation.
* Python source: the bytes of a fixed list of the standard library's own modules
  (``STDLIB_TRAIN``, about 1 MB; held out: ``STDLIB_HELD_OUT``, about 170 KB), read from
  ``sysconfig.get_paths()["stdlib"]``; ``load_stdlib`` warns when they differ from the
  files measured here (another Python version).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import sysconfig
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "BYTE_VOCAB",
    "MLP_SIZES",
    "STDLIB_FINGERPRINT",
    "STDLIB_HELD_OUT",
    "STDLIB_TRAIN",
    "TEXT_HELD_OUT",
    "TEXT_SOURCE",
    "CharLMConfig",
    "Digits",
    "Text",
    "batch_indices",
    "charlm_init",
    "eval_windows",
    "load_digits",
    "load_stdlib",
    "load_text",
    "load_text_split",
    "mlp_init",
    "text_windows",
    "window_starts",
]

#: The digits MLP: 64 pixels -> 256 -> 256 -> 10 classes, ReLU between.
MLP_SIZES: tuple[int, ...] = (64, 256, 256, 10)

TEXT_SOURCE = "scikit-learn's dataset descriptions (sklearn/datasets/descr/*.rst)"


class Digits(NamedTuple):
    """Standardised digits: float32 features ``(n, 64)`` and int64 labels ``(n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.2) -> Digits:
    """scikit-learn's digits, split (stratified, ``random_state=0``) and standardised."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    x, y = sk_load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=0, stratify=y)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # pixels that are always 0 stay 0
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return Digits(scale(x_train), y_train.astype(np.int64), scale(x_test), y_test.astype(np.int64))


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """``(steps, batch_size)`` example indices: each step an independent draw without replacement."""
    rng = np.random.default_rng([seed, 1])
    return np.argsort(rng.random((steps, n)), axis=1)[:, :batch_size]


def mlp_init(seed: int, sizes: tuple[int, ...] = MLP_SIZES) -> list[tuple[np.ndarray, np.ndarray]]:
    """torch's default ``nn.Linear`` init for each layer: ``(weight (out, in), bias (out,))``.

    Both ~ ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; float32, torch layout (Flax kernels are
    the transpose).
    """
    rng = np.random.default_rng([seed, 0])
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / np.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        layers.append((weight, bias))
    return layers


class Text(NamedTuple):
    """A text as token ids, with its character vocabulary."""

    tokens: np.ndarray  # int32 (n,)
    vocab: str  # the characters, sorted; token i is vocab[i]

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        return np.array([index[c] for c in text], dtype=np.int32)


def _descr_files() -> list[Path]:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the text comes with scikit-learn: pip install scikit-learn")
    descr = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "descr"
    return sorted(descr.glob("*.rst"))


def load_text() -> Text:
    """The English ``.rst`` dataset descriptions shipped with scikit-learn, as character ids."""
    text = "\n".join(f.read_text(encoding="utf-8") for f in _descr_files())
    vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    return Text(np.array([index[c] for c in text], dtype=np.int32), vocab)


#: The description files held out of ``load_text_split``'s training text (7,478 of 43,054 characters).
TEXT_HELD_OUT: tuple[str, ...] = ("diabetes.rst", "iris.rst", "wine_data.rst")


def load_text_split(held_out: tuple[str, ...] = TEXT_HELD_OUT) -> tuple[Text, Text]:
    """``(train, held_out)``: the description files split by file, ``held_out`` named ones for evaluation.

    Both share one vocabulary, built from every file (``load_text().vocab``); each part is its
    files joined by newlines in file-name order.
    """
    files = _descr_files()
    missing = set(held_out) - {f.name for f in files}
    if missing:
        raise FileNotFoundError(f"no description file(s) {sorted(missing)} in scikit-learn")
    vocab = load_text().vocab
    index = {c: i for i, c in enumerate(vocab)}

    def part(names: list[Path]) -> Text:
        text = "\n".join(f.read_text(encoding="utf-8") for f in names)
        return Text(np.array([index[c] for c in text], dtype=np.int32), vocab)

    return part([f for f in files if f.name not in held_out]), part([f for f in files if f.name in held_out])


#: Standard-library modules (paths under ``sysconfig.get_paths()["stdlib"]``, plain files on
#: Python 3.10-3.13) whose bytes are the Python-source language model's training text ...
STDLIB_TRAIN: tuple[str, ...] = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py", "contextlib.py",
    "csv.py", "dataclasses.py", "difflib.py", "enum.py", "fractions.py", "functools.py", "heapq.py",
    "ipaddress.py", "logging/__init__.py", "pickle.py", "random.py", "shutil.py", "statistics.py", "string.py",
    "textwrap.py", "threading.py",
)
#: ... and its held-out text (disjoint).
STDLIB_HELD_OUT: tuple[str, ...] = (
    "copy.py", "glob.py", "gzip.py", "queue.py", "shlex.py", "tempfile.py", "tokenize.py", "uuid.py", "weakref.py",
)
#: (bytes, sha256) of each list's concatenation (files joined by b"\n") as measured on Python 3.11.7.
STDLIB_FINGERPRINT: dict[str, tuple[int, str]] = {
    "train": (1_092_749, "2d41baf8640eb43eb8aab8b330a35607eb1ddc4a5eb68a05cf837105390db1a5"),
    "held_out": (171_996, "cda7743e81199709bc42571f6e3016c556b9029bfe579263e7aa26b8cef34a02"),
}

#: Token i of ``load_stdlib`` is byte i.
BYTE_VOCAB = "".join(chr(i) for i in range(256))


def _stdlib_bytes(names: tuple[str, ...]) -> bytes:
    root = Path(sysconfig.get_paths()["stdlib"])
    return b"\n".join((root / name).read_bytes() for name in names)


def load_stdlib() -> tuple[Text, Text]:
    """``(train, held_out)``: the bytes (vocabulary 256) of ``STDLIB_TRAIN`` and ``STDLIB_HELD_OUT``.

    Warns (does not fail) when a list's size or sha256 differs from ``STDLIB_FINGERPRINT``:
    another Python version ships other sources, and losses are then not comparable.
    """
    out = []
    for key, names in (("train", STDLIB_TRAIN), ("held_out", STDLIB_HELD_OUT)):
        raw = _stdlib_bytes(names)
        measured = (len(raw), hashlib.sha256(raw).hexdigest())
        if measured != STDLIB_FINGERPRINT[key]:
            warnings.warn(f"the standard library's {key} files differ from those the benchmark was measured on "
                          f"({measured[0]:,} bytes, sha256 {measured[1][:12]}… vs {STDLIB_FINGERPRINT[key][0]:,}, "
                          f"{STDLIB_FINGERPRINT[key][1][:12]}…): results are not comparable", stacklevel=2)
        out.append(Text(np.frombuffer(raw, dtype=np.uint8).astype(np.int32), BYTE_VOCAB))
    return out[0], out[1]


def window_starts(n_tokens: int, context: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random start offsets of ``context + 1``-long windows, of the given ``shape``."""
    rng = np.random.default_rng([seed, 2])
    return rng.integers(0, n_tokens - context - 1, size=shape)


def text_windows(tokens: np.ndarray, starts: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-character targets ``starts.shape + (context,)`` read at ``starts``."""
    idx = starts[..., None] + np.arange(context + 1)
    windows = tokens[idx]
    return windows[..., :-1], windows[..., 1:]


def eval_windows(tokens: np.ndarray, context: int, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The fixed windows on which the char models' loss is measured (the same for every seed)."""
    return text_windows(tokens, window_starts(len(tokens), context, (n,), seed=2**31 - 1), context)


class CharLMConfig(NamedTuple):
    """The character-level transformer: pre-norm blocks of causal attention and a GELU MLP.

    No biases and parameter-free RMS norms (as in modded-nanogpt), so every trained
    parameter is a matrix: token and position embeddings, per block ``qkv (d, 3d)``,
    ``proj (d, d)``, ``fc (d, 4d)``, ``out (4d, d)``, and the output ``head (d, vocab)``.
    """

    vocab: int
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    context: int = 64


def charlm_init(config: CharLMConfig, seed: int) -> dict[str, np.ndarray]:
    """GPT-2 style initial weights in Flax layout, block weights stacked ``(layers, in, out)``.

    Embeddings and matrices ~ ``N(0, 0.02)``; the residual projections (``proj``, ``out``)
    ~ ``N(0, 0.02 / sqrt(2 layers))``. torch's ``Linear.weight`` is each layer's transpose.
    """
    rng = np.random.default_rng([seed, 3])
    d, layers = config.d_model, config.layers
    residual = 0.02 / np.sqrt(2 * layers)

    def normal(std: float, *shape: int) -> np.ndarray:
        return (std * rng.standard_normal(shape)).astype(np.float32)

    return {
        "embed": normal(0.02, config.vocab, d),
        "pos_embed": normal(0.02, config.context, d),
        "qkv": normal(0.02, layers, d, 3 * d),
        "proj": normal(residual, layers, d, d),
        "fc": normal(0.02, layers, d, 4 * d),
        "out": normal(residual, layers, 4 * d, d),
        "head": normal(0.02, d, config.vocab),
    }
