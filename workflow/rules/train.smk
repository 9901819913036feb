rule train:
    input:
        data=lambda w: PLAN.train_inputs(w.model_set, int(w.iteration), shard_names),
    output:
        model="results/models/{model_set}/iter{iteration}/model.pt",
        metadata="results/models/{model_set}/iter{iteration}/model.json",
        log_csv="results/models/{model_set}/iter{iteration}/train_log.csv",
        curve="results/models/{model_set}/iter{iteration}/loss_curve.png",
    params:
        code=code_fingerprint("train"),
        settings=lambda w: as_json(PLAN.model_set_settings(w.model_set)),
        out_dir=lambda w, output: str(Path(output.model).parent),
    log:
        "logs/train/{model_set}/iter{iteration}.log",
    benchmark:
        "results/benchmarks/train/{model_set}/iter{iteration}.tsv"
    conda:
        ENV
    threads: threads("train")
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    shell:
        "python -m xvertnet train {input.data:q} --out-dir {params.out_dir:q} --iteration {wildcards.iteration}"
        " --settings {params.settings:q} --no-progress > {log:q} 2>&1"


rule refine:
    input:
        model="results/models/{model_set}/iter{iteration}/model.pt",
        metadata="results/models/{model_set}/iter{iteration}/model.json",
        data=lambda w: PLAN.data_shard(w.dataset, w.shard, int(w.iteration) - 1, w.model_set),
    output:
        h5="results/{dataset}/refine/{model_set}/iter{iteration}/{shard}.h5",
    params:
        code=code_fingerprint("refine"),
        settings=section("enhance"),
        model_dir=lambda w, input: str(Path(input.model).parent),
    log:
        "logs/refine/{dataset}/{model_set}/iter{iteration}/{shard}.log",
    benchmark:
        "results/benchmarks/refine/{dataset}/{model_set}/iter{iteration}/{shard}.tsv"
    conda:
        ENV
    threads: threads("refine")
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python -m xvertnet refine {input.data:q} --model {params.model_dir:q} --out {output.h5:q} --settings {params.settings:q} > {log:q} 2>&1"
