"""The card's per-query picture: each query's gain of the trained model over the first stage, sorted, as bars
above (gain) or below (loss) zero. An SVG written here, a few lines, because none of the project's dependencies
draws an image file (DVC renders the same data as an HTML plot, `plots/per_query_gains`), and the hub shows an SVG
beside the card."""

from __future__ import annotations

from html import escape

import pandas as pd

WIDTH, HEIGHT, MARGIN = 640, 220, 28


def gains_svg(gains: pd.DataFrame, title: str) -> str:
    """An SVG of `gains` (columns `rank`, `gain`, sorted ascending, as the evaluate stage writes them).

    Example: ``Path("data/hub/gains_dev.svg").write_text(gains_svg(pd.read_csv(csv), "dev: ndcg@10"))``.
    """
    values = gains["gain"].tolist()
    extent = max([abs(value) for value in values] + [1e-9])
    zero = MARGIN + (HEIGHT - 2 * MARGIN) / 2
    scale = (HEIGHT - 2 * MARGIN) / 2 / extent
    step = (WIDTH - 2 * MARGIN) / max(len(values), 1)
    bars = []
    for index, value in enumerate(values):
        height = abs(value) * scale
        top = zero - height if value > 0 else zero
        colour = "#2a9d4b" if value > 0 else "#c0392b" if value < 0 else "#999999"
        bars.append(f'<rect x="{MARGIN + index * step:.2f}" y="{top:.2f}" width="{max(step - 0.5, 0.5):.2f}" '
                    f'height="{max(height, 0.5):.2f}" fill="{colour}"/>')
    better, worse = sum(value > 0 for value in values), sum(value < 0 for value in values)
    caption = f"{escape(title)}: {better} better, {worse} worse, {len(values) - better - worse} same"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">'
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>'
            f'<text x="{MARGIN}" y="16">{caption}</text>'
            f'<line x1="{MARGIN}" y1="{zero:.2f}" x2="{WIDTH - MARGIN}" y2="{zero:.2f}" stroke="#333"/>'
            f'<text x="2" y="{MARGIN + 4}">+{extent:.2f}</text>'
            f'<text x="2" y="{HEIGHT - MARGIN + 4}">-{extent:.2f}</text>'
            + "".join(bars) + "</svg>\n")
