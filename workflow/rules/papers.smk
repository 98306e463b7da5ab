# Every paper's analysis jobs and its section, generated from the paper's declaration
# (`PAPER` in src/largebatch/experiments/<paper>.py, built into PLAN by build_plan): a job
# runs workflow/scripts/<script>; the section rule runs workflow/notebooks/<paper>.py and
# declares every table and figure the paper declares (figures with a report label are
# flagged for `snakemake --report`, with the caption the notebook writes beside them).
for _paper in PAPERS:
    for _job in PLAN.jobs[_paper]:

        rule:
            name:
                _job.name
            input:
                **_job.input,
            output:
                **_job.output,
            log:
                paths.log_file(_paper, _job.name),
            benchmark:
                paths.benchmark_file(_paper, _job.name)
            conda:
                ENV
            threads: config["threads"] if _job.device else 1
            resources:
                **(resources() if _job.device else {}),
            params:
                **_job.params,
                **JOB_PARAMS,
            script:
                script_of(locals(), _job.name)

    rule:
        name:
            _paper
        input:
            **PLAN.sections[_paper].input,
        output:
            **section_outputs(_paper),
        log:
            paths.log_file(_paper, "section"),
        benchmark:
            paths.benchmark_file(_paper, "section")
        localrule: True
        conda:
            ENV
        params:
            **PLAN.sections[_paper].params,
        script:
            script_of(locals(), _paper)
