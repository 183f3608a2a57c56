"""Text from the data made safe for where it goes: Markdown, HTML and matplotlib's mathtext.

Channel, campaign, landing-page and goal names come from ad platforms and web analytics: they are
text, never markup. Every sentence (:mod:`kpi_helpers.narratives`), table (:mod:`kpi_helpers.tables`)
and chart label (:mod:`kpi_helpers.charts`) escapes them here, for its own medium.

>>> md_escape("<b>Price $5</b>"), mathtext("Price $5 off $10")
('&lt;b&gt;Price \\\\$5&lt;/b&gt;', 'Price \\\\$5 off \\\\$10')
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["and_list", "html_escape", "mathtext", "md_escape", "md_text", "missing_line", "sentence"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~$])")


def md_escape(text: Any) -> str:
    """Text safe to insert into Markdown: HTML is escaped and Markdown/MathJax characters backslashed.

    >>> md_escape("<script>alert(1)</script> *bold* $x$")
    '&lt;script&gt;alert\\\\(1\\\\)&lt;/script&gt; \\\\*bold\\\\* \\\\$x\\\\$'
    """
    return html.escape(_MD_SPECIAL.sub(r"\\\1", str(text)), quote=False)


def md_text(text: Any) -> str:
    """A kit message for Markdown: its ```name``` spans stay code spans, the rest is :func:`md_escape`-d.

    The kit's reasons name tables and files in backticks ("needs `spend`: add spend.csv"); a code
    span shows its content literally, so only the text around it needs escaping.

    >>> md_text("needs `spend`: add spend.csv (*cost*)")
    'needs `spend`: add spend.csv \\\\(\\\\*cost\\\\*\\\\)'
    """
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans, escape it all
        return md_escape(text)
    return "".join(f"`{p}`" if i % 2 and p.strip() and "\n" not in p else md_escape(p) for i, p in enumerate(parts))


def bullets(lines: Any) -> str:
    """Kit messages as a Markdown list, each :func:`md_text`-escaped (notes beside a table or chart).

    >>> print(bullets(["pooled `Email`", "2 < 3"]))
    - pooled `Email`
    - 2 &lt; 3
    """
    return "\n".join(f"- {md_text(' '.join(str(line).split()))}" for line in lines)


def missing_line(text: Any) -> str:
    """The one line a section shows instead of its chart or table when its data is missing
    (Markdown: a quote, so it stands apart from the narrative).

    >>> missing_line("This section needs `spend`: add spend.csv.")
    '> This section needs `spend`: add spend.csv.'
    """
    return "> " + md_text(" ".join(str(text).split()))


def html_escape(text: Any) -> str:
    """Text safe inside HTML (element content and quoted attributes)."""
    return html.escape(str(text), quote=True)


def mathtext(text: Any) -> str:
    """Text for a matplotlib label: ``$`` would start mathtext, so it is backslashed.

    >>> mathtext("$1.2M")
    '\\\\$1.2M'
    """
    return str(text).replace("$", r"\$")


def sentence(text: str) -> str:
    """``text`` with a capital first letter (a clause that became the start of a sentence).

    >>> sentence("cost per lead was $342")
    'Cost per lead was $342'
    """
    return text[:1].upper() + text[1:]


def and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``.

    >>> and_list(["visits"]), and_list(["visits", "leads", "CAC"])
    ('visits', 'visits, leads and CAC')
    """
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
