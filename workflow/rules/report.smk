rule aggregate:
    """runs.csv, tables and figures from every run of the sweep."""
    input:
        run_targets(),
    output:
        runs=RUNS_CSV,
        md=report(f"{TABLES_DIR}/main.md", caption="../report/main_table.rst", category="Tables"),
        tex=f"{TABLES_DIR}/main.tex",
        csv=f"{TABLES_DIR}/main.csv",
        figures=[
            report(
                f"{FIGURES_DIR}/{d}_accuracy.png",
                caption="../report/accuracy_figure.rst",
                category="Figures",
                labels={"dataset": d},
            )
            for d in DATASETS
        ],
        claims=[
            report(
                f"{FIGURES_DIR}/{f}.png",
                caption="../report/claim_figure.rst",
                category="Paper claims",
                labels={"figure": f},
            )
            for f in CLAIM_FIGURES
        ],
    log:
        f"{LOGS_DIR}/aggregate.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.runs),
    shell:
        "python -m aftbench report --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"


rule tables:
    """Rebuild runs.csv, tables and figures from the sweep's runs that have finished, without
    scheduling any training: `snakemake tables --cores 1`. (No outputs: it always runs.)"""
    log:
        f"{LOGS_DIR}/tables.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        existing=lambda w: " ".join(p for p in run_targets() if os.path.exists(p)),
        out_dir=RESULTS,
    shell:
        "python -m aftbench report --metrics {params.existing} --out-dir {params.out_dir} > {log} 2>&1; cat {log}"
