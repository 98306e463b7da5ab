rule prepare_data:
    output:
        data="results/data/{dataset}.pt",
        checksum="results/data/{dataset}.pt.sha256",
    log:
        "results/logs/data/{dataset}.log",
    localrule: True
    conda:
        ENV
    params:
        cfg=lambda wc: DATASETS[wc.dataset],
        root=config["data_root"],
        download=config["download"],
    script:
        "../scripts/prepare_data.py"
