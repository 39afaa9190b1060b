"""The code's shape, kept by tools: imports only flow downward (import-linter's layers contract
in pyproject.toml, which also catches an injected upward import), no module above 450 lines,
ruff (lint + format) and snakefmt clean, `aftbench --version`, and a non-editable install
that validates a config without the checkout."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aftbench"
BIN = Path(sys.executable).parent
MAX_LINES = 450


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: `make setup` installs the test extras")
    return str(path)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_imports_only_flow_downward():
    p = run([tool("lint-imports"), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT)
    assert p.returncode == 0 and "2 kept, 0 broken" in p.stdout, p.stdout + p.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: the bottom layer importing the CLI (a cycle) is caught."""
    shutil.copytree(PACKAGE, tmp_path / "aftbench", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "aftbench" / "core" / "layout.py", "a") as f:
        f.write("\nfrom aftbench import cli  # noqa: E402,F401\n")
    env = {"PATH": str(BIN), "PYTHONPATH": str(tmp_path)}
    p = run([tool("lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path, env=env)
    assert p.returncode != 0 and "aftbench.core.layout -> aftbench.cli" in p.stdout, p.stdout + p.stderr


def test_a_cycle_inside_a_package_breaks_the_contract(tmp_path):
    """Modules of one package may import each other, but never in a loop: core.io importing
    core.records (which imports core.io) is caught by the acyclic-siblings contract."""
    shutil.copytree(PACKAGE, tmp_path / "aftbench", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "aftbench" / "core" / "io.py", "a") as f:
        f.write("\nfrom aftbench.core import records  # noqa: E402,F401\n")
    env = {"PATH": str(BIN), "PYTHONPATH": str(tmp_path)}
    p = run([tool("lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path, env=env)
    assert p.returncode != 0 and "no cycle among the modules of one package BROKEN" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("module", sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")))
def test_no_module_is_too_long(module):
    n = len((PACKAGE / module).read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (> {MAX_LINES}): split it by idea"


def test_ruff_lint_and_format():
    paths = ["src", "tests", "benchmarks"]
    p = run([tool("ruff"), "check", *paths], cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run([tool("ruff"), "format", "--check", *paths], cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_snakefmt():
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    p = run([tool("snakefmt"), "--check", *files], cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_version():
    p = run([sys.executable, "-m", "aftbench", "--version"])
    assert p.returncode == 0 and p.stdout.startswith("aftbench ") and "unknown" not in p.stdout


@pytest.mark.slow
def test_a_non_editable_install_validates_without_the_checkout(tmp_path):
    """`pip install .` (not -e): the schema travels inside the package, so validation needs no
    checkout."""
    source = tmp_path / "source"  # build from a copy: pip leaves a build/ folder beside what it builds
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    target = tmp_path / "site"
    p = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ]
    )
    assert p.returncode == 0, p.stdout + p.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "config.yaml", work / "my.yaml")
    code = (
        "import aftbench, sys; print(aftbench.__file__); "
        "from aftbench.cli import main; sys.exit(main(['validate', '--configfile', 'my.yaml']))"
    )
    p = run(
        [sys.executable, "-c", code],
        cwd=work,
        env={"PATH": str(BIN), "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[0].startswith(str(target)), "imported the checkout, not the installed package"
    assert "my.yaml: valid" in p.stdout
