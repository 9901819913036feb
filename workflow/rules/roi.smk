rule roi:
    input:
        ingest="results/{dataset}/ingest/{shard}.h5",
    output:
        h5="results/{dataset}/roi/{shard}.h5",
        rejects="results/{dataset}/roi/{shard}.rejects.csv",
        qc=directory("results/{dataset}/qc/roi/{shard}"),
    log:
        "logs/roi/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/roi/{dataset}/{shard}.tsv"
    conda:
        ENV
    threads: threads("roi")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_fingerprint("roi"),
        settings=section("roi"),
    shell:
        "python -m xvertnet roi {input.ingest:q} --out {output.h5:q} --rejects {output.rejects:q} --qc-dir {output.qc:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule roi_index:
    input:
        roi=stage_shards("roi"),
        rejects=reject_reports,
    output:
        index="results/{dataset}/roi/index.csv",
        rejects="results/{dataset}/rejects.csv",
    log:
        "logs/roi_index/{dataset}.log",
    benchmark:
        "results/benchmarks/roi_index/{dataset}.tsv"
    conda:
        ENV
    threads: threads("roi_index")
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_fingerprint("roi_index"),
    shell:
        "python -m xvertnet roi-index {input.roi:q} --out {output.index:q} --rejects-in {input.rejects:q}"
        " --rejects-out {output.rejects:q} > {log:q} 2>&1"
