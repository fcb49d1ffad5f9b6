"""The README's settings table names every setting, with its default."""

from __future__ import annotations

import dataclasses
import re

import pytest

from chatd.config import Settings, load_settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
ROWS = {
    match.group(1): match.group(2)
    for match in re.finditer(r"^\| `(CHATD_[A-Z_]+)` \| ([^|]*) \|", README, re.M)
}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_has_a_row_with_its_default(name):
    env = "CHATD_" + name.upper()
    assert env in ROWS, f"{env} is missing from the README's settings table"
    default = getattr(load_settings(environ={}), name)
    shown = ROWS[env].strip().strip("`")
    if isinstance(default, bool):
        assert shown == str(default).lower(), (env, shown, default)
    elif isinstance(default, (int, float)):
        assert float(shown) == default, (env, shown, default)
    elif isinstance(default, str) and default:
        assert shown == default, (env, shown, default)
    else:  # an empty string, an empty list, or a path computed from the install
        assert shown == "empty", (env, shown, default)
