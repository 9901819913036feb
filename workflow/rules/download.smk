# Downloads run on the submitting host: compute nodes often have no internet.
localrules:
    download,


rule download:
    output:
        "results/{dataset}/download/manifest.csv",
    params:
        code=code_fingerprint("download"),
        options=download_options,
        dest="results/{dataset}/download",
    log:
        "logs/download/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=24 * 60,
    shell:
        "xvertnet download {wildcards.dataset} --dest {params.dest} {params.options} --no-progress > {log} 2>&1"
