rule aggregate:
    """runs.csv, tables and figures from every run of the sweep."""
    input:
        run_targets(),
    output:
        runs=f"{R}/runs.csv",
        md=report(f"{R}/tables/main.md", caption="../report/main_table.rst", category="Tables"),
        tex=f"{R}/tables/main.tex",
        csv=f"{R}/tables/main.csv",
        figures=[
            report(f"{R}/figures/{d}_accuracy.png", caption="../report/accuracy_figure.rst", category="Figures",
                   labels={"dataset": d})
            for d in DATASETS
        ],
        claims=[
            report(f"{R}/figures/{f}.png", caption="../report/claim_figure.rst", category="Paper claims",
                   labels={"figure": f})
            for f in CLAIM_FIGURES
        ],
    conda:
        "../../envs/aftbench.yaml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.runs),
    log:
        f"{R}/logs/aggregate.log",
    shell:
        "python -m aftbench report --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"


rule tables:
    """Rebuild runs.csv, tables and figures from the sweep's runs that have finished, without
    scheduling any training: `snakemake tables --cores 1`. (No outputs: it always runs.)"""
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/tables.log",
    params:
        existing=lambda w: " ".join(p for p in run_targets() if os.path.exists(p)),
        out_dir=R,
    shell:
        "python -m aftbench report --metrics {params.existing} --out-dir {params.out_dir} > {log} 2>&1; cat {log}"
