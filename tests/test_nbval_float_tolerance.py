"""The nbval plugin forgives one unit in a float's last printed digit, and nothing else."""

import json
from pathlib import Path

import pytest
from nbval_float_tolerance import floats_close

pytest_plugins = ["pytester"]
HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("stored", "new"),
    [
        ("0.4467", "0.4468"),
        ("loss 3.1416 at step 10", "loss 3.1415 at step 10"),
        ("tensor([[ 0.0000, -1.2345]])", "tensor([[-0.0000, -1.2346]])"),
        ("42,626.4 equally likely", "42,626.5 equally likely"),
        ("2.05e-04", "2.06e-04"),
        ("<td>0.12</td>", "<td>0.13</td>"),
    ],
)
def test_last_digit_differences_pass(stored, new):
    assert floats_close(stored, new)


@pytest.mark.parametrize(
    ("stored", "new"),
    [
        ("0.0393", "0.0493"),  # a real change
        ("0.4467", "0.4469"),  # two units
        ("42,626 equally likely", "42,627 equally likely"),  # integers stay exact
        ("token 15496", "token 15497"),
        ("0.447", "0.4467"),  # a different number of digits
        ("1.5e-03", "0.0015"),  # a different format
        ("loss 3.14", "Loss 3.14"),  # text stays exact
        ("a 0.5 b", "a 0.5 b 0.5"),  # one more number
        ("2.05e-04", "2.05e-05"),  # another exponent
    ],
)
def test_real_changes_fail(stored, new):
    assert not floats_close(stored, new)


def _notebook(source: str, stored_text: str) -> str:
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "c1",
        "metadata": {},
        "outputs": [{"name": "stdout", "output_type": "stream", "text": [stored_text]}],
        "source": [source],
    }
    return json.dumps(
        {
            "cells": [cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


@pytest.mark.parametrize(("stored", "passes"), [("0.0394\n", True), ("0.0493\n", False), ("0.0393 x\n", False)])
def test_plugin_inside_nbval(pytester, stored, passes):
    """A real nbval run: the stored 0.0394 passes against a printed 0.0393, 0.0493 does not."""
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport nbval_float_tolerance\n")
    pytester.path.joinpath("nb.ipynb").write_text(_notebook("print('0.0393')", stored), encoding="utf-8")
    result = pytester.runpytest_subprocess("--nbval", "--nbval-current-env", "-p", "no:cacheprovider", "nb.ipynb")
    result.assert_outcomes(passed=1) if passes else result.assert_outcomes(failed=1)
