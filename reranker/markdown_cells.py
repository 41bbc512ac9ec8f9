"""Texts from the data in a Markdown table a person reviews (the suspects report, the unjudged documents): any
text may hold markup, pipes or newlines, which must show as they are, never run or break the table."""

from __future__ import annotations

import html


def escaped(text: str, limit: int = 400) -> str:
    """A text safe in a Markdown table cell: HTML escaped (a text holding markup shows it, never runs it), Markdown's
    own characters backslash-escaped, newlines as spaces, cut at `limit` characters.

    Example:
        >>> print(escaped("<script>x</script> | *a*"))
        &lt;script&gt;x&lt;/script&gt; \\| \\*a\\*
    """
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    text = html.escape(text, quote=False)
    for character in "\\`*_[]|":
        text = text.replace(character, "\\" + character)
    return text
