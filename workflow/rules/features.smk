rule extract_features:
    """One teacher over every split of one dataset, exactly once; training only reads this cache."""
    input:
        split=rules.split.output.npz,
    output:
        features=features_path("{dataset}", "{teacher}"),
        meta=sidecar(features_path("{dataset}", "{teacher}")),
    log:
        f"{LOGS_DIR}/features/{{dataset}}/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/features/{{dataset}}/{{teacher}}.tsv"
    conda:
        "../../envs/aftbench.yaml"
    threads: setting(CONFIG, "extract", "threads")
    resources:
        launcher=LAUNCHER,
        job=job_arg("extract"),
    params:
        spec=lambda w: shlex.quote(json.dumps(CONFIG["teachers"][w.teacher], sort_keys=True)),
        options=shlex.quote(json.dumps(CONFIG["extract"], sort_keys=True)),
    shell:
        AFTBENCH + " --log {log} extract --launcher {resources.launcher} --job {resources.job}"
        " --teacher {wildcards.teacher} --spec {params.spec} --split {input.split}"
        " --out {output.features} --out-json {output.meta} --options {params.options}"
