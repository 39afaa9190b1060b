rule split:
    """Fixed, seeded, stratified train/val/test split of one dataset, written once."""
    output:
        npz=split_path("{dataset}"),
        meta=sidecar(split_path("{dataset}")),
        images=directory(split_images_dir(split_path("{dataset}"))),  # <part>.npy, memory-mapped by readers
    params:
        spec=lambda w: shlex.quote(json.dumps(CONFIG["datasets"][w.dataset], sort_keys=True)),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{LOGS_DIR}/split/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/split/{{dataset}}.tsv"
    shell:
        "python -m aftbench split --dataset {wildcards.dataset} --spec {params.spec}"
        " --out {output.npz} --out-json {output.meta} > {log} 2>&1"
