"""The README and docs/*.md stay true to the repository they describe.

- every relative link (and every code span that is a bare repository path, e.g. `src/aftbench/cli.py`)
  points at a file or folder that exists, and every `#anchor` at a heading of its page;
- every `aftbench.<module>[.<name>]` a page names is a module of the package (and the name is in it);
- README.md has at most 250 lines, and its two commands are `make run` and `make test`, both
  targets of the Makefile;
- every job count written as "`snakemake -n [--config sweep=NAME]` plans N jobs (M runs" equals
  what `snakemake -n` plans for that sweep from an empty results folder (total of its job table;
  runs = its `train` + `probe` jobs), and README.md states no other "N jobs" / "N runs".

The dry runs run once per sweep per session, in an empty working directory, so finished results
in the checkout do not change the counts. docs/claims/*.md are generated and not checked here.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGES = sorted(p.parent for p in (ROOT / "src" / "aftbench").glob("*/__init__.py"))
PAGES = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    *(p / "README.md" for p in PACKAGES if (p / "README.md").exists()),
]
MAX_README_LINES = 250
# Counts in README.md that are not a sweep's size (whitespace collapsed to one space).
NOT_SWEEP_COUNTS = ("up to 100 jobs in flight",)
# Top-level folders whose paths a code span may name on its own (results/ is generated: not checked).
PATH_ROOTS = ("src/", "docs/", "tests/", "benchmarks/", "workflow/", "profiles/", "envs/")

COUNT = re.compile(
    r"`snakemake -n(?: --config sweep=(?P<sweep>\w+))?` plans (?P<jobs>\d[\d,]*) jobs(?: \((?P<runs>\d[\d,]*) runs)?"
)
ANY_COUNT = re.compile(r"\b\d[\d,]* (?:jobs|runs)\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
MODULE = re.compile(r"^aftbench(?:\.\w+)+$")


def text_of(page: Path) -> str:
    return page.read_text()


def prose(text: str) -> str:
    """The page without its fenced code blocks (links and paths there are examples, not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(text_of(page)).splitlines():
        m = re.match(r"^#{1,6} (.+)$", line)
        if m:
            s = slug(m[1])
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# --- links and paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_points_at_a_file(page):
    broken = []
    for target in LINK.findall(prose(text_of(page))):
        if re.match(r"^[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.relative_to(ROOT)}")
    assert not broken, f"{rel(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_repository_path_in_code_exists(page):
    missing = [
        span
        for span in CODE_SPAN.findall(prose(text_of(page)))
        if span.startswith(PATH_ROOTS) and not re.search(r"[\s<>{}*~|]", span) and not (ROOT / span).exists()
    ]
    assert not missing, f"{rel(page)} names paths that do not exist: {missing}"


def module_problem(name: str) -> str | None:
    """None if `name` is aftbench.<module>[.<attribute>...] with the attribute in that module."""
    parts = name.split(".")
    base = ROOT / "src"
    found = None
    for i in range(1, len(parts) + 1):
        here = base.joinpath(*parts[:i])
        if (here / "__init__.py").exists():
            found = (i, here / "__init__.py")
        elif here.with_suffix(".py").exists():
            found = (i, here.with_suffix(".py"))
        else:
            break
    if found is None or found[0] < 2:
        return f"{name}: no module {'.'.join(parts[:2])}"
    i, source = found
    if i < len(parts) and not re.search(rf"\b{re.escape(parts[i])}\b", source.read_text()):
        return f"{name}: {'.'.join(parts[:i])} has no {parts[i]}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_module_a_page_names_exists(page):
    names = {s for s in CODE_SPAN.findall(text_of(page)) if MODULE.match(s)}
    names |= set(re.findall(r"(?<![\w/.-])aftbench(?:\.\w+)+", flat(prose(text_of(page)))))
    problems = sorted(filter(None, (module_problem(n) for n in names)))
    assert not problems, f"{rel(page)}: " + "; ".join(problems)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_package_has_a_readme_naming_its_modules(package):
    """Each sub-package says what it owns: a README.md that names every one of its modules."""
    readme = package / "README.md"
    assert readme.exists(), f"src/aftbench/{package.name} has no README.md (what it owns, its public names)"
    text = readme.read_text()
    unnamed = [p.stem for p in package.glob("*.py") if p.stem != "__init__" and p.stem not in text]
    assert not unnamed, f"src/aftbench/{package.name}/README.md does not name its modules {unnamed}"


def test_every_module_the_code_names_exists():
    """Docstrings and comments of the package, the workflow and config.yaml name modules that exist
    (a module that moves leaves no pointer to its old home)."""
    files = [*(ROOT / "src" / "aftbench").rglob("*.py"), *(ROOT / "workflow").rglob("*.smk")]
    files += [ROOT / "Snakefile", ROOT / "config.yaml", *(ROOT / "benchmarks").glob("*.py")]
    problems = sorted(
        f"{f.relative_to(ROOT)}: {problem}"
        for f in files
        for name in set(re.findall(r"(?<![\w/.-])aftbench(?:\.\w+)+", f.read_text()))
        if (problem := module_problem(name))
    )
    assert not problems, problems


# --- the README's shape ---------------------------------------------------------------------------
def test_the_readme_is_short():
    n = len(text_of(README).splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (> {MAX_README_LINES}): move the detail to docs/"


def test_the_readme_gives_the_two_commands_and_the_makefile_has_them():
    text = text_of(README)
    section = text[text.index("## Two commands") :]
    section = section[: section.index("\n## ", 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no `{target}` target"


# --- sweep sizes against the dry run --------------------------------------------------------------
def default_sweep() -> str:
    return yaml.safe_load((ROOT / "config.yaml").read_text())["sweep"]


def number(s: str | None) -> int | None:
    return None if s is None else int(s.replace(",", ""))


def stated_counts() -> list[tuple[str, str, int, int | None]]:
    """(page, sweep, jobs, runs or None) for every count written in the checked form."""
    out = []
    for page in PAGES:
        for m in COUNT.finditer(flat(text_of(page))):
            out.append((rel(page), m["sweep"] or default_sweep(), number(m["jobs"]), number(m["runs"])))
    return out


def job_table(output: str) -> dict[str, int]:
    """The first "Job stats" table of a dry run: rule -> count, with its `total`."""
    table = output[output.index("Job stats:") :]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    assert "total" in counts, table[:500]
    return counts


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """sweep -> its dry run's job table, from an empty working directory; each sweep once."""
    cache: dict[str, dict[str, int]] = {}

    def plan(sweep: str) -> dict[str, int]:
        if sweep not in cache:
            work = tmp_path_factory.mktemp(f"dry_run_{sweep}")
            cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules"]
            cmd += ["--directory", str(work), "--configfile", str(ROOT / "config.yaml"), "--config", f"sweep={sweep}"]
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
            cache[sweep] = job_table(p.stdout + p.stderr)
        return cache[sweep]

    return plan


def count_params() -> list:
    return [
        # each a `snakemake -n` (1-4 s; ~26 s for the paper sweep's 24k jobs): slow
        pytest.param(page, sweep, jobs, runs, id=f"{page}:{sweep}:{jobs}", marks=pytest.mark.slow)
        for page, sweep, jobs, runs in stated_counts()
    ]


@pytest.mark.parametrize("page,sweep,jobs,runs", count_params())
def test_a_stated_sweep_size_is_what_snakemake_plans(planned, page, sweep, jobs, runs):
    table = planned(sweep)
    assert jobs == table["total"], f"{page} says sweep {sweep} is {jobs} jobs; `snakemake -n` plans {table['total']}"
    if runs is not None:
        dry = table.get("train", 0) + table.get("refit", 0) + table.get("probe", 0)
        assert runs == dry, f"{page} says sweep {sweep} has {runs} runs; `snakemake -n` plans {dry}"


def test_the_readme_states_the_default_and_paper_sweep_sizes():
    stated = {sweep for page, sweep, _, _ in stated_counts() if page == "README.md"}
    assert {default_sweep(), "paper"} <= stated, stated


def test_the_readme_states_sweep_sizes_only_in_the_checked_form():
    text = flat(text_of(README))
    for phrase in NOT_SWEEP_COUNTS:
        text = text.replace(phrase, "")
    loose = ANY_COUNT.findall(COUNT.sub("", text))
    assert not loose, (
        f"README.md states {loose} outside the checked form "
        '"`snakemake -n [--config sweep=NAME]` plans N jobs (M runs" (or add the phrase to NOT_SWEEP_COUNTS)'
    )
