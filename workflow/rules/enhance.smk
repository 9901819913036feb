rule enhance:
    input:
        models=get_xvertnet_inputs,
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        h5="results/enhanced/{method}/{dataset}/{shard}.h5",
        png=directory("results/enhanced/{method}/{dataset}/{shard}"),
    wildcard_constraints:
        method="|".join(XVERTNET_ENTRIES) or "no-xvertnet-entry",
    params:
        code=code_fingerprint("enhance", "internal", "model", "preprocess", "wls", "train", "losses"),
        entry=xvertnet_settings_record,
        options=xvertnet_enhance_options,
        splits=" ".join(config["enhance"]["splits"]),
        tile=config["enhance"]["tile"],
        overlap=config["enhance"]["overlap"],
        device=config["enhance"]["device"],
    log:
        "logs/enhance/{method}/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/enhance/{method}/{dataset}/{shard}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet enhance-shard --method {wildcards.method} {params.options} --roi {input.roi}"
        " --out {output.h5} --png-dir {output.png} --splits {params.splits} --tile {params.tile}"
        " --overlap {params.overlap} --device {params.device} > {log} 2>&1"


rule enhance_index:
    input:
        get_enhanced_shards,
    output:
        "results/enhanced/{method}/{dataset}/index.csv",
    log:
        "logs/enhance_index/{method}/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "xvertnet enhanced-index {input} --out {output} > {log} 2>&1"
