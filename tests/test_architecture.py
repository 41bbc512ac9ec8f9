"""The shape of the code: each DVC stage depends on exactly the project modules it imports, the committed
dvc.lock records the code as it is, and the library's packages hold no code of their own."""

from __future__ import annotations

import ast
import hashlib
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


@pytest.mark.parametrize("name", DVC_YAML)
def test_stage_depends_on_exactly_the_code_it_imports(name):
    stage = DVC_YAML[name]
    declared = {dep for dep in stage["deps"] if dep.endswith(".py")}
    imported = imported_closure(stage_module(stage))
    assert not imported - declared, f"stage {name} imports, but dvc.yaml does not list: {imported - declared}"
    assert not declared - imported, f"dvc.yaml lists, but stage {name} does not import: {declared - imported}"


def test_package_init_files_hold_no_code():
    for init in ROOT.glob("reranker/**/__init__.py"):
        assert init.read_text().strip() == "", f"{init} must stay empty (stages' deps skip it)"


def test_committed_lock_records_the_code_on_disk():
    """A teammate's `git clone && dvc pull` is up to date only if dvc.lock hashes the code as committed."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    stale = sorted({dep["path"] for stage in lock.values() for dep in stage["deps"]
                    if dep["path"].endswith((".py", ".j2"))
                    and hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest() != dep["md5"]})
    assert not stale, f"dvc.lock records old hashes for {stale}: run `dvc repro` and commit dvc.lock"
    for name, stage in DVC_YAML.items():
        code = {dep for dep in stage["deps"] if dep.endswith((".py", ".j2"))}
        locked = {dep["path"] for dep in lock[name]["deps"] if dep["path"].endswith((".py", ".j2"))}
        assert code == locked, f"dvc.lock's {name} stage was recorded with other code deps: run `dvc repro`"


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("module", ["stages.download", "stages.card", "reranker.params"])
def test_light_stages_import_no_torch(module):
    """download and card (and params, which every stage loads) start without torch or sentence-transformers."""
    code = f"import sys, {module}; print(sorted({{'torch', 'sentence_transformers'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stdout
