"""The README is a short front door, and every relative link in the README, docs/ and benchmarks/README.md resolves."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUP_COMMANDS = (
    'python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && vistrain run',
    "python -m pytest -q",
)
MAX_README_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title"; <target> for targets with spaces
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def doc_files() -> list[Path]:
    """The Markdown files whose links must resolve."""
    files = [README, *sorted((ROOT / "docs").glob("*.md"))]
    bench = ROOT / "benchmarks" / "README.md"
    if bench.exists():
        files.append(bench)
    return files


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
            else:
                lines.append((number, line))
        elif line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
            fence = None
    return lines


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation other than '-' and '_' removed,
    spaces turned into '-'."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = re.sub(r"(\*{1,3})(.+?)\1", r"\2", text)  # *emphasis*, **strong**
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and '_' (Unicode too)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of *path* (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        slug = slugify(m.group(2))
        if slug in seen:
            seen[slug] += 1
            result.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            result.add(slug)
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in *path*, outside code blocks and code spans."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        for regex in (INLINE_LINK, REFERENCE_DEF, HTML_LINK):
            found += [(number, m.group(1).strip("<>")) for m in regex.finditer(line)]
    return found


def broken_links(path: Path) -> list[str]:
    """A message for each relative link of *path* whose file is missing or whose #anchor is not a heading."""
    problems = []
    for number, target in links(path):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue  # http(s):, mailto: ...: not ours to check
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?", 1)[0])
        if file_part:
            dest = (ROOT / file_part.lstrip("/")) if file_part.startswith("/") else (path.parent / file_part)
        else:
            dest = path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            continue
        if anchor and dest.is_file() and dest.suffix.lower() == ".md":
            if unquote(anchor) not in anchors(dest):
                problems.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    return problems


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"


@pytest.mark.parametrize("command", SETUP_COMMANDS)
def test_readme_has_the_setup_commands_verbatim(command):
    assert command in README.read_text(encoding="utf-8"), f"README.md lost the set-up command {command!r}"


def test_the_manual_pages_exist_and_the_index_lists_them():
    docs = ROOT / "docs"
    listed = {target.partition("#")[0] for _, target in links(docs / "index.md")}
    unlisted = [page.name for page in sorted(docs.glob("*.md")) if page.name != "index.md" and page.name not in listed]
    assert not unlisted, f"docs/index.md does not link to {unlisted}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("heading, slug", [
    ("Which epoch is best.pt, measured", "which-epoch-is-bestpt-measured"),
    ("Cluster mode: DDP, SLURM and exact resume", "cluster-mode-ddp-slurm-and-exact-resume"),
    ("`vistrain eval` and `vistrain predict`", "vistrain-eval-and-vistrain-predict"),
    ("`register_models(register)`", "register_modelsregister"),
    ("Start-up: `vistrain --help` with and without the example plugins",
     "start-up-vistrain---help-with-and-without-the-example-plugins"),
    ("Augmentation speed against torchvision.transforms.v2", "augmentation-speed-against-torchvisiontransformsv2"),
    ("**Bold** and [a link](x.md)", "bold-and-a-link"),
])
def test_slugs_follow_github(heading, slug):
    assert slugify(heading) == slug


def test_the_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Some `code` section\n\n## Title\n\n"
                                   "```bash\n# not a heading\n[x](nope.md)\n```\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#some-code-section) [ok](a.md#title-1) [ok](a.md) [self](#b)\n\n# B\n\n"
                    "[gone](missing.md) [in a code block](a.md#not-a-heading) [one repeat only](a.md#title-2)\n"
                    "`[in code](missing2.md)` [web](https://example.com/x.md)\n")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "no such file missing.md" in problems[0]
    assert "#not-a-heading" in problems[1] and "#title-2" in problems[2]
