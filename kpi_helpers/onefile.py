"""The whole quarter in one self-contained file: ``OUT/<quarter>/report.html``.

The brief (:mod:`kpi_helpers.brief`), the quarter's summary (its ``index.html``) and every notebook
page, in report order, as sections of one page that opens anywhere (a phone, a mail attachment, no
network): styles once, charts embedded as compressed PNGs, no script, navigation by anchors. The
per-page files stay in the folder for those who browse it.

How the pages become sections:

- JupyterLab's CSS, identical on every page, is kept once; the summary's styles are scoped to its
  section (:func:`scope_css`), so its table and heading rules never reach a notebook's outputs.
- Links between the pages become anchors: ``02-traffic.html#funnel`` -> ``#02-traffic--funnel``,
  ``index.html`` -> ``#summary``. A page's ids are prefixed with its name so that two pages' headings
  never collide (ids that the page's own styles select, pandas' ``#T_...`` tables, are kept). A
  link to a file the one file does not hold (a notebook, the report index) is left as its text.
- Charts are re-encoded as palette PNGs (:func:`compress_png`): charts hold few colours, so a
  256-colour palette keeps them practically unchanged at a third of the bytes.
- Print styles (:mod:`kpi_helpers.pdf` prints this very file): each section on new pages, no table
  or chart cut across pages, headings kept with what follows, page numbers and the quarter with the
  data's fingerprint in the footer.

Same pages, same bytes: nothing here reads the clock.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import fileio
from .outdir import KIT_NAME
from .planning import Job

__all__ = ["PAPERS", "REPORT", "build_report", "compress_png", "css_string", "scope_css", "write_report"]

#: the one file's name in a quarter folder
REPORT = "report.html"
TEMPLATES = Path(__file__).with_name("templates") / "share"
#: ids of the one file's own sections; a page named so gets the prefix ``page-``
RESERVED = frozenset({"contents", "brief", "summary"})
_PAGE_LINK = re.compile(r"^(?:\./)?([^/\\?#:]+)\.html(?:#(.*))?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CSS_ID = re.compile(r"#(-?[A-Za-z_][\w-]*)")
_PNG_URI = "data:image/png;base64,"


def compress_png(data: bytes) -> bytes:
    """A chart's PNG as a 256-colour palette PNG when that is smaller; otherwise ``data`` unchanged.

    Median cut without dithering keeps the most frequent colours exactly (white, the series'
    colours); only antialiased edges move, on the sample by 0.003 of 255 on average. Images with
    transparency, palette images and anything Pillow cannot read are kept as they are.
    Deterministic: the same PNG gives the same bytes.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode == "RGBA":
                if image.getchannel("A").getextrema()[0] != 255:
                    return data  # transparency would be lost
                image = image.convert("RGB")
            if image.mode not in ("RGB", "L"):
                return data
            palette = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            out = io.BytesIO()
            palette.save(out, format="PNG", compress_level=6)  # level 9: 7% smaller, six times slower
    except (OSError, ValueError, Image.DecompressionBombError):
        return data
    return out.getvalue() if out.tell() < len(data) else data


def css_string(text: str) -> str:
    r"""``text`` as a CSS string literal that cannot end the string, the rule or the ``<style>`` element.

    >>> css_string('2026Q3 "x" </style>')
    '"2026Q3 \\22 x\\22  \\3c /style\\3e "'
    """
    escaped = "".join(f"\\{ord(c):x} " if c in '"\\<>' or ord(c) < 32 else c for c in text)
    return f'"{escaped}"'


# --------------------------------------------------------------------------------------------------
# CSS scoped to one section


def scope_css(css: str, scope: str) -> str:
    """Every rule of ``css`` restricted to the elements under ``scope`` (a selector such as ``.kpi-index``).

    ``html``, ``body`` and ``main`` become the scope itself; ``:root`` rules (custom properties) stay
    global; ``@media`` blocks are scoped inside; ``@page`` rules are dropped (the one file sets its
    own pages); other at-rules stay as they are.

    >>> scope_css("body { margin: 0 } h2, .x > a { color: red } @media print { nav { display: none } }", ".s")
    '.s { margin: 0 }\\n.s h2, .s .x > a { color: red }\\n@media print {\\n.s nav { display: none }\\n}'
    """
    import tinycss2

    out = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type == "qualified-rule":
            selectors = ", ".join(_scoped_selector(s, scope) for s in _selectors(rule.prelude))
            out.append(f"{selectors} {{{tinycss2.serialize(rule.content)}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword == "media" and rule.content is not None:
            inner = scope_css(tinycss2.serialize(rule.content), scope)
            out.append(f"@media {tinycss2.serialize(rule.prelude).strip()} {{\n{inner}\n}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword != "page":
            out.append(rule.serialize())
    return "\n".join(out)


def _selectors(prelude: list[Any]) -> list[str]:
    """A rule's selectors: its prelude split at the commas outside brackets."""
    import tinycss2

    parts: list[list[Any]] = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return [s for s in (tinycss2.serialize(p).strip() for p in parts) if s]


def _scoped_selector(selector: str, scope: str) -> str:
    if selector.startswith(":root"):
        return selector
    replaced, n = re.subn(r"^(?:html|body|main)(?![\w-])", scope, selector)
    if n:
        return replaced
    return f"{scope}, {scope} *" if selector == "*" else f"{scope} {selector}"


# --------------------------------------------------------------------------------------------------
# Pages as sections


class _Sections:
    """The parsed pages, their ids renamed, their links turned into anchors of the one file."""

    def __init__(self, folder: Path, plan: list[Job]) -> None:
        from bs4 import BeautifulSoup

        self.ids = {job.name: (f"page-{job.name}" if job.name in RESERVED else job.name) for job in plan}
        self.titles = {job.name: job.title for job in plan}
        self.head_styles: list[str] = []
        self.body_attrs: dict[str, str] = {}
        self.renamed: dict[str, dict[str, str]] = {}
        self.pages: dict[str, Any] = {}
        for job in plan:
            soup: Any = BeautifulSoup((folder / f"{job.name}.html").read_text(encoding="utf-8"), "html.parser")
            for style in soup.head.find_all("style") if soup.head else []:
                text = style.string or ""
                if text not in self.head_styles:
                    self.head_styles.append(text)  # JupyterLab's, the same on every page: kept once
            if not self.body_attrs and soup.body is not None:
                self.body_attrs = {k: " ".join(v) if isinstance(v, list) else v for k, v in soup.body.attrs.items()}
            main = soup.main or soup.body
            chrome = [*main.find_all("header", class_="kpi-header"), *main.find_all("footer", class_="kpi-footer")]
            for element in chrome:
                element.decompose()  # each page's own navigation: the one file has its own
            self.renamed[job.name] = self._rename_ids(main, job.name)
            self.pages[job.name] = main
        index: Any = BeautifulSoup((folder / "index.html").read_text(encoding="utf-8"), "html.parser")
        self.index_styles = [s.string or "" for s in (index.head.find_all("style") if index.head else [])]
        self.index = index.main or index.body
        header = self.index.find("header")
        for chrome in [*(header.find_all("nav") if header else []), *self.index.find_all("a", class_="nb")]:
            chrome.decompose()  # "All quarters" and the notebook links lead out of the one file
        footer = self.index.find("footer")
        self.footer = footer.get_text(" ", strip=True) if footer else KIT_NAME
        if footer:
            footer.decompose()

    def _rename_ids(self, main: Any, name: str) -> dict[str, str]:
        """Prefix the page's ids with its name, except ids its own ``<style>`` elements select."""
        selected = {m for style in main.find_all("style") for m in _CSS_ID.findall(style.string or "")}
        renamed = {}
        for tag in main.find_all(id=True):
            old = tag["id"]
            if old not in selected:
                renamed[old] = tag["id"] = f"{self.ids[name]}--{old}"
        return renamed

    def anchor(self, href: str, page: str | None) -> str | None:
        """Where a link of ``page`` (None: the summary) points in the one file; None: not in it."""
        if href.startswith("#"):
            fragment = href[1:]
            return "#" + (self.renamed.get(page, {}).get(fragment, fragment) if page else fragment)
        match = _PAGE_LINK.match(href)
        if not match:
            return None
        target, fragment = match.group(1), match.group(2)
        if target == "index":
            return "#summary"
        if target not in self.ids:
            return None
        renamed = self.renamed[target].get(fragment or "")
        return f"#{renamed}" if renamed else f"#{self.ids[target]}"

    def relink(self, root: Any, page: str | None, images: dict[str, str]) -> str:
        """``root``'s content with anchors for links and compressed charts, as HTML."""
        for link in root.find_all("a", href=True):
            href = str(link["href"]).strip()
            if _SCHEME.match(href):
                continue  # a web address or mail link: not the report's
            target = self.anchor(href, page)
            if target is None:
                link.unwrap()  # a file the one file does not hold: keep the words
            else:
                link["href"] = target
        for img in root.find_all("img", src=True):
            src = str(img["src"])
            if src.startswith(_PNG_URI):
                if src not in images:
                    png = compress_png(base64.b64decode(src[len(_PNG_URI) :]))
                    images[src] = _PNG_URI + base64.b64encode(png).decode("ascii")
                img["src"] = images[src]
        return "".join(str(child) for child in root.contents)


#: page sizes the one file prints on (CSS ``@page`` size names); the brief fits one page of either
PAPERS = ("A4", "Letter")


def build_report(
    folder: Path, label: str, plan: list[Job], brief: str, metrics: Mapping[str, Any], *, paper: str = "A4"
) -> str:
    """The one file's HTML from the pages in ``folder`` (written by the run), the brief's section
    (:func:`kpi_helpers.brief.render`, ``standalone=False``) and the quarter's metrics (for the footer),
    printing on ``paper`` (one of :data:`PAPERS`)."""
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {PAPERS}; got {paper!r}")
    from jinja2 import Environment, FileSystemLoader
    from markupsafe import Markup

    sections = _Sections(folder, plan)
    images: dict[str, str] = {}
    pages = [
        {
            "id": sections.ids[job.name],
            "title": job.title,
            "html": Markup(sections.relink(sections.pages[job.name], job.name, images)),
        }
        for job in plan
    ]
    summary = Markup(sections.relink(sections.index, None, images))
    fingerprint = str(metrics.get("data_fingerprint") or "").replace("sha256:", "sha256 ")[:19]
    footer = " · ".join(p for p in (KIT_NAME, label, f"data {fingerprint}" if fingerprint else "") if p)
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        kit=KIT_NAME,
        quarter=label,
        # the styles come from the kit's own pages (nbconvert's and the index's templates), not from the data
        lab_styles=[Markup(s) for s in sections.head_styles],
        index_styles=Markup(scope_css("\n".join(sections.index_styles), ".kpi-index")),
        print_footer=Markup(css_string(footer)),
        paper=paper,
        body_attrs=sections.body_attrs,
        brief=Markup(brief),
        summary=summary,
        pages=pages,
        generated=sections.footer,
    )


def write_report(
    folder: Path, label: str, plan: list[Job], brief: str, metrics: Mapping[str, Any], *, paper: str = "A4"
) -> Path:
    """Write ``folder/report.html`` (atomically); return its path."""
    target = folder / REPORT
    fileio.write_atomic(target, build_report(folder, label, plan, brief, metrics, paper=paper))
    return target
