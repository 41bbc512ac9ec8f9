"""Data texts inside Markdown (the model card, the suspects report, the unjudged documents): any text may hold
markup, pipes or newlines, which must show as they are, never run or break the table they sit in."""

from __future__ import annotations

import re

REPORT_CELL = 400  # characters of a text in a review report's cell: enough to judge it, short enough to scan


def markdown_text(value, limit: int = 300) -> str:
    """Data text inside Markdown: one line, no HTML, no table or emphasis syntax, so a row cannot inject
    markup or break the table it sits in; cut at `limit` characters.

    Example:
        >>> print(markdown_text("<script>x</script> | *a*"))
        &lt;script&gt;x&lt;/script&gt; \\| \\*a\\*
    """
    text = re.sub(r"\s+", " ", str(value)).strip()
    text = text[:limit] + ("…" if len(text) > limit else "")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text)
