rule roi:
    input:
        "results/{dataset}/ingest/{shard}.h5",
    output:
        h5="results/{dataset}/roi/{shard}.h5",
        rejects="results/{dataset}/roi/{shard}.rejects.csv",
        qc=directory("results/{dataset}/qc/roi/{shard}"),
    params:
        code=code_fingerprint("roi", "shard_store"),
        options=roi_cli_options(),
    log:
        "logs/roi/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/roi/{dataset}/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet roi {input} --out {output.h5} --rejects {output.rejects} --qc-dir {output.qc}"
        " {params.options} > {log} 2>&1"


rule roi_index:
    input:
        roi=get_roi_shards,
        rejects=get_reject_reports,
    output:
        index="results/{dataset}/roi/index.csv",
        rejects="results/{dataset}/rejects.csv",
    log:
        "logs/roi_index/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "xvertnet index {input.roi} --out {output.index} --rejects-in {input.rejects}"
        " --rejects-out {output.rejects} > {log} 2>&1"
