rule demo_data:
    output:
        manifest="results/{dataset}/raw/manifest.csv",
        images=directory("results/{dataset}/raw/images"),
    params:
        code=code_fingerprint("demo_data", "datasets", "atomic"),
        settings=json.dumps(config["demo"], sort_keys=True),
    log:
        "logs/demo_data/{dataset}.log",
    benchmark:
        "results/benchmarks/demo_data/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    shell:
        "xvertnet demo-data --out-dir {output.images} --manifest {output.manifest}"
        " --settings {params.settings:q} > {log} 2>&1"
