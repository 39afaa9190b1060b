rule split:
    """Fixed, seeded, stratified train/val/test split of one dataset, written once."""
    output:
        npz=split_path("{dataset}"),
        meta=sidecar(split_path("{dataset}")),
        images=directory(split_images_dir(split_path("{dataset}"))),  # <part>.npy, memory-mapped by readers
    log:
        f"{LOGS_DIR}/split/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/split/{{dataset}}.tsv"
    conda:
        "../../envs/aftbench.yaml"
    params:
        spec=lambda w: shlex.quote(json.dumps(CONFIG["datasets"][w.dataset], sort_keys=True)),
    shell:
        AFTBENCH + " --log {log} split --dataset {wildcards.dataset} --spec {params.spec}"
        " --out {output.npz} --out-json {output.meta}"
