"""Small helpers shared by the bundled lesson notebooks.

The notebooks import these inside the student's JupyterLab (the kernel runs in the venv where
mlworkshop is installed)::

    from mlworkshop.lessonkit import pick_device, use_chinese_font, load_handwritten_digits

Nothing here downloads anything: the lessons must run on a machine with no internet.
"""

from mlworkshop.lessonkit.device import choose_device_name, npu_available, pick_device
from mlworkshop.lessonkit.files import bundled_lesson_dir, lesson_file
from mlworkshop.lessonkit.fonts import find_cjk_font, use_chinese_font
from mlworkshop.lessonkit.mnist import (
    DigitsData,
    find_mnist_dir,
    load_handwritten_digits,
    load_mnist_idx,
    read_idx,
)

__all__ = [
    "DigitsData",
    "bundled_lesson_dir",
    "choose_device_name",
    "find_cjk_font",
    "find_mnist_dir",
    "lesson_file",
    "load_handwritten_digits",
    "load_mnist_idx",
    "npu_available",
    "pick_device",
    "read_idx",
    "use_chinese_font",
]
