rule demo_data:
    output:
        manifest="results/{dataset}/raw/manifest.csv",
        images=directory("results/{dataset}/raw/images"),
    log:
        "logs/demo_data/{dataset}.log",
    benchmark:
        "results/benchmarks/demo_data/{dataset}.tsv"
    conda:
        ENV
    threads: threads("demo_data")
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        code=code_fingerprint("demo_data"),
        settings=section("demo"),
    shell:
        "python -m xvertnet demo-data --out-dir {output.images:q} --manifest {output.manifest:q} --workers {threads} --settings {params.settings:q} > {log:q} 2>&1"
