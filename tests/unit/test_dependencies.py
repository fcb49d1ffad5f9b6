"""What chatd ships: requirements.lock pins every runtime dependency inside setup.cfg's range
and at or above every advisory floor of config/advisories.toml."""

from __future__ import annotations

import configparser
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def required() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].strip().splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip()]


FLOORS = tomllib.loads((ROOT / "config" / "advisories.toml").read_text())["floors"]


@pytest.mark.parametrize("requirement", required(), ids=lambda r: r.name)
def test_every_runtime_dependency_is_pinned_inside_its_range(requirement):
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is not in requirements.lock"
    assert requirement.specifier.contains(pins[name]), (requirement, pins[name])


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_pins_and_ranges_stay_above_every_advisory_floor(name):
    floor = Version(FLOORS[name]["version"])
    assert locked()[canonicalize_name(name)] >= floor, (name, FLOORS[name]["why"])
    requirement = next(r for r in required() if canonicalize_name(r.name) == name)
    lowest = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    assert lowest and min(lowest) >= floor, f"setup.cfg lets {name} below {floor}"
