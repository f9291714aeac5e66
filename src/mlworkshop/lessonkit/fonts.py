"""Make matplotlib draw Chinese text: find an installed CJK font and make it the default."""

from __future__ import annotations

from pathlib import Path

# Files tried first (Debian/Ubuntu fonts-noto-cjk, other common packages, macOS, Windows).
KNOWN_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
# Family names preferred among the faces a collection registers (simplified Chinese first).
PREFERRED_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans CJK",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Noto Serif CJK SC",
)
SAMPLE = "机器学习中文"  # every character must have a glyph


def _covers(path: str, text: str = SAMPLE) -> bool:
    """True when the font file has a glyph for every character of ``text``."""
    try:
        from matplotlib.ft2font import FT2Font

        font = FT2Font(path)
        return all(font.get_char_index(ord(ch)) != 0 for ch in text)
    except Exception:  # noqa: BLE001 - unreadable file: not a candidate
        return False


def find_cjk_font(extra_files: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """Return ``(family name, file)`` of an installed font that covers Chinese, or None."""
    from matplotlib import font_manager as fm

    for candidate in (*extra_files, *KNOWN_FONT_FILES):
        if Path(candidate).is_file() and _covers(candidate):
            fm.fontManager.addfont(candidate)
            names = [e.name for e in fm.fontManager.ttflist if e.fname == candidate]
            for preferred in PREFERRED_FAMILIES:
                if preferred in names:
                    return preferred, candidate
            if names:
                return names[0], candidate
    # Fall back: any font matplotlib knows of whose name hints at CJK and that covers the sample.
    hints = (
        "cjk",
        "hei",
        "song",
        "ming",
        "kai",
        "yahei",
        "wenquanyi",
        "han sans",
        "fallback",
        "pingfang",
        "fang",
        "noto sans sc",
        "noto sans tc",
    )
    seen: set[str] = set()
    entries = sorted(fm.fontManager.ttflist, key=lambda e: e.name)
    for entry in entries:
        low = entry.name.lower()
        if entry.fname in seen or not any(h in low for h in hints):
            continue
        seen.add(entry.fname)
        if _covers(entry.fname):
            return entry.name, entry.fname
    return None


def use_chinese_font(verbose: bool = True) -> str | None:
    """Make a CJK font matplotlib's default sans-serif font; return its family name.

    Prints a clear message (and returns None) when no font with Chinese glyphs is installed:
    install one with ``apt-get install fonts-noto-cjk`` (``scripts/system-deps.sh`` does this).
    """
    import matplotlib as mpl

    found = find_cjk_font()
    if found is None:
        print(
            "未找到中文字体：图中的中文会显示为方框。请安装 fonts-noto-cjk "
            "(sudo apt-get install fonts-noto-cjk)。\n"
            "No CJK font found: Chinese text in plots will not render; install fonts-noto-cjk."
        )
        return None
    family, path = found
    rest = [f for f in mpl.rcParams["font.sans-serif"] if f != family]
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = [family, *rest]
    mpl.rcParams["axes.unicode_minus"] = False  # CJK fonts may lack U+2212 MINUS SIGN
    if verbose:
        print(f"中文字体 / CJK font: {family} ({path})")
    return family
