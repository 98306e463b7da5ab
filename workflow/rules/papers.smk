# One file per paper; each defines the analysis rule that writes results/<paper>/section.json.
include: "baseline.smk"
