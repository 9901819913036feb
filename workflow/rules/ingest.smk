checkpoint shards:
    input:
        manifest=get_manifest,
    output:
        directory("results/{dataset}/shards"),
    params:
        code=code_fingerprint("datasets"),
        shard_size=get_shard_size,
    log:
        "logs/shards/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "xvertnet shard {input.manifest} --out-dir {output} --shard-size {params.shard_size} > {log} 2>&1"


rule ingest:
    input:
        "results/{dataset}/shards/{shard}.csv",
    output:
        h5="results/{dataset}/ingest/{shard}.h5",
        rejects="results/{dataset}/ingest/{shard}.rejects.csv",
    params:
        code=code_fingerprint("io", "ingest", "shard_store"),
        max_pixels=config["ingest"]["max_pixels"],
        min_side=config["ingest"]["min_side"],
        jsrt="--jsrt-invert" if config["ingest"]["jsrt_invert"] else "--no-jsrt-invert",
    log:
        "logs/ingest/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet ingest --manifest {input} --out {output.h5} --rejects {output.rejects}"
        " --max-pixels {params.max_pixels} --min-side {params.min_side} {params.jsrt} > {log} 2>&1"
