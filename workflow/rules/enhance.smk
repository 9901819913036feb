rule enhance:
    input:
        models=expand("results/models/iter{iteration}/model.json", iteration=range(1, ITERATIONS + 1)),
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        h5="results/enhanced/xvertnet/{dataset}/{shard}.h5",
        png=directory("results/enhanced/xvertnet/{dataset}/{shard}"),
    params:
        code=code_fingerprint("enhance", "model", "preprocess", "wls"),
        models=" ".join(model_dirs()),
        splits=" ".join(config["enhance"]["splits"]),
        tile=config["enhance"]["tile"],
        overlap=config["enhance"]["overlap"],
        device=config["enhance"]["device"],
    log:
        "logs/enhance/xvertnet/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/enhance/xvertnet/{dataset}/{shard}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet enhance-shard --method xvertnet --models {params.models} --roi {input.roi}"
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
