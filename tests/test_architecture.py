"""The shape of the code: each DVC stage depends on exactly the project modules it imports, the committed
dvc.lock records the code as it is, and the library's packages hold no code of their own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PROJECT_PACKAGES = ("reranker", "stages")
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None  # a name imported from a module, not a module


def project_imports(file: Path) -> set[Path]:
    """The project modules `file` imports, at any depth of its code (imports inside functions count)."""
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    modules = {module_file(name) for name in names if name.split(".")[0] in PROJECT_PACKAGES}
    # package __init__ files are empty (tested below), so importing through them runs no code to depend on
    return {module for module in modules if module is not None and module.name != "__init__.py"}


def imported_closure(file: Path) -> set[str]:
    seen, pending = set(), [file]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(project_imports(current))
    return {str(path.relative_to(ROOT)) for path in seen}


def stage_module(stage: dict) -> Path:
    python, flag, module, *_ = stage["cmd"].split()
    assert (python, flag) == ("python", "-m"), stage["cmd"]
    return module_file(module)


def covering_dep(module: str, declared: set[str]) -> str | None:
    """The dep of `declared` that holds `module`: the module's own path or a folder above it."""
    return next((dep for dep in declared if module == dep or module.startswith(dep.rstrip("/") + "/")), None)


@pytest.mark.parametrize("name", DVC_YAML)
def test_stage_depends_on_exactly_the_code_it_imports(name):
    """Each stage depends on its script, the wings (folders of reranker/) it imports from and the top-level modules
    it imports: every imported module is covered, and no declared wing or module goes unimported."""
    stage = DVC_YAML[name]
    declared = {dep for dep in stage["deps"] if dep.startswith(PROJECT_PACKAGES)}
    imported = imported_closure(stage_module(stage))
    uncovered = {module for module in imported if covering_dep(module, declared) is None}
    assert not uncovered, f"stage {name} imports, but dvc.yaml does not cover: {uncovered}"
    unused = {dep for dep in declared if not any(covering_dep(module, {dep}) for module in imported)}
    assert not unused, f"dvc.yaml lists, but stage {name} imports nothing from: {unused}"
    for dep in declared:
        is_wing = (ROOT / dep).is_dir()
        assert not is_wing or dep.count("/") == 1, f"stage {name}: depend on the wing, not on {dep}"
        assert is_wing or dep.count("/") == 1, f"stage {name}: {dep} lies in a wing; depend on the wing's folder"


def loaded_sections(file: Path) -> set[str]:
    """The params sections a stage script loads: the arguments of its `load_sections(...)` calls."""
    return {arg.value for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_sections"
            for arg in node.args if isinstance(arg, ast.Constant)}


@pytest.mark.parametrize("name", DVC_YAML)
def test_stage_declares_the_params_sections_it_loads(name):
    """DVC reruns a stage when a param it declares changes: every section the script loads is declared (whole or by
    its keys), and every declared param lies in a section it loads. check and card declare all of params.yaml."""
    stage = DVC_YAML[name]
    declared = [next(iter(param)) if isinstance(param, dict) else param for param in stage.get("params", [])]
    if declared == ["params.yaml"]:
        return
    declared_sections = {param.split(".")[0] for param in declared}
    loaded = loaded_sections(stage_module(stage))
    assert not loaded - declared_sections, f"stage {name} loads {loaded - declared_sections} but does not declare them"
    assert not declared_sections - loaded, f"stage {name} declares {declared_sections - loaded} but never loads them"


def test_package_init_files_hold_no_code():
    for init in ROOT.glob("reranker/**/__init__.py"):
        assert init.read_text().strip() == "", f"{init} must stay empty (stages' deps skip it)"


def test_committed_lock_records_the_code_on_disk():
    """A teammate's `git clone && dvc pull` is up to date only if dvc.lock hashes the code as committed."""
    result = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True, cwd=ROOT, check=True)
    stale = {}
    for name, changes in json.loads(result.stdout).items():
        for change in changes:
            if change == "changed command":
                stale.setdefault(name, []).append("cmd")
            elif isinstance(change, dict):
                stale.setdefault(name, []).extend(
                    path for path in change.get("changed deps", {}) if path.startswith(PROJECT_PACKAGES))
    stale = {name: paths for name, paths in stale.items() if paths}
    assert not stale, f"dvc.lock records other code than on disk for {stale}: run `dvc repro` and commit dvc.lock"


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("module", ["stages.download", "stages.card", "reranker.params"])
def test_light_stages_import_no_torch(module):
    """download and card (and params, which every stage loads) start without torch or sentence-transformers."""
    code = f"import sys, {module}; print(sorted({{'torch', 'sentence_transformers'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_architecture_page_lists_each_stages_code_as_dvc_yaml_does():
    """docs/architecture.md's table of the code each stage depends on is dvc.yaml's, row for row."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = {}
    for line in page.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].strip("`") in DVC_YAML:
            rows[cells[0].strip("`")] = (cells[1].strip("`"), {dep.strip(" `") for dep in cells[2].split(",")})
    for name, stage in DVC_YAML.items():
        script = next(dep for dep in stage["deps"] if dep.startswith("stages/"))
        code = {dep.removeprefix("reranker/") for dep in stage["deps"] if dep.startswith("reranker/")}
        assert rows.get(name) == (script, code), f"docs/architecture.md's row for {name} differs from dvc.yaml"
