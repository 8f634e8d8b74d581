"""The install path's two scripts agree: what make deps may install is what the purge removes."""

from __future__ import annotations

import re
import subprocess

from sessionproof import REPO_ROOT

INSTALL = REPO_ROOT / "scripts" / "install-system-deps.sh"


def test_every_package_the_install_checks_for_is_listed_for_the_purge():
    listed = subprocess.run([str(INSTALL), "--packages"], capture_output=True, text=True, check=True).stdout.split()
    checked = re.findall(r"missing\+=\(([a-z0-9-]+)\)", INSTALL.read_text())
    assert checked, "no `missing+=(package)` checks found in install-system-deps.sh"
    assert sorted(set(checked) | {"kubectl"}) == sorted(listed), (
        "install-system-deps.sh --packages and its checks differ: update the list after `--packages`"
    )
