"""A pytest plugin for nbval: a printed float may differ by one unit in its last printed digit.

Why: the last bits of a float sum depend on the CPU kernel and the thread count, so a value that
sits on a rounding boundary prints as 0.4467 on one machine and 0.4468 on another. Everything else
stays strict: text, integers (token ids, parameter counts), the number of digits printed, and any
float that moves by more than one unit in its last digit (0.0393 -> 0.0493 fails).

Loaded for every pytest run by the repository's root conftest.py.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal

from nbval import plugin as _nbval

# A decimal number with a point and/or an exponent; integers are left to the text comparison.
# Thousands separators are allowed in the integer part (1,234.5).
_FLOAT = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)"
    r"(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)"
    r"(?![\w.])"
)
_SPACES = re.compile(r"[ \t]+")  # removed from the text between floats


def _last_digit_unit(token: str) -> Decimal:
    """The value of one unit in the last printed digit of a float token, e.g. 0.0001 for '1.2345'."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return Decimal(1).scaleb(-decimals + (int(exponent) if exponent else 0))


def _same_shape(a: str, b: str) -> bool:
    """Both floats printed the same way: same number of decimals and exponent style."""
    ma, _, ea = a.lower().partition("e")
    mb, _, eb = b.lower().partition("e")
    return len(ma.partition(".")[2]) == len(mb.partition(".")[2]) and bool(ea) == bool(eb)


def floats_close(reference: str, actual: str) -> bool:
    """True when the two texts differ only in floats that are one last-digit unit apart.

    The text between the floats must be equal except for spaces and tabs (tensor printing pads
    columns to the widest entry, and '-0.0000' is one character wider than '0.0000').
    """
    if reference == actual:
        return True
    ref_parts = _FLOAT.split(reference)
    act_parts = _FLOAT.split(actual)
    if len(ref_parts) != len(act_parts):
        return False
    if any(_SPACES.sub("", r) != _SPACES.sub("", a) for r, a in zip(ref_parts, act_parts, strict=True)):
        return False
    for ref_num, act_num in zip(_FLOAT.findall(reference), _FLOAT.findall(actual), strict=True):
        if ref_num == act_num:
            continue
        if not _same_shape(ref_num, act_num):
            return False
        difference = abs(Decimal(ref_num.replace(",", "")) - Decimal(act_num.replace(",", "")))
        if difference > _last_digit_unit(ref_num):
            return False
    return True


def _text_fields(output) -> list[tuple[dict, str]]:
    """(container, key) pairs of the texts in one output that nbval compares."""
    if output.get("output_type") == "stream":
        return [(output, "text")]
    data = output.get("data", {})
    return [(data, mime) for mime, text in data.items() if mime.startswith("text/") and isinstance(text, str)]


def reconcile(test: list, ref: list, sanitize) -> list:
    """A copy of `test` in which each text that is float-close to the stored text is replaced by it."""
    test = copy.deepcopy(test)
    if len(test) != len(ref):
        return test
    for test_out, ref_out in zip(test, ref, strict=True):
        if test_out.get("output_type") != ref_out.get("output_type") or test_out.get("name") != ref_out.get("name"):
            continue
        stored = {key: container[key] for container, key in _text_fields(ref_out)}
        for container, key in _text_fields(test_out):
            if isinstance(stored.get(key), str) and floats_close(sanitize(stored[key]), sanitize(container[key])):
                container[key] = stored[key]
    return test


_original_compare = _nbval.IPyNbCell.compare_outputs


def _compare_outputs(self, test, ref, skip_compare=None):
    """nbval's comparison, after forgiving last-digit float differences."""
    return _original_compare(self, reconcile(test, ref, self.sanitize), ref, skip_compare)


_nbval.IPyNbCell.compare_outputs = _compare_outputs
