"""Analysis the section notebooks call: decisions, tables and figures per paper, as tested functions (the planning side is in ``largebatch.experiments``)."""
