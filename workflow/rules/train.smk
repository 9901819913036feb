rule train:
    input:
        get_train_data,
    output:
        model="results/models/{model_set}/iter{iteration}/model.pt",
        metadata="results/models/{model_set}/iter{iteration}/model.json",
        log_csv="results/models/{model_set}/iter{iteration}/train_log.csv",
        curve="results/models/{model_set}/iter{iteration}/loss_curve.png",
    wildcard_constraints:
        model_set="|".join(MODEL_SETS) or "no-model-set",
    params:
        code=code_fingerprint("train", "model", "losses", "device"),
        settings=train_settings_json,
        out_dir="results/models/{model_set}/iter{iteration}",
    log:
        "logs/train/{model_set}/iter{iteration}.log",
    benchmark:
        "results/benchmarks/train/{model_set}/iter{iteration}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    shell:
        "xvertnet train {input} --out-dir {params.out_dir} --iteration {wildcards.iteration}"
        " --settings {params.settings:q} > {log} 2>&1"


rule refine:
    input:
        model="results/models/{model_set}/iter{iteration}/model.pt",
        metadata="results/models/{model_set}/iter{iteration}/model.json",
        data=get_refine_input,
    output:
        "results/{dataset}/refine/{model_set}/iter{iteration}/{shard}.h5",
    wildcard_constraints:
        model_set="|".join(MODEL_SETS) or "no-model-set",
    params:
        code=code_fingerprint("enhance", "model", "preprocess", "wls"),
        model_dir="results/models/{model_set}/iter{iteration}",
        device=config["enhance"]["device"],
    log:
        "logs/refine/{dataset}/{model_set}/iter{iteration}/{shard}.log",
    benchmark:
        "results/benchmarks/refine/{dataset}/{model_set}/iter{iteration}/{shard}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet refine {input.data} --model {params.model_dir} --out {output} --device {params.device} > {log} 2>&1"
