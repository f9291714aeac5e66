"""README.zh-CN.md is README.md's lab admin guide in simplified Chinese, kept in step: the same
sections at the same levels (each Chinese heading names its English one in a comment below it),
and in each section the same commands (in code blocks and in `inline code`), so a lab admin
reading either one types the same things.

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


EN_TAG = re.compile(r"^<!-- en: (.+?) -->$", re.M)


def _key(level: int, title: str) -> str:
    """What pairs a section: its English heading; the text above the guide and the title by place."""
    return title if level >= 2 else f"(level {level})"


def paired() -> tuple[list, dict]:
    """README.md's admin-guide sections, and README.zh-CN.md's by the English heading each one
    names in the comment under its heading (`<!-- en: Users -->`): sections are paired by name,
    so two engineers moving a section in README.md does not make the check guess."""
    english = admin_guide(ROOT / "README.md")
    chinese = {}
    for level, title, body in admin_guide(ROOT / "README.zh-CN.md"):
        tag = EN_TAG.search(body)
        key = tag.group(1) if tag else (_key(level, title) if level < 2 else f"(untagged: {title})")
        assert key not in chinese, f"README.zh-CN.md: two sections say they translate {key!r}"
        chinese[key] = (level, title, body)
    return english, chinese


def test_same_sections():
    english, chinese = paired()
    wanted = {_key(level, title) for level, title, _b in english}
    missing = sorted(t for t in wanted if t not in chinese)
    extra = sorted(t for t in chinese if t not in wanted)
    assert not missing and not extra, (
        f"README.zh-CN.md is not in step with README.md's admin guide: untranslated sections "
        f"{missing}; sections README.md no longer has (or untagged) {extra}"
    )
    for level, title, _b in english:
        if level > 1:
            assert chinese[title][0] == level, f"{title!r}: heading level differs"


def test_same_commands_in_each_section():
    english, chinese = paired()
    problems = []
    for level, title, body in english:
        key = _key(level, title)
        if key not in chinese:
            continue  # test_same_sections says so
        _l, titled, translated = chinese[key]
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
