"""The docs' commands run as shown. Every `dvc exp run` of README.md and docs/ composes with Hydra and validates
against the params schema, as `dvc exp run` would compose it; the `dvc exp show` commands run in a reproduced
pipeline. A command that needs what a plain clone lacks (a GPU, the hub, a remote, a file of one's own) says so in
its block or sits under a heading that does."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from dvc.utils.hydra import compose_and_dump, get_hydra_sweeps

from conftest import ROOT, dvc
from reranker.checks.card import check_card_names
from reranker.core.errors import PipelineError
from reranker.params import load_params

# docs/benchmarks.md's commands ran at the commit each table names (the page says how to rerun one there)
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md",
         *sorted(page for page in (ROOT / "docs").glob("*.md") if page.name != "benchmarks.md")]
OWN_RECIPE = "recipe=support-faq"  # docs/recipes.md's recipe of one's own, written by own_recipe() below
BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.DOTALL)


def commands(page: Path) -> list[str]:
    """The commands of a page's bash blocks: continuation lines joined, comments and blank lines dropped."""
    found = []
    for block in BLOCK.findall(page.read_text()):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" # ")[0].strip() if not command.lstrip().startswith("#") else ""
            if command:
                found.append(command)
    return found


def overrides(command: str) -> list[str]:
    """The Hydra overrides of a `dvc exp run` command: each -S/--set-param value, as DVC passes them on."""
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-S", "--set-param")]


EXP_RUNS = [(page.relative_to(ROOT).as_posix(), command) for page in PAGES for command in commands(page)
            if command.startswith("dvc exp run")]


def test_the_docs_have_exp_run_commands_to_check():
    """The extraction finds every page's commands, continuation lines joined and comments dropped."""
    pages = {page for page, _ in EXP_RUNS}
    assert pages >= {"README.md", "docs/recipes.md", "docs/evaluation.md", "docs/team.md", "docs/scale.md"}
    commands = {command for _, command in EXP_RUNS}
    assert "dvc exp run -n support-faq -S recipe=support-faq" in commands
    assert ("dvc exp run -S download.source=/data/faq.jsonl -S 'download.columns={query:q,document:a}'    "
            "-S \"card.model_name='FAQ reranker'\" -S card.model_id=my-org/faq-reranker") in commands


@pytest.mark.parametrize(("page", "command"), EXP_RUNS, ids=[f"{page}:{i}" for i, (page, _) in enumerate(EXP_RUNS)])
def test_exp_run_commands_compose_into_valid_params(page, command, tmp_path):
    """The params `dvc exp run` would write for the command: Hydra accepts its overrides, the schema its result, and
    its card names its own data's model. Data paths of one's own (/data/...) need not exist: the check stage reads
    them when the command runs."""
    params = tmp_path / "params.yaml"
    given = overrides(command)
    conf = own_recipe(tmp_path) / "conf" if OWN_RECIPE in given else ROOT / "conf"
    # a queued run expands a sweep (a=1,2) into one experiment per value, as `dvc exp run --queue` does
    runs = ([run["params.yaml"] for run in get_hydra_sweeps({"params.yaml": given})] if "--queue" in command
            else [given])
    for run in runs:
        try:
            compose_and_dump(str(params), str(conf), None, "config", "", run)
        except Exception as error:  # Hydra's own errors: a key that does not exist, a bad override's syntax
            pytest.fail(f"{page}: `{command}` does not compose: {error}")
        try:
            loaded = load_params(params)
            check_card_names(loaded.download, loaded.card, conf / "recipe")
        except PipelineError as error:
            pytest.fail(f"{page}: `{command}` composes params the check rejects: {error}")


@pytest.mark.e2e
def test_exp_show_commands_run_on_a_reproduced_pipeline(reproduced):
    shows = [command for page in PAGES for command in commands(page) if command.startswith("dvc exp show")]
    assert shows
    for command in shows:
        result = dvc(reproduced, *shlex.split(command)[1:], "--csv", check=False)
        assert result.returncode == 0, f"`{command}`: {result.stderr}"
        assert len(result.stdout.splitlines()) >= 2, f"`{command}` shows no experiment"


def own_recipe(tmp_path: Path) -> Path:
    """docs/recipes.md's recipe of one's own, in a copy of conf/, with its /data/support files made from the shipped
    sample: the FAQ as (q, a) lines, the tickets as the held-out topics' BEIR folder, the run file as every query's
    first 30 documents. Returns the folder to run `rerank check -S recipe=support-faq` in."""
    import json
    import shutil

    section = (ROOT / "docs/recipes.md").read_text().split("### A recipe of your own", 1)[1]
    recipe = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    data = tmp_path / "data-of-mine"
    data.mkdir()
    with (data / "faq.jsonl").open("w") as faq:
        for part in sorted((ROOT / "sample/qa").glob("*.jsonl")):
            for line in part.read_text().splitlines():
                row = json.loads(line)
                faq.write(json.dumps({"q": row["question"], "a": row["answer"]}) + "\n")
    shutil.copytree(ROOT / "sample/heldout-topics", data / "tickets")
    documents = [json.loads(line)["_id"] for line in (data / "tickets/corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["_id"] for line in (data / "tickets/queries.jsonl").read_text().splitlines()]
    (data / "tickets.trec").write_text("".join(f"{query} Q0 {document} {rank} {30 - rank} engine\n"
                                               for query in queries for rank, document in enumerate(documents[:30])))
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    (repo / "conf/recipe/support-faq.yaml").write_text(recipe.replace("/data/support", str(data)))
    return repo


def test_the_docs_own_recipe_passes_rerank_check(tmp_path):
    import subprocess
    import sys

    repo = own_recipe(tmp_path)
    result = subprocess.run([sys.executable, "-m", "reranker.cli", "check", "-S", "recipe=support-faq"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "-S recipe=support-faq: ok (recipe support-faq)"
    assert not (repo / "params.yaml").exists()  # composed into a temporary file, as checked
    # the default recipe on that FAQ, with the sample's card left as it is: refused, before any run
    faq = tmp_path / "data-of-mine/faq.jsonl"
    result = subprocess.run([sys.executable, "-m", "reranker.cli", "check", "-S", f"download.source={faq}",
                             "-S", "download.columns={query:q,document:a}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "card.model_name is 'all-MiniLM-L6-v2 reranker distilled" in result.stderr
    assert f"download.source is {faq}" in result.stderr


def test_the_params_pages_error_examples_are_what_the_check_prints(tmp_path, monkeypatch):
    """docs/params.md shows two of the check's one-line errors: each is what `rerank check` prints for that edit."""
    import yaml

    from reranker.checks.params import check_params

    page = (ROOT / "docs/params.md").read_text().split("## Checks", 1)[1]
    shown = re.search(r"```\n(.*?)```", page, re.DOTALL).group(1).splitlines()
    edits = [lambda params: params["download"].update(limitt=5),
             lambda params: params["train"]["args"].update(eval_strategy="step")]
    assert len(shown) == len(edits)
    monkeypatch.chdir(tmp_path)
    for line, edit in zip(shown, edits):
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        edit(params)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        with pytest.raises(PipelineError) as raised:
            check_params("params.yaml")
        assert f"error: {raised.value}" == line
