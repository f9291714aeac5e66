"""Handwritten digits for lesson 2: real MNIST IDX files when present, else sklearn's 8x8 digits.

The IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header
``0x00 0x00 <type code> <number of dimensions>``, then one big-endian uint32 per dimension,
then the data in C order. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS_ENV = "MLWORKSHOP_DATASETS"

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Each MNIST part, with the spellings seen in the wild (LeCun's, Kaggle's with a dot).
_PARTS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a NumPy array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX file with no dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    count = int(np.prod(shape))
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(
            f"{path}: expected {count * dtype.itemsize} bytes of data for shape {shape}, "
            f"found {len(data) - header}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _find_part(folder: Path, part: str) -> Path | None:
    for name in _PARTS[part]:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _complete(folder: Path) -> bool:
    return folder.is_dir() and all(_find_part(folder, part) for part in _PARTS)


def load_mnist_idx(folder: str | os.PathLike):
    """Load MNIST from a folder of the four IDX files.

    Returns ``(x_train, y_train, x_test, y_test)``: images as uint8 arrays ``(n, 28, 28)``,
    labels as int64 arrays ``(n,)``.
    """
    folder = Path(folder)
    paths = {part: _find_part(folder, part) for part in _PARTS}
    missing = [part for part, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: MNIST files missing: {', '.join(missing)}")
    x_train = read_idx(paths["train_images"])
    y_train = read_idx(paths["train_labels"]).astype(np.int64)
    x_test = read_idx(paths["test_images"])
    y_test = read_idx(paths["test_labels"]).astype(np.int64)
    for x, y, what in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: {what} images {x.shape} do not match labels {y.shape}")
    return x_train, y_train, x_test, y_test


def mnist_candidates(notebook_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where lesson 2 looks for MNIST, in order."""
    here = Path(notebook_dir) if notebook_dir is not None else Path.cwd()
    out: list[Path] = []
    env = os.environ.get(DATASETS_ENV)
    if env:
        out += [Path(env) / "mnist", Path(env)]
    out.append(here / ".." / ".." / "datasets" / "mnist")
    out.append(Path.home() / "datasets" / "mnist")
    # A torchvision-style layout (MNIST/raw/) is accepted under each of those.
    return [p for base in out for p in (base, base / "MNIST" / "raw", base / "raw")]


def find_mnist_dir(notebook_dir: str | os.PathLike | None = None) -> Path | None:
    """The first candidate folder holding all four MNIST files, or None."""
    for candidate in mnist_candidates(notebook_dir):
        if _complete(candidate):
            return candidate.resolve()
    return None


@dataclass
class DigitsData:
    """Images scaled to [0, 1] as float32 ``(n, h, w)``, labels int64, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "mnist" or "sklearn-digits"
    description: str

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def load_handwritten_digits(
    notebook_dir: str | os.PathLike | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> DigitsData:
    """MNIST from the first folder that has it, otherwise scikit-learn's bundled 8x8 digits.

    ``max_train`` / ``max_test`` take a random (seeded) subset, to keep CPU runs short.
    """
    rng = np.random.default_rng(seed)
    folder = find_mnist_dir(notebook_dir)
    if folder is not None:
        x_train, y_train, x_test, y_test = load_mnist_idx(folder)
        x_train = x_train.astype(np.float32) / 255.0
        x_test = x_test.astype(np.float32) / 255.0
        source = "mnist"
        description = f"真实 MNIST 数据集（28×28，来自 {folder}）"
    else:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)
        x_train, x_test, y_train, y_test = train_test_split(
            images,
            digits.target.astype(np.int64),
            test_size=0.25,
            random_state=seed,
            stratify=digits.target,
        )
        source = "sklearn-digits"
        description = "未找到 MNIST 文件，改用 scikit-learn 自带的 8×8 手写数字数据集 (load_digits)"

    def subset(x, y, limit):
        if limit is None or len(x) <= limit:
            return x, y
        idx = np.sort(rng.choice(len(x), size=limit, replace=False))
        return x[idx], y[idx]

    x_train, y_train = subset(x_train, y_train, max_train)
    x_test, y_test = subset(x_test, y_test, max_test)
    data = DigitsData(x_train, y_train, x_test, y_test, source, description)
    if verbose:
        print(f"数据来源 / data: {description}")
        print(f"训练集 {len(x_train)} 张，测试集 {len(x_test)} 张，图像尺寸 {data.image_shape}")
    return data
