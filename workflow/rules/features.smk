rule extract_features:
    """One teacher over every split of one dataset, exactly once; training only reads this cache."""
    input:
        split=rules.split.output.npz,
    output:
        features=f"{R}/features/{{dataset}}/{{teacher}}.safetensors",
        meta=f"{R}/features/{{dataset}}/{{teacher}}.json",
    params:
        spec=lambda w: shlex.quote(json.dumps(config["teachers"][w.teacher], sort_keys=True)),
        options=shlex.quote(json.dumps(config["extract"], sort_keys=True)),
    threads: config["extract"].get("threads", 1)
    resources:
        launcher=LAUNCHER,
        job=job_arg("extract"),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/features/{{dataset}}/{{teacher}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{dataset}}/{{teacher}}.tsv"
    shell:
        "python -m aftbench extract --launcher {resources.launcher} --job {resources.job}"
        " --teacher {wildcards.teacher} --spec {params.spec} --split {input.split}"
        " --out {output.features} --out-json {output.meta} --options {params.options} > {log} 2>&1"
