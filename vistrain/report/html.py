"""A self-contained HTML page: sections of text, tables and PNGs embedded as base64 ``data:`` URIs.

No scripts, fonts or links to anything outside the file, so it opens offline from anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from vistrain.errors import OutputError

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
nav a { margin-right: 1em; } img { max-width: 100%; display: block; margin: 0.6em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; } th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #666; } .status-failed, .status-killed { color: #b00; } .status-running { color: #a60; }
"""


def slug(text: str) -> str:
    """A lower-case id made of letters, digits and dashes (section ids, file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _cell(value: object) -> str:
    num = ' class="num"' if isinstance(value, (int, float)) else ""
    return f"<td{num}>{html.escape(str(value))}</td>"


@dataclass
class Section:
    """One ``<section>``: a heading and its blocks (already-escaped HTML), and the pictures it holds."""

    id: str
    title: str
    level: int = 2
    blocks: list[str] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def text(self, text: str, note: bool = False) -> None:
        """A paragraph of plain text."""
        attr = ' class="note"' if note else ""
        self.blocks.append(f"<p{attr}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        """Preformatted text (config, code)."""
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        """A table; numbers are right-aligned."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self.blocks.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, name: str, png: bytes, alt: str) -> None:
        """An embedded PNG; *name* is its file name under ``--png DIR``."""
        self.images.append((name, png))
        data = base64.b64encode(png).decode("ascii")
        self.blocks.append(f"<img alt=\"{html.escape(alt)}\" data-name=\"{html.escape(name)}\" "
                           f"src=\"data:image/png;base64,{data}\">")

    def sub(self, title: str, id: str | None = None) -> Section:
        """A nested section (``<h3>``)."""
        child = Section(id or f"{self.id}-{slug(title)}", title, level=self.level + 1)
        self.children.append(child)
        return child

    def render(self) -> str:
        """This section and its children as HTML."""
        h = f"h{min(self.level, 6)}"
        inner = "\n".join(self.blocks + [c.render() for c in self.children])
        return f"<section id=\"{html.escape(self.id)}\">\n<{h}>{html.escape(self.title)}</{h}>\n{inner}\n</section>"

    def all_images(self) -> list[tuple[str, bytes]]:
        """Pictures of this section and its children, in page order."""
        return self.images + [img for c in self.children for img in c.all_images()]


@dataclass
class Document:
    """The page: a title, a subtitle and top-level sections."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        """Append a top-level section."""
        sec = Section(id, title)
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        """The whole HTML page."""
        nav = " ".join(f"<a href=\"#{html.escape(s.id)}\">{html.escape(s.title)}</a>" for s in self.sections)
        body = "\n".join(s.render() for s in self.sections)
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n<p class=\"note\">{html.escape(self.subtitle)}</p>\n"
                f"<nav>{nav}</nav>\n{body}\n</body></html>\n")

    def images(self) -> list[tuple[str, bytes]]:
        """Every picture on the page, in order."""
        return [img for s in self.sections for img in s.all_images()]

    def write(self, path: Path) -> Path:
        """Write the page."""
        return write_bytes(path, self.render().encode("utf-8"))

    def write_pngs(self, folder: Path) -> list[Path]:
        """Write each picture as its own PNG file under *folder*."""
        return [write_bytes(folder / name, png) for name, png in self.images()]


def write_bytes(path: Path, data: bytes) -> Path:
    """Write *data* to *path* (parents created); an unwritable place is an OutputError."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out/--png path") from None
    return path
