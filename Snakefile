from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/papers.smk"
include: "workflow/rules/report.smk"


# Cheap bookkeeping runs on the submitting host, not as cluster jobs.
localrules:
    all,
    report,


rule all:
    default_target: True
    input:
        "results/report.html",
