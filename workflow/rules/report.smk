rule aggregate:
    """runs.csv, tables and figures from every run of the sweep, in the sweep's own folder."""
    input:
        # the fixed runs apart from an adaptive block's (a checkpoint): they are planned from the start
        metrics=run_targets(),
        selected=selected_run_targets,
        scores=score_targets(),
        selections=selection_targets(),
    output:
        runs=runs_table_path(SWEEP),
        claims_md=report(
            f"{report_dir(SWEEP)}/tables/claims.md", caption="../report/claims_table.rst", category="1. Claims"
        ),
        claims_tex=f"{report_dir(SWEEP)}/tables/claims.tex",
        claims_csv=f"{report_dir(SWEEP)}/tables/claims.csv",
        md=report(f"{report_dir(SWEEP)}/tables/main.md", caption="../report/main_table.rst", category="2. Tables"),
        tex=f"{report_dir(SWEEP)}/tables/main.tex",
        csv=f"{report_dir(SWEEP)}/tables/main.csv",
        figures=[
            report(
                f"{report_dir(SWEEP)}/figures/{d}_difference.png",
                caption="../report/difference_figure.rst",
                category="3. Per dataset",
                labels={"dataset": d, "figure": "difference to STL"},
            )
            for d in DATASETS
        ],
        curves=[
            report(
                f"{report_dir(SWEEP)}/figures/{d}_curves.png",
                caption="../report/curves_figure.rst",
                category="3. Per dataset",
                labels={"dataset": d, "figure": "training curves"},
            )
            for d in DATASETS
        ],
        curves_csv=f"{report_dir(SWEEP)}/tables/curves.csv",
        claims=[
            report(
                f"{report_dir(SWEEP)}/figures/{f}.png",
                caption="../report/claim_figure.rst",
                category="4. Paper claims",
                labels={"figure": f},
            )
            for f in CLAIM_FIGURES
            if f in FIGURES
        ],
        score_tables=[
            report(
                f"{report_dir(SWEEP)}/tables/{t}.md",
                caption="../report/score_table.rst",
                category="5. Which teachers",
                labels={"table": t},
            )
            for t in SCORE_TABLES
        ],
        score_csv=[f"{report_dir(SWEEP)}/tables/{t}.csv" for t in SCORE_TABLES],
        knowledge_md=report(
            f"{report_dir(SWEEP)}/tables/knowledge_gain.md",
            caption="../report/knowledge_gain_table.rst",
            category="1. Claims",
        ),
        knowledge_csv=f"{report_dir(SWEEP)}/tables/knowledge_gain.csv",
        paper_error_md=report(
            f"{report_dir(SWEEP)}/tables/paper_error.md",
            caption="../report/paper_error_table.rst",
            category="1. Claims",
        ),
        paper_error_csv=f"{report_dir(SWEEP)}/tables/paper_error.csv",
        gain_figures=[
            report(
                f"{report_dir(SWEEP)}/figures/{t}.png",
                caption=f"../report/{t}_table.rst",
                category="1. Claims",
                labels={"figure": t},
            )
            for t in GAIN_REPORTS
            if t in FIGURES
        ],
        score_figures=[
            report(
                f"{report_dir(SWEEP)}/figures/{f}.png",
                caption="../report/score_figure.rst",
                category="5. Which teachers",
                labels={"figure": f},
            )
            for f in SCORE_FIGURES
            if f in FIGURES
        ],
    log:
        f"{LOGS_DIR}/aggregate/{SWEEP}.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.runs),
        headline=HEADLINE,
        margin=MARGIN,
        figures=" ".join(FIGURES),
    shell:
        "python -m aftbench --log {log} report --metrics {input.metrics} {input.selected} --scores {input.scores}"
        " --selections {input.selections} --out-dir {params.out_dir} --headline {params.headline}"
        " --equivalence-margin {params.margin} --figures {params.figures}"


rule tables:
    """Rebuild runs.csv, tables and figures from the sweep's runs that have finished, without
    scheduling any training: `snakemake tables --cores 1`. (No outputs: it always runs.)"""
    log:
        f"{LOGS_DIR}/tables/{SWEEP}.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        existing=lambda w: " ".join(
            p for p in run_targets() + [metrics_path(r) for r in selected_runs()] if os.path.exists(p)
        ),
        scores=lambda w: " ".join(p for p in score_targets() if os.path.exists(p)),
        selections=lambda w: " ".join(p for p in selection_targets() if os.path.exists(p)),
        out_dir=report_dir(SWEEP),
        headline=HEADLINE,
        margin=MARGIN,
        figures=" ".join(FIGURES),
    shell:
        "python -m aftbench --log {log} report --metrics {params.existing} --scores {params.scores}"
        " --selections {params.selections} --out-dir {params.out_dir} --headline {params.headline}"
        " --equivalence-margin {params.margin} --figures {params.figures}; cat {log}"


rule track:
    """Each finished run's settings, training curves and final metrics, sent to the tracker
    config.yaml's `track` names (aftbench.report.track); only runs not already sent unchanged."""
    input:
        metrics=run_targets(),
        selected=selected_run_targets,
    output:
        track_done("{sink}", SWEEP),
    log:
        f"{LOGS_DIR}/track/{{sink}}/{SWEEP}.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        sweep=SWEEP,
        options=shlex.quote(
            json.dumps({**defaults("track_options"), **CONFIG.get("track_options", {})}, sort_keys=True)
        ),
    shell:
        AFTBENCH + " --log {log} track --sink {wildcards.sink} --sweep {params.sweep}"
        " --metrics {input.metrics} {input.selected} --options {params.options} --out {output}"


rule leaderboard:
    """One table over every finished run under results/, all sweeps, each run once
    (aftbench.report.leaderboard): `snakemake leaderboard --cores 1` or `python -m aftbench leaderboard`.
    Remade whenever any sweep's report changes."""
    input:
        reports=lambda w: sorted({runs_table_path(SWEEP), *glob.glob(f"{REPORTS_DIR}/*/runs.csv")}),
    output:
        md=report(
            f"{LEADERBOARD_DIR}/tables/main.md",
            caption="../report/leaderboard_table.rst",
            category="6. Across sweeps",
        ),
        csv=f"{LEADERBOARD_DIR}/tables/main.csv",
        tex=f"{LEADERBOARD_DIR}/tables/main.tex",
        runs=f"{LEADERBOARD_DIR}/runs.csv",
    log:
        f"{LOGS_DIR}/leaderboard.log",
    conda:
        "../../envs/aftbench.yaml"
    shell:
        "python -m aftbench --log {log} leaderboard --out-dir " + LEADERBOARD_DIR
