# One file per paper (workflow/rules/<paper>.smk); each defines the rules that analyse the
# paper's runs and write results/<paper>/section.json. Only the papers listed under
# `papers:` in config.yaml are included, so a paper's rules may assume its config block.
for _paper in PAPERS:

    include: f"{_paper}.smk"
