"""Notebooks as offline HTML pages for leadership (nbconvert, in-process).

Code and prompts are hidden; cells tagged ``widgets``, ``record`` or ``remove`` are left out (they
stay in the executed ``.ipynb``), and so are widget views, stderr streams and JavaScript outputs;
images are embedded. The template ``templates/kpi_report`` extends JupyterLab's and empties every
block that loads a script from a CDN, so a page makes no external request.

Links between the notebooks point at the ``.ipynb`` files, so that they work in JupyterLab; on the
pages they point at the sibling pages instead (:func:`rewrite_notebook_links`), so the same
Markdown works in both places.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any

from .executed import WIDGET_MIME
from .outdir import KIT_NAME
from .planning import Job

__all__ = ["REMOVE_CELL_TAGS", "REMOVE_OUTPUT_TAGS", "HtmlConverter", "make_html_exporter", "rewrite_notebook_links"]

#: Cells with one of these tags are left out of the HTML (they stay in the executed .ipynb).
# `record` cells carry the values tests compare (a JSON bundle); readers do not need them.
REMOVE_CELL_TAGS = frozenset({"widgets", "record", "remove", "remove-cell", "remove_cell"})
REMOVE_OUTPUT_TAGS = frozenset({"remove-output", "remove_output"})
TEMPLATES = Path(__file__).with_name("templates")

# A link to a sibling notebook (`01-goal-setting.ipynb`, `./01-goal-setting.ipynb#funnel`) in an
# `href` attribute, in double or single quotes: no folder, no scheme, a numbered notebook's name.
_NOTEBOOK_LINK = re.compile(
    r"""(\bhref\s*=\s*(["']))(?:\./)?(\d\d-[^"'/\\?#:]*?)\.ipynb([?#][^"']*)?\2""", re.IGNORECASE
)


def rewrite_notebook_links(html: str) -> str:
    """Links to sibling notebooks ``NN-*.ipynb`` as links to their pages ``NN-*.html``.

    Only numbered notebooks in the same folder are rewritten; a link with a folder, a scheme or
    another name is left as it is, and so is a link that already names a page.

    >>> rewrite_notebook_links('<a href="01-goal-setting.ipynb">Goals</a> <a href="./02-web.ipynb#traffic">Web</a>')
    '<a href="01-goal-setting.html">Goals</a> <a href="02-web.html#traffic">Web</a>'
    >>> rewrite_notebook_links('<a href="03-x.html">x</a> <a href="https://h/04-y.ipynb">y</a> <a href="a/05-z.ipynb">')
    '<a href="03-x.html">x</a> <a href="https://h/04-y.ipynb">y</a> <a href="a/05-z.ipynb">'
    """
    return _NOTEBOOK_LINK.sub(lambda m: f"{m.group(1)}{m.group(3)}.html{m.group(4) or ''}{m.group(2)}", html)


class HtmlConverter:
    """Thread-safe nbconvert ``HTMLExporter`` built once per run with the kit's offline template."""

    def __init__(self, quarter: str, plan: list[Job]) -> None:
        self._quarter = quarter
        self._pages = [{"href": f"{j.name}.html", "title": j.title} for j in plan]
        self._lock = threading.Lock()
        self._exporter: Any = None

    def warm_up(self) -> None:
        """Import nbconvert and build the exporter now, while kernels execute."""
        with self._lock:
            if self._exporter is None:
                self._exporter = make_html_exporter()

    def __call__(self, nb: Any, job: Job) -> str:
        resources = {
            "metadata": {"name": f"{job.title} · {self._quarter}", "path": str(job.source.parent)},
            "kpi": {"kit": KIT_NAME, "quarter": self._quarter, "title": job.title, "pages": self._pages},
        }
        # Conversion is pure Python (GIL-bound): serialising it costs nothing and keeps the exporter's
        # preprocessors and Jinja environment single-threaded.
        with self._lock:
            if self._exporter is None:
                self._exporter = make_html_exporter()
            body, _ = self._exporter.from_notebook_node(nb, resources=resources)
        return body


def make_html_exporter() -> Any:
    """nbconvert ``HTMLExporter`` for leadership pages.

    Code and prompts hidden; cells tagged ``widgets``/``record``/``remove`` dropped; widget views,
    stderr streams and JavaScript outputs dropped; Markdown images embedded; template
    ``templates/kpi_report`` (no CDN scripts); links to sibling notebooks point at their pages
    (:func:`rewrite_notebook_links`).
    """
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVE_CELL_TAGS)
    config.TagRemovePreprocessor.remove_all_outputs_tags = set(REMOVE_OUTPUT_TAGS)
    exporter = _exporter_class()(
        config=config,
        template_name="kpi_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    exporter.register_preprocessor(_drop_unrenderable_outputs, enabled=True)
    return exporter


@functools.cache
def _exporter_class() -> type:
    from nbconvert import HTMLExporter

    class KitHtmlExporter(HTMLExporter):
        """JupyterLab's HTML exporter whose pages link to each other, not to the notebooks.

        The links are rewritten in the finished page, so they are found wherever nbconvert put
        them: Markdown cells, Markdown and HTML outputs.
        """

        def from_notebook_node(  # type: ignore[override]  # nbconvert's stub says NotebookNode; HTML is str
            self, nb: Any, resources: dict | None = None, **kw: Any
        ) -> tuple[str, dict]:
            body, resources = super().from_notebook_node(nb, resources=resources, **kw)
            return rewrite_notebook_links(body), resources

    return KitHtmlExporter


def _drop_unrenderable_outputs(nb: Any, resources: dict) -> tuple[Any, dict]:
    """Drop what cannot work offline or is noise for leadership (kept in the executed .ipynb).

    Widget views need the widget manager from a CDN; stderr is warnings; the widget state in the
    metadata would make the template emit the CDN loader.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            out
            for out in cell.get("outputs", [])
            if not (out.get("output_type") == "stream" and out.get("name") == "stderr")
            and WIDGET_MIME not in out.get("data", {})
        ]
    return nb, resources
