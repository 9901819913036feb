checkpoint shard:
    input:
        manifest=lambda w: PLAN.manifest(w.dataset),
    output:
        directory("results/{dataset}/shards"),
    log:
        "logs/shard/{dataset}.log",
    benchmark:
        "results/benchmarks/shard/{dataset}.tsv"
    conda:
        ENV
    threads: threads("shard")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_fingerprint("shard"),
        settings=lambda w: as_json(PLAN.shard_settings(w.dataset)),
    shell:
        "python -m xvertnet shard {input.manifest:q} --out-dir {output:q} --settings {params.settings:q} > {log:q} 2>&1"


rule ingest:
    input:
        manifest="results/{dataset}/shards/{shard}.csv",
    output:
        h5="results/{dataset}/ingest/{shard}.h5",
        rejects="results/{dataset}/ingest/{shard}.rejects.csv",
    log:
        "logs/ingest/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}/{shard}.tsv"
    conda:
        ENV
    threads: threads("ingest")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_fingerprint("ingest"),
        settings=section("ingest"),
    shell:
        "python -m xvertnet ingest --manifest {input.manifest:q} --out {output.h5:q} --rejects {output.rejects:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
