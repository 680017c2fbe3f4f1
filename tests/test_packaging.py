"""The distributions: the sdist carries what its own tests need, the wheel only the package,
and building prints no setuptools warning."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Files the sdist's own `make test` cannot do without.
SDIST_NEEDS = (
    "Makefile",
    "setup.cfg",
    "pyproject.toml",
    ".ci/run",
    ".ci/min_requirements.py",
    "tests/conftest.py",
    "support/redis_server.py",
    "support/processes.py",
    "tests/postmark/server.yml",
    "tests/e2e/conftest.py",
    "example_app/__init__.py",
    "example_app/templates/home.html",
    "example_app/static/demo.css",
    "bench/__main__.py",
    "flask_postmark_auth/py.typed",
    "flask_postmark_auth/templates/postmark_auth/email/layout.html",
    "setup.py",
    "babel.cfg",
    "support/catalogs.py",
    "flask_postmark_auth/translations/flask_postmark_auth.pot",
    "flask_postmark_auth/translations/ar/LC_MESSAGES/flask_postmark_auth.po",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The sdist, the wheel, and what building them printed."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel, result.stdout + result.stderr


def test_building_prints_no_setuptools_warning(built: tuple[Path, Path, str]) -> None:
    assert "Warning" not in built[2], built[2][-3000:]


def test_the_sdist_carries_what_its_tests_need(built: tuple[Path, Path, str]) -> None:
    with tarfile.open(built[0]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [name for name in SDIST_NEEDS if name not in names]
    assert missing == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_wheel_holds_the_package_only(built: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(built[1]) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"flask_postmark_auth"}
    assert "flask_postmark_auth/py.typed" in names
    assert "flask_postmark_auth/templates/postmark_auth/email/otp.txt" in names
    # The catalogs, compiled by the build from the .po files (which are not committed as .mo).
    for locale in ("en", "de", "fr", "es", "pt_BR", "ja", "ar"):
        assert f"flask_postmark_auth/translations/{locale}/LC_MESSAGES/flask_postmark_auth.mo" in (
            names
        )
