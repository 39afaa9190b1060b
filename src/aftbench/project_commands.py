"""The commands about a whole project rather than one job: `validate` (a config, before any
job), `list` (what the registries hold, with the config's plugins), `cost` (a sweep's bill) and
`leaderboard` (one table over every finished run, all sweeps).
Each reads config.yaml and --configfile / --config as Snakemake would (aftbench.config.load)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aftbench.core import plugins
from aftbench.core.layout import LEADERBOARD_DIR, REPORTS_DIR, RUNS_DIR


def config_files(a) -> list[str]:
    # As Snakemake does: the Snakefile's `configfile: config.yaml` (if present here, or if no file
    # is given), then every --configfile merged over it, then --config.
    return (["config.yaml"] if not a.configfile or Path("config.yaml").is_file() else []) + (a.configfile or [])


def _cmd_cost(a):
    from aftbench.config.check import validate_config
    from aftbench.config.load import load_config
    from aftbench.core.schema import ConfigError
    from aftbench.cost.bill import estimate, render
    from aftbench.cost.measured import compare

    try:
        resolved = validate_config(load_config(config_files(a), a.config))
    except ConfigError as err:
        print("config not valid:\n" + "\n".join(f"  - {p}" for p in err.problems), file=sys.stderr)
        return 1
    est = estimate(resolved, a.device, a.root, everything=a.everything)
    text = render(est, a.gpus) + (("\n" + compare(est, a.compare)) if a.compare else "")
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.csv:
        est.frame().to_csv(a.csv, index=False)
    return 0


def _cmd_validate(a):
    from aftbench.config.check import validate_config
    from aftbench.config.load import load_config
    from aftbench.config.preflight import damaged_artifacts
    from aftbench.core.schema import ConfigError
    from aftbench.selection.adaptive import SelectionFileError, known_selections
    from aftbench.sweep.expand import expand_sweep, planned_bound, refitted_datasets, tuning_budgets

    files = config_files(a)
    try:
        cfg = load_config(files, a.config)
        resolved = validate_config(cfg)
        if damaged := damaged_artifacts(resolved):
            raise ConfigError(damaged, header="damaged inputs")
        now = len(expand_sweep(resolved, selections=known_selections(resolved)))
        bound = planned_bound(resolved)
    except (ConfigError, SelectionFileError) as err:
        where = " + ".join(files) + "".join(f" --config {c}" for c in a.config)
        print(f"{where}: not valid", file=sys.stderr)
        for problem in getattr(err, "problems", [str(err)]):
            print(f"  - {problem}", file=sys.stderr)
        return 1
    more = f" now, at most {bound} once its teacher selections are made" if bound != now else ""
    print(f"{' + '.join(files)}: valid; sweep {cfg['sweep']!r} has {now} runs{more}")
    for i, (budget, refit) in enumerate(zip(tuning_budgets(resolved), refitted_datasets(resolved), strict=True)):
        train = {m: n for m, n in budget.items() if resolved["methods"][m]["kind"] == "train"}
        equal = "equal" if len(set(train.values())) <= 1 else "UNEQUAL"
        listed = ", ".join(f"{m} {n}" for m, n in budget.items())
        print(
            f"  block {i + 1}: configurations chosen on validation per cell ({equal} across training methods): {listed}"
        )
        if refit:
            print(
                f"    tune-then-refit on {', '.join(refit)}: each value fitted on train, the one chosen on "
                "validation (per seed) refitted on train + val"
            )
    return 0


def _cmd_list(a):
    from aftbench.config.catalog import REGISTRIES, catalog
    from aftbench.config.load import load_config
    from aftbench.core.schema import ConfigError

    unknown = [k for k in a.kinds if k not in REGISTRIES]
    if unknown:
        print(f"aftbench list: unknown {unknown}; choose from {list(REGISTRIES)}", file=sys.stderr)
        return 2
    files = [f for f in config_files(a) if Path(f).is_file() or a.configfile]
    try:  # the config's plugins are listed with the built-in entries
        names = load_config(files, a.config).get("plugins", []) if files or a.config else []
        plugins.activate([*(a.plugins or []), *names])
        plugins.import_active()
    except (ConfigError, plugins.PluginError) as err:
        print(f"aftbench list: {err}", file=sys.stderr)
        return 1
    print(catalog(a.kinds))
    return 0


def _cmd_leaderboard(a):
    from aftbench.report.leaderboard import build_leaderboard

    runs, table, problems = build_leaderboard(a.runs, a.reports, a.out_dir)
    sweeps = sorted({s for ss in runs.sweeps for s in ss.split("+") if s})
    print(
        f"leaderboard: {len(runs)} runs ({len(table)} rows) from sweeps {sweeps} into {a.out_dir}/tables/main.md"
        + (f"; {len(problems)} record(s) left out (failed verification: listed there)" if problems else "")
    )
    return 0


def add_project_commands(sub) -> None:
    """Add validate, list and cost to the `python -m aftbench` subcommands `sub`."""
    configs = argparse.ArgumentParser(add_help=False)
    configs.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="config file(s) merged over ./config.yaml in order, as Snakemake's --configfile",
    )
    configs.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="overrides, as Snakemake's --config (e.g. sweep=offline_full)",
    )
    s = sub.add_parser(
        "validate",
        parents=[configs],
        help="check a config against the schema, the registries and every backend's "
        "arguments, before any job (exit 1 listing every problem)",
    )
    s.set_defaults(fn=_cmd_validate)
    s = sub.add_parser(
        "list",
        parents=[configs],
        help="what is registered (teachers, students, methods, datasets, with the config's plugins) and what each accepts",
    )
    s.add_argument("kinds", nargs="*", metavar="KIND", help="teachers | students | methods | datasets (default: all)")
    s.set_defaults(fn=_cmd_list)
    s = sub.add_parser(
        "leaderboard",
        help="one table over every finished run under results/ (all sweeps), each run once, with the sweeps "
        "each row's runs come from (md, csv, tex)",
    )
    s.add_argument("--runs", default=RUNS_DIR, help="the runs folder (default %(default)s)")
    s.add_argument("--reports", default=REPORTS_DIR, help="the sweeps' report folders (default %(default)s)")
    s.add_argument("--out-dir", default=LEADERBOARD_DIR)
    s.set_defaults(fn=_cmd_leaderboard)
    c = sub.add_parser(
        "cost",
        parents=[configs],
        help="what a sweep will cost before it is submitted: jobs, FLOPs, device-hours, disk, wall time "
        "on N GPUs (finished jobs are free); no weights are downloaded",
    )
    c.add_argument("--device", help="an entry of config.yaml's cost.devices (default: cost.device)")
    c.add_argument(
        "--gpus", type=int, nargs="+", default=[8, 64], help="wall time on these many GPUs (on a CPU device: cores)"
    )
    c.add_argument(
        "--everything", action="store_true", help="price every job, finished or not (to compare with a finished sweep)"
    )
    c.add_argument("--root", default=".", help="the project folder whose results/ holds finished jobs")
    c.add_argument(
        "--compare", metavar="DIR", help="also compare with the jobs' measured benchmark files (results/benchmarks)"
    )
    c.add_argument("--out", help="also write the bill (markdown) here")
    c.add_argument("--csv", help="also write one row per job (kind, ids, FLOPs, seconds, done) here")
    c.set_defaults(fn=_cmd_cost)
