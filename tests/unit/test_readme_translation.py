"""README.zh-CN.md is README.md's lab admin guide in simplified Chinese, kept in step: the same
sections in the same order, and in each section the same commands (in code blocks and in
`inline code`), so a lab admin reading either one types the same things.

The developer's guide stays English (README.zh-CN.md links to it): only the part before
README.md's second level-2 heading is compared.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
COMMAND = re.compile(
    r"^(?:sudo |MLWORKSHOP_\w+=\S+ )?(?:mlworkshop|make|journalctl|systemctl|bash|\.venv/bin/\S+)\b"
)


def admin_guide(path: Path) -> list[tuple[int, str, str]]:
    """(level, heading, body) of each section of the intro and the admin guide."""
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fenced = False
    second_level = 0
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"^(#{1,6}) (.*)", line) if not fenced else None
        if heading:
            level = len(heading.group(1))
            if level == 2:
                second_level += 1
                if second_level == 2:  # the developer's guide
                    break
            sections.append((level, heading.group(2), []))
        else:
            sections[-1][2].append(line)
    return [(level, title, "\n".join(body)) for level, title, body in sections]


def commands(body: str) -> set[str]:
    """Commands shown in a section: code block lines and inline code spans that run something,
    without their comments (translated) and with spaces normalised."""
    found = set()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", body, flags=re.S | re.M)
    for block in blocks:
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if COMMAND.match(line):
                found.add(" ".join(line.split()))
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", body, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if COMMAND.match(span):
            found.add(span)
    return found


def test_same_sections_in_the_same_order():
    english = admin_guide(ROOT / "README.md")
    chinese = admin_guide(ROOT / "README.zh-CN.md")
    assert [level for level, _t, _b in english] == [level for level, _t, _b in chinese], (
        "README.zh-CN.md's sections differ from README.md's admin guide:\n"
        + "\n".join(
            f"{'#' * a[0]} {a[1]}  |  {'#' * b[0]} {b[1]}"
            for a, b in zip(english, chinese + [(0, "(missing)", "")] * len(english), strict=False)
        )
    )


def test_same_commands_in_each_section():
    english = admin_guide(ROOT / "README.md")
    chinese = admin_guide(ROOT / "README.zh-CN.md")
    assert len(english) == len(chinese), (
        "the sections differ (test_same_sections_in_the_same_order)"
    )
    problems = []
    for (_level, title, body), (_l, titled, translated) in zip(english, chinese, strict=True):
        ours, theirs = commands(body), commands(translated)
        if ours != theirs:
            problems.append(
                f"{title!r} / {titled!r}:\n  only in README.md: {sorted(ours - theirs)}"
                f"\n  only in README.zh-CN.md: {sorted(theirs - ours)}"
            )
    assert not problems, "\n".join(problems)
    assert sum(len(commands(body)) for _l, _t, body in english) > 30  # the check sees them


def test_chinese_guide_is_chinese_and_linked():
    text = (ROOT / "README.zh-CN.md").read_text()
    assert "## 实验室管理员指南" in text and "(README.md)" in text
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    assert han > 5000, f"only {han} Chinese characters: is it translated?"
    assert "README.zh-CN.md" in (ROOT / "README.md").read_text()
