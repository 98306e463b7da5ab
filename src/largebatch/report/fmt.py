"""How numbers and cells read in the report: no float noise, no raw ``nan``/``inf``/``True``.

Every table of the page goes through :func:`format_table` (one fixed number of decimals per
column, chosen from the column's magnitude), every p-value through :func:`format_p` and every
effect through :func:`format_effect`, so a quantity reads the same way everywhere.
"""

from __future__ import annotations

import math
import re
from numbers import Number

import numpy as np
import pandas as pd

DASH = "–"  # a missing value
MINUS = "−"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
#: textual spellings of special values as they come back from a CSV or a str() call
_SPECIAL = {"nan": DASH, "none": DASH, "n/a": DASH, "": DASH, "inf": "∞", "+inf": "∞", "infinity": "∞",
            "-inf": MINUS + "∞", "-infinity": MINUS + "∞", "true": "yes", "false": "no"}
# numpy scalar reprs such as np.float64(0.5) or np.int64(-10) that leak through f-strings of lists
_NUMPY_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool_?|str_)\d*\((.*?)\)")


def is_missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, np.floating) and np.isnan(x))


def _plain(x):
    """numpy scalars -> Python scalars."""
    return x.item() if isinstance(x, np.generic) else x


def scientific(x: float, sig: int = 2) -> str:
    """1.2×10⁻⁴ for very small or very large magnitudes."""
    mantissa, exp = f"{x:.{sig - 1}e}".split("e")
    return f"{mantissa.replace('-', MINUS)}×10{str(int(exp)).translate(_SUPERSCRIPT)}"


def decimals_for(values, sig: int = 3, max_decimals: int = 4) -> int:
    """Decimals that show `sig` significant digits of the largest finite magnitude in `values`
    (0 when every value is a whole number)."""
    v = np.asarray([float(x) for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.all(v == np.round(v)):
        return 0
    top = float(np.max(np.abs(v)))
    if top == 0:
        return 0
    return int(min(max_decimals, max(0, sig - 1 - math.floor(math.log10(top)))))


def format_number(x, decimals: int | None = None, sig: int = 3) -> str:
    """One number for a reader: '–' for missing, '∞' for infinite, 'yes'/'no' for booleans,
    thousands separators for whole numbers, `decimals` fixed decimals (default: `sig`
    significant digits), scientific notation only for magnitudes below 1e-3 or from 1e7."""
    x = _plain(x)
    if is_missing(x):
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if not isinstance(x, Number):
        return format_text(x)
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else MINUS + "∞"
    if x == 0:
        return "0" if not decimals else f"{0:.{decimals}f}"
    if decimals is None:
        if abs(x) < 1e-3 or abs(x) >= 1e7:
            return scientific(x, sig)
        decimals = decimals_for([x], sig)
    elif abs(x) < 0.5 * 10 ** -decimals or abs(x) >= 1e7:  # would print as 0.000 or a long row of digits
        return scientific(x, sig)
    return f"{x:,.{decimals}f}".replace("-", MINUS)


def format_text(s) -> str:
    """A text cell: special spellings ('nan', 'inf', 'True') as a reader writes them, numpy
    scalar reprs ('np.float64(0.5)') reduced to their value."""
    s = str(s)
    key = s.strip().lower()
    if key in _SPECIAL:
        return _SPECIAL[key]
    return _NUMPY_REPR.sub(r"\1", s)


def format_p(p) -> str:
    """A p-value: '< 0.001', '0.042', '> 0.99', '–' when there is none."""
    p = _plain(p)
    if is_missing(p) or isinstance(p, str):
        return DASH if is_missing(p) or format_text(p) == DASH else format_text(p)
    p = float(p)
    if not math.isfinite(p):
        return DASH
    if p < 0.001:
        return "< 0.001"
    if p > 0.99:
        return "> 0.99"
    return f"{p:.3f}"


def format_effect(effect, low, high) -> str:
    """'+1.23 [0.40, 2.06]' (effect and its 95% CI, same decimals), '–' when not estimated."""
    vals = [_plain(v) for v in (effect, low, high)]
    if is_missing(vals[0]) or not math.isfinite(float(vals[0])):
        return DASH
    d = decimals_for([v for v in vals if not is_missing(v)], sig=3)
    text = format_number(vals[0], d)
    if not text.startswith(MINUS) and float(vals[0]) > 0:
        text = "+" + text
    if not any(is_missing(v) for v in vals[1:]) and not (vals[1] == vals[2] == vals[0]):
        text += f" [{format_number(vals[1], d)}, {format_number(vals[2], d)}]"
    return text


def is_fragile(p_adj, alpha: float = 0.05, factor: float = 2.0) -> bool:
    """An adjusted p-value within a factor `factor` of alpha on either side: the verdict it
    decides could flip with a few more or fewer seeds."""
    p_adj = _plain(p_adj)
    if is_missing(p_adj) or isinstance(p_adj, str) or not math.isfinite(float(p_adj)):
        return False
    return alpha / factor <= float(p_adj) < alpha * factor


def as_bool(x) -> bool:
    """A precondition flag read back from a CSV (True/False, 'True'/'False', 1/0)."""
    x = _plain(x)
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes")
    return bool(x) and not is_missing(x)


def format_column(values: pd.Series) -> list[str]:
    """A table column as text: numbers with one fixed number of decimals for the column."""
    vals = [_plain(v) for v in values]
    nums = [v for v in vals if isinstance(v, Number) and not isinstance(v, bool) and not is_missing(v)]
    d = decimals_for(nums) if nums else None
    return [format_number(v, d) if isinstance(v, Number) and not isinstance(v, bool) else
            (format_number(v) if isinstance(v, bool) or is_missing(v) else format_text(v)) for v in vals]


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of `df` as reader-facing text (see :func:`format_column`); column names too."""
    out = pd.DataFrame({i: format_column(df[c]) for i, c in enumerate(df.columns)})
    out.columns = [format_text(c) for c in df.columns]
    return out


def numeric_columns(df: pd.DataFrame) -> list[bool]:
    """Whether each column holds numbers (right-aligned in the page)."""
    return [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
