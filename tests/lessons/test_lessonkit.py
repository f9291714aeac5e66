"""Unit tests for mlworkshop.lessonkit: the IDX loader, device choice and CJK font set-up."""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from mlworkshop.lessonkit import (
    choose_device_name,
    find_cjk_font,
    find_mnist_dir,
    load_handwritten_digits,
    load_mnist_idx,
    pick_device,
    read_idx,
    use_chinese_font,
)
from mlworkshop.lessonkit import device as device_mod


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file by hand (header as LeCun documents it)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_mnist(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = False, seed: int = 1):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=n_test, dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", x_train, gz=gz)
    write_idx(folder / "train-labels-idx1-ubyte", y_train, gz=gz)
    write_idx(folder / "t10k-images-idx3-ubyte", x_test, gz=gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz=gz)
    return x_train, y_train, x_test, y_test


@pytest.fixture
def no_home_datasets(tmp_path, monkeypatch):
    """Keep a real ~/datasets/mnist or $MLWORKSHOP_DATASETS out of these tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MLWORKSHOP_DATASETS", raising=False)
    return home


# --- IDX ----------------------------------------------------------------------------------


def test_read_idx_uint8_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 3], dtype=np.uint8)
    img = read_idx(write_idx(tmp_path / "imgs", images))
    lab = read_idx(write_idx(tmp_path / "labs", labels))
    assert img.shape == (2, 3, 4) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, images)
    np.testing.assert_array_equal(lab, labels)


@pytest.mark.parametrize(
    "code,dtype",
    [(0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64), (0x09, np.int8)],
)
def test_read_idx_other_types_are_big_endian(tmp_path, code, dtype):
    values = np.array([[-2, 1, 300 if dtype != np.int8 else 100], [5, -7, 0]], dtype=dtype)
    out = read_idx(write_idx(tmp_path / "x", values, code=code))
    assert out.dtype == np.dtype(dtype)  # native byte order
    np.testing.assert_array_equal(out, values)


def test_read_idx_gzip(tmp_path):
    values = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "labels-idx1-ubyte", values, gz=True)
    assert path.suffix == ".gz"
    np.testing.assert_array_equal(read_idx(path), values)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="expected 5 bytes"):
        read_idx(short)
    unknown = tmp_path / "unknown"
    unknown.write_bytes(bytes([0, 0, 0x42, 1]) + struct.pack(">I", 1) + b"a")
    with pytest.raises(ValueError, match="unknown IDX data type"):
        read_idx(unknown)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_idx_folder(tmp_path, gz):
    x_train, y_train, x_test, y_test = make_mnist(tmp_path / "mnist", gz=gz)
    a, b, c, d = load_mnist_idx(tmp_path / "mnist")
    assert a.shape == (12, 28, 28) and c.shape == (5, 28, 28)
    assert b.dtype == np.int64 and d.dtype == np.int64
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(c, x_test)
    np.testing.assert_array_equal(d, y_test)


def test_load_mnist_idx_missing_part(tmp_path):
    make_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="test_labels"):
        load_mnist_idx(tmp_path / "mnist")


def test_kaggle_spelling_is_accepted(tmp_path):
    folder = tmp_path / "mnist"
    make_mnist(folder)
    for old, new in [
        ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ]:
        (folder / old).rename(folder / new)
    assert load_mnist_idx(folder)[0].shape == (12, 28, 28)


# --- where lesson 2 looks, and the fallback --------------------------------------------------


def test_digits_fall_back_to_sklearn(tmp_path, no_home_datasets, capsys):
    notebook_dir = tmp_path / "lessons" / "02-neural-networks"
    notebook_dir.mkdir(parents=True)
    assert find_mnist_dir(notebook_dir) is None
    data = load_handwritten_digits(notebook_dir)
    assert data.source == "sklearn-digits"
    assert data.image_shape == (8, 8)
    assert (
        data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() <= data.x_train.max() <= 1.0
    )
    assert len(data.x_train) + len(data.x_test) == 1797
    assert "load_digits" in capsys.readouterr().out


def test_digits_found_next_to_the_lessons(tmp_path, no_home_datasets, capsys):
    # <content>/lessons/02-neural-networks/ -> <content>/datasets/mnist
    notebook_dir = tmp_path / "content" / "lessons" / "02-neural-networks"
    notebook_dir.mkdir(parents=True)
    make_mnist(tmp_path / "content" / "datasets" / "mnist", n_train=20, n_test=6)
    data = load_handwritten_digits(notebook_dir, max_train=10)
    assert data.source == "mnist"
    assert data.image_shape == (28, 28)
    assert len(data.x_train) == 10 and len(data.x_test) == 6
    assert data.x_train.max() <= 1.0
    assert "MNIST" in capsys.readouterr().out


def test_digits_found_in_home_and_env(tmp_path, no_home_datasets, monkeypatch):
    elsewhere = tmp_path / "nb"
    elsewhere.mkdir()
    make_mnist(no_home_datasets / "datasets" / "mnist", gz=True)
    assert find_mnist_dir(elsewhere) == (no_home_datasets / "datasets" / "mnist").resolve()
    make_mnist(tmp_path / "shared" / "mnist" / "MNIST" / "raw")
    monkeypatch.setenv("MLWORKSHOP_DATASETS", str(tmp_path / "shared"))
    assert find_mnist_dir(elsewhere) == (tmp_path / "shared" / "mnist" / "MNIST" / "raw").resolve()
    assert load_handwritten_digits(elsewhere, verbose=False).source == "mnist"


# --- device -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cuda,npu,forced,expected",
    [
        (True, True, None, "cuda"),
        (True, False, None, "cuda"),
        (False, True, None, "npu"),
        (False, False, None, "cpu"),
        (True, True, "CPU", "cpu"),
    ],
)
def test_choose_device_name(cuda, npu, forced, expected):
    assert choose_device_name(cuda, npu, forced) == expected


def test_pick_device_with_torch(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("MLWORKSHOP_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "npu_available", lambda: False)
    dev = pick_device()
    assert dev == torch.device("cpu")
    assert "cpu" in capsys.readouterr().out
    x = torch.ones(3, device=dev)
    assert x.sum().item() == 3.0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"
    assert "cuda" in capsys.readouterr().out

    # An NPU only counts when there is no CUDA; torch.device("npu") needs torch_npu, so fake it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "npu_available", lambda: True)
    monkeypatch.setattr(torch, "device", lambda name: f"device:{name}")
    assert pick_device() == "device:npu"
    assert "npu" in capsys.readouterr().out


def test_pick_device_forced_by_env(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("MLWORKSHOP_DEVICE", "cpu")
    assert pick_device(verbose=False).type == "cpu"


def test_npu_unavailable_without_torch_npu():
    import importlib.util

    if importlib.util.find_spec("torch_npu") is None:
        assert device_mod.npu_available() is False


# --- fonts --------------------------------------------------------------------------------


def test_a_cjk_font_is_installed():
    found = find_cjk_font()
    assert found is not None, "no CJK font: run scripts/system-deps.sh (fonts-noto-cjk)"
    family, path = found
    assert Path(path).is_file() and family


def test_chinese_plot_has_no_missing_glyphs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        family = use_chinese_font(verbose=False)
        assert family is not None
        assert matplotlib.rcParams["font.sans-serif"][0] == family
        assert matplotlib.rcParams["axes.unicode_minus"] is False
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a "Glyph ... missing from font(s)" warning fails
            fig, ax = plt.subplots()
            ax.plot([-1, 0, 1], [1, -2, 3])
            ax.set_title("机器学习：损失曲线（−1 到 1）")
            ax.set_xlabel("训练轮数")
            fig.savefig(tmp_path / "zh.png")
            plt.close(fig)
    assert (tmp_path / "zh.png").stat().st_size > 0


def test_falls_back_to_any_installed_cjk_font(monkeypatch):
    """No known file path: the scan of matplotlib's font list still finds a CJK font."""
    from matplotlib import font_manager as fm

    from mlworkshop.lessonkit import fonts

    if find_cjk_font() is None:
        pytest.skip("no CJK font installed")
    # make sure the installed fonts are registered, as on a machine where matplotlib found them
    for path in fonts.KNOWN_FONT_FILES:
        if Path(path).is_file():
            fm.fontManager.addfont(path)
    monkeypatch.setattr(fonts, "KNOWN_FONT_FILES", ())
    found = fonts.find_cjk_font()
    assert found is not None
    assert fonts._covers(found[1])


def test_use_chinese_font_says_so_when_none(monkeypatch, capsys):
    from mlworkshop.lessonkit import fonts

    monkeypatch.setattr(fonts, "find_cjk_font", lambda *a, **k: None)
    assert fonts.use_chinese_font() is None
    assert "fonts-noto-cjk" in capsys.readouterr().out


# --- shipped lesson files -----------------------------------------------------------------


def test_lesson_file_prefers_the_notebook_folder_then_the_package(tmp_path):
    from mlworkshop.lessonkit import bundled_lesson_dir, lesson_file

    shipped = bundled_lesson_dir("04-llm-overview") / "tang_poems.txt"
    assert shipped.is_file()
    assert "床前明月光" in shipped.read_text(encoding="utf-8")
    # a notebook copied alone into work/ still finds the corpus
    assert lesson_file("tang_poems.txt", "04-llm-overview", tmp_path) == shipped
    local = tmp_path / "tang_poems.txt"
    local.write_text("自己的语料", encoding="utf-8")
    assert lesson_file("tang_poems.txt", "04-llm-overview", tmp_path) == local
    with pytest.raises(FileNotFoundError):
        lesson_file("nothing.txt", "04-llm-overview", tmp_path)
