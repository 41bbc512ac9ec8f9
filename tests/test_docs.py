"""The documentation follows the code: every params key of the schema is in the params reference, and every
relative link of the Markdown pages points at a file (and heading) that exists. Fast: no DVC, no torch, no model."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from reranker.params import Params

ROOT = Path(__file__).resolve().parents[1]
PARAMS_DOC = ROOT / "docs" / "params.md"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "sample" / "README.md",
                *(ROOT / "docs").glob("*.md")])
# [text](target) and [text](target "title"); images too. Not inside code spans: those are stripped first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def sections(annotation) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation: `X`, `X | None`, `Optional[X]`, `list[X]`, `dict[str, X]`..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    if typing.get_origin(annotation) is not None or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            found += sections(argument)
    return found


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a schema, nested sections included (a list's entries add no index: `a.b.c`)."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        paths.append(path)
        for section in sections(field.annotation):
            paths += field_paths(section, f"{path}.")
    return paths


def test_the_walk_finds_nested_optional_and_list_sections():
    paths = field_paths(Params)
    assert "download.source" in paths
    assert any(path.startswith("mine.teacher.") for path in paths), "an optional section was not walked"
    assert any(path.startswith("evaluate.collections.") for path in paths), "a list of sections was not walked"
    assert len(paths) == len(set(paths))


def test_every_params_key_is_in_the_params_reference():
    # A key counts as the first cell of a table row, | `mine.train.num_negatives` | 3 | ... |, or as a section's
    # heading, ## `mine`
    text = PARAMS_DOC.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\|\s*`([^`\s]+)`\s*\|", text, re.MULTILINE))
    listed |= set(re.findall(r"^#+\s*`([^`\s]+)`\s*$", text, re.MULTILINE))
    missing = [path for path in field_paths(Params) if path not in listed]
    assert not missing, f"docs/params.md has no row or heading for these keys of reranker/params.py: {missing}"


def relative_links(page: Path) -> list[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [target for target in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(page):
    assert page.exists(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to files or headings that do not exist: {broken}"


def test_readme_states_the_committed_default_run():
    """The README's "What the default run shows" quotes metrics/evaluate.json as committed: each figure it gives
    for the held-out topics and the dev set is the metric's value at the README's precision."""
    import json

    metrics = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
    text = (ROOT / "README.md").read_text().split("## What the default run shows", 1)[1].split("\n## ", 1)[0]
    held_out, dev = (line.replace("−", "-") for line in text.strip().splitlines()[:2])

    def figures(comparison: dict) -> str:
        return (f"{comparison['delta']:+.3f} [{comparison['ci_low']:+.3f}, {comparison['ci_high']:+.3f}]"
                .replace("+-", "-"))

    entry, ndcg = metrics["heldout-topics"], "ndcg@10"
    assert f"ndcg@10 is {entry['trained'][ndcg]:.3f}" in held_out
    assert f"{figures(entry['vs_first_stage'][ndcg])} over BM25" in held_out
    assert f"(p = {entry['vs_first_stage'][ndcg]['p_value']:.2g})" in held_out
    assert f"{figures(entry['vs_embedding_model'][ndcg])} below the embedding model" in held_out
    assert entry["vs_embedding_model"][ndcg]["delta"] < 0 < entry["vs_first_stage"][ndcg]["delta"]
    entry = metrics["dev"]
    assert f"it is {entry['trained'][ndcg]:.3f}, {figures(entry['vs_embedding_model'][ndcg])} below it" in dev
    assert entry["vs_embedding_model"][ndcg]["delta"] < 0
