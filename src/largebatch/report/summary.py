"""The report's opening: verdict matrix (paper x claim), totals, one line per paper, and the
statement of how verdicts are decided.

Everything here is derived from the sections' claims tables (``claims.csv``, columns
``largebatch.stats.CLAIM_COLUMNS``); nothing is written by hand per result.
"""

from __future__ import annotations

from collections import Counter

from ..experiments import papers_of
from ..stats import ALPHA, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, VERDICTS
from .fmt import as_bool, is_fragile

#: what each scale can and cannot test, when a section does not say it itself (Section.scope)
SCALE_SCOPE = {
    "tiny": "Tiny scale: a few hundred MNIST-1D samples, tiny networks, one or two epochs and two or "
            "three seeds. It checks that every step of the pipeline runs; it cannot test the paper's "
            "claims, so its verdicts mean nothing about the paper.",
    "cpu": "CPU scale: MNIST-1D (generated locally) with small MLP and 1-D conv networks, trained with "
           "the paper's optimiser, schedule shape and batch-to-data ratios. It can test whether the "
           "paper's effect appears in a small, fast setting; it cannot test the paper's own numbers, "
           "datasets or network sizes.",
    "mnist": "MNIST scale: the paper's own F1 network on real MNIST; comparable to the published MNIST "
             "rows, not to the CIFAR or speech experiments.",
    "paper": "Paper scale: the papers' datasets and networks; comparable to the published values, with "
             "the seeds and budget stated in the protocol.",
}

VERDICT_CLASS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not-reproduced", INCONCLUSIVE: "inconclusive"}
VERDICT_SYMBOL = {REPRODUCED: "✓", NOT_REPRODUCED: "✗", INCONCLUSIVE: "?"}


def claim_anchor(cid: str) -> str:
    """The HTML id of a claim's row (claim ids are unique across the report)."""
    return "claim-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(cid))


def duplicate_claim_ids(sections: list[dict]) -> dict[str, list[str]]:
    """Claim ids that appear more than once across the report -> the sections they appear in."""
    where: dict[str, list[str]] = {}
    for s in sections:
        for c in s["claims_rows"]:
            where.setdefault(str(c["id"]), []).append(s["paper"])
    anchors: dict[str, list[str]] = {}
    for cid in where:
        anchors.setdefault(claim_anchor(cid), []).append(cid)
    dup = {cid: papers for cid, papers in where.items() if len(papers) > 1}
    for ids in anchors.values():  # 'K 1' and 'K-1' would share an anchor
        if len(ids) > 1:
            for cid in ids:
                dup.setdefault(cid, where[cid])
    return dup


def check_unique_claims(sections: list[dict]) -> None:
    dup = duplicate_claim_ids(sections)
    if dup:
        what = "; ".join(f"{cid!r} in {', '.join(papers)}" for cid, papers in sorted(dup.items()))
        raise ValueError(f"claim ids must be unique across the report (each claim row is a link target); "
                         f"repeated: {what}. Give each paper's claims their own prefix (e.g. K1, H1) in its notebook.")


def fragile(row: dict, alpha: float = ALPHA) -> bool:
    """The adjusted p-value that decided (or nearly decided) the verdict is within a factor 2 of alpha."""
    if not as_bool(row.get("precondition_ok", True)):
        return False
    if row["verdict"] == REPRODUCED:
        return is_fragile(row.get("p_claim_adj"), alpha)
    if row["verdict"] == NOT_REPRODUCED:
        return is_fragile(row.get("p_against_adj"), alpha)
    return is_fragile(row.get("p_claim_adj"), alpha) or is_fragile(row.get("p_against_adj"), alpha)


def counts(rows: list[dict]) -> dict[str, int]:
    c = Counter(r["verdict"] for r in rows)
    return {v: c.get(v, 0) for v in VERDICTS}


def _short(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"


def headline(rows: list[dict]) -> str:
    """One sentence on a paper's result, derived from its claims: the verdict of its first
    (main) claim, the claims with evidence against them, and how many verdicts are fragile.
    (The count per verdict is what the chips beside it show.)"""
    if not rows:
        return "No claims were tested."
    first = rows[0]
    parts = [f"Main claim {first['id']} ({_short(first['claim'], 70)}): {first['verdict']}"
             + (" (precondition failed)" if not as_bool(first.get("precondition_ok", True)) else "") + "."]
    c = counts(rows)
    parts.append(f"{c[REPRODUCED]} of {len(rows)} reproduced.")
    nope = [str(r["id"]) for r in rows if r["verdict"] == NOT_REPRODUCED]
    if nope:
        shown = nope if len(nope) <= 4 else nope[:3] + [f"{len(nope) - 3} more"]
        parts.append("Evidence against: " + ", ".join(shown) + ".")
    n_frag = sum(fragile(r) for r in rows)
    if n_frag:
        parts.append(f"{n_frag} fragile.")
    return " ".join(parts)


def paper_lines(sections: list[dict], scale: str | None) -> list[dict]:
    """Per section: its citation, headline, what this scale can and cannot test, claim chips."""
    out = []
    for s in sections:
        rows = s["claims_rows"]
        scope = s.get("scope_text") or SCALE_SCOPE.get(str(scale), f"Scale {scale!r}.")
        chips = [{"id": r["id"], "anchor": claim_anchor(r["id"]), "verdict": r["verdict"],
                  "cls": VERDICT_CLASS.get(r["verdict"], "inconclusive"), "fragile": fragile(r),
                  "symbol": VERDICT_SYMBOL.get(r["verdict"], "?"),
                  "title": f"{r['id']}: {_short(r['claim'], 160)} ({r['verdict']}"
                           + (", fragile" if fragile(r) else "") + ")"} for r in rows]
        out.append({"paper": s["paper"], "cite": s["cite"], "title": s["title"], "headline": headline(rows),
                    "scope": scope, "scope_from_section": bool(s.get("scope_text")), "chips": chips,
                    "counts": counts(rows)})
    return out


def totals(sections: list[dict]) -> dict:
    rows = [r for s in sections for r in s["claims_rows"]]
    c = counts(rows)
    return {"claims": len(rows), "papers": len(sections), **{VERDICT_CLASS[v]: n for v, n in c.items()},
            "fragile": sum(fragile(r) for r in rows),
            "precondition_failed": sum(not as_bool(r.get("precondition_ok", True)) for r in rows)}


def margins(config: dict) -> list[dict]:
    """Per section at the active scale: every margin or tolerance config.yaml sets for its
    claims, as 'path = value' strings (e.g. 'claims.K1.margin_pp = 0.22')."""
    block = (config.get("scales") or {}).get(config.get("scale")) or {}
    out = []
    for paper in papers_of(config) if config.get("papers") else []:
        found: list[str] = []

        def walk(node, path):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, path + [str(k)])
            elif path and any(w in path[-1] for w in ("margin", "tolerance")):
                found.append(f"{'.'.join(path)} = {node}")

        walk(block.get(paper) or {}, [])
        if found:
            out.append({"paper": paper, "items": found})
    return out


def verdict_rules(alpha: float = ALPHA) -> list[str]:
    """The decision procedure of largebatch.stats, in words (the "How verdicts are decided" box)."""
    return [
        "Each claim is a one-sided hypothesis in the paper's direction, tested on our per-seed values: "
        "a Welch t-test for two arms (e.g. large vs small batch), a one-sample t-test for ratios and "
        "paired differences, a least-squares slope test for trends over batch size, Spearman's rank "
        "correlation for monotone associations, an exact binomial test for rates. This gives p(claim).",
        "Evidence against the claim, p(against), is the smaller of the reverse one-sided test and an "
        "equivalence test (two one-sided tests, TOST) within a margin. Margins are fixed in config.yaml "
        "before any verdict was seen, each beside the paper element it follows; a margin of 0 means "
        "only the reverse test counts against. Each claim's rule column states its test and margin.",
        "A claim with several parts holds only if every part does (largest p(claim); p(against) "
        "Bonferroni-corrected over the parts), unless its rule says any part suffices.",
        "Holm-Bonferroni correction across the claims of one paper, applied to p(claim) and to "
        f"p(against) separately; the tables show both adjusted p-values. Alpha = {alpha:g}.",
        f"Reproduced: adjusted p(claim) < {alpha:g}. Not reproduced: adjusted p(against) < {alpha:g}. "
        "Inconclusive: neither, too few values for the test, or a failed precondition (for example an "
        "arm that did not converge, or train accuracies too far apart for a generalisation claim).",
        "Inconclusive means our runs neither show the claim nor show it false at this scale and number "
        "of seeds; it is not evidence against the paper.",
        f"Fragile (⚠): the deciding adjusted p-value lies between {alpha / 2:g} and {2 * alpha:g}, "
        "within a factor 2 of alpha; a few more or fewer seeds could change such a verdict.",
    ]
