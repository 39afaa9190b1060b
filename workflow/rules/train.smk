RUN = "dataset~{dataset}/student~{student}/method~{method}/teachers~{tset}/beta~{beta}/seed~{seed}"


rule train:
    """One student, one method, one teacher set, one seed: the one training loop."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        metrics=f"{R}/runs/{RUN}/metrics.json",
    wildcard_constraints:
        student=_alt(config["students"]),
    params:
        spec=run_spec,
    threads: config["train"].get("threads", 1)
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/runs/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/runs/{RUN}.tsv"
    shell:
        "python -m aftbench train --spec {params.spec} --split {input.split}"
        " --features {input.features} --out {output.metrics} > {log} 2>&1"


rule probe:
    """Linear probe on a teacher set's cached features (the teacher set's own quality)."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        metrics=f"{R}/runs/{RUN}/metrics.json",
    wildcard_constraints:
        student="probe",
    params:
        spec=run_spec,
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/runs/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/runs/{RUN}.tsv"
    shell:
        "python -m aftbench probe --spec {params.spec} --split {input.split}"
        " --features {input.features} --out {output.metrics} > {log} 2>&1"
