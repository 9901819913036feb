# Downloads run on the submitting host: compute nodes often have no internet.
localrules:
    download,


rule download:
    output:
        manifest="results/{dataset}/download/manifest.csv",
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "results/benchmarks/download/{dataset}.tsv"
    conda:
        ENV
    threads: threads("download")
    resources:
        mem_mb=2000,
        runtime=24 * 60,
    params:
        code=code_fingerprint("download"),
        settings=lambda w: as_json(PLAN.datasets[w.dataset]),
        dest=lambda w, output: str(Path(output.manifest).parent),
    shell:
        "python -m xvertnet download {wildcards.dataset} --dest {params.dest:q} --settings {params.settings:q} --no-progress > {log:q} 2>&1"
