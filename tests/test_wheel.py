"""The installed wheel, as an operator gets it: built from this checkout (or the one `.ci/run`
built, named by TWOSTEP_WHEEL), installed non-editable into a fresh virtual environment at the
versions of requirements.lock, and run from another folder. It migrates, seeds the demo,
serves the sign-in page with its stylesheet and signs a demo login in.
"""

import html
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folders of the checkout that the app never reads at run time (the rest must be in the wheel).
NOT_RUN_TIME = {"tests", "bench", "deploy", "docs", ".ci"}


def uv() -> str:
    """The lock tool that `make venv` puts beside the interpreter (Makefile UV_VERSION)."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed: `make venv` installs it (Makefile UV_VERSION)")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel under test: TWOSTEP_WHEEL (CI builds it with `make wheel`), else built now."""
    if os.environ.get("TWOSTEP_WHEEL"):
        return Path(os.environ["TWOSTEP_WHEEL"]).resolve()
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    # A copy of the sources, so setuptools' build/ and egg-info never land in the checkout.
    shutil.copytree(
        ROOT,
        build / "src",
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "instance"),
    )
    subprocess.run(
        [uv(), "build", "--wheel", "--out-dir", str(out), "--quiet", str(build / "src")],
        check=True,
        capture_output=True,
    )
    return next(out.glob("twostep-*.whl"))


def tracked_run_time_files() -> list[str]:
    """Every file git tracks that the app may read at run time: all but the test, benchmark,
    deployment and documentation folders and the top-level project files."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    return [
        name
        for name in listed
        if "/" in name and name.split("/")[0] not in NOT_RUN_TIME or name == "app.py"
    ]


def test_the_wheel_carries_every_run_time_file(wheel):
    """Templates, static files, migrations and services/data travel in the wheel, at the same
    top-level paths as in the checkout."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing says which files are tracked")
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = tracked_run_time_files()
    assert {"templates/base.html", "static/css/app.css", "app.py"} <= set(expected)
    assert any(name.startswith("models/migrations/0001_") for name in expected)
    missing = [name for name in expected if name not in inside]
    assert not missing, f"the wheel lacks run-time files: {missing}"


def runtime_requirements(wheel: Path, folder: Path) -> Path:
    """The hashed runtime pins that go with the wheel: dist/requirements.txt beside it (from
    `make wheel`), else written the same way: pyproject.toml's runtime dependencies at the
    versions of requirements.lock."""
    beside = wheel.parent / "requirements.txt"
    if beside.exists():
        return beside
    written = folder / "requirements.txt"
    subprocess.run(
        [uv(), "pip", "compile", str(ROOT / "pyproject.toml"), "--constraint"]
        + [str(ROOT / "requirements.lock"), "--universal", "--python-version", "3.11"]
        + ["--generate-hashes", "--quiet", "-o", str(written)],
        check=True,
        capture_output=True,
    )
    return written


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """README "Production": a fresh virtual environment, the hashed runtime pins, then the
    wheel itself (not editable, no dependency of its own choosing); returns its bin/ folder."""
    folder = tmp_path_factory.mktemp("venv")
    venv = folder / "venv"
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv(), "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
    )
    for step in (
        ["--require-hashes", "-r", str(runtime_requirements(wheel, folder))],
        ["--no-deps", str(wheel)],
    ):
        install = subprocess.run(
            [uv(), "pip", "install", "--quiet", "--python", python, *step],
            capture_output=True,
            text=True,
        )
        assert install.returncode == 0, install.stderr
    check = subprocess.run(
        [uv(), "pip", "check", "--python", python], capture_output=True, text=True
    )
    assert check.returncode == 0, f"the wheel needs what the pins lack: {check.stdout}"
    return venv / "bin"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A folder far from the checkout, to run the installed app from."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture(scope="module")
def environment(elsewhere) -> dict:
    """Only what an operator would set: no PYTHONPATH leading back to the checkout."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(elsewhere),
        "FLASK_APP": "app",
        "DATABASE_URL": f"sqlite:///{elsewhere / 'twostep.db'}",
        "TWOSTEP_ENV": "development",
    }


def run(bin_dir: Path, *command: str, cwd: Path, env: dict) -> str:
    """Run one of the installed commands, failing the test with its output if it fails."""
    result = subprocess.run(
        [str(bin_dir / command[0]), *command[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_the_installed_app_is_the_wheel_not_the_checkout(installed, elsewhere, environment):
    """`import app` in the new environment finds the wheel's copy, not this checkout's."""
    where = run(
        installed, "python", "-c", "import app; print(app.__file__)", cwd=elsewhere, env=environment
    )
    module = Path(where.split()[0]).resolve()
    assert installed.parent in module.parents and ROOT not in module.parents


@pytest.fixture(scope="module")
def served(installed, elsewhere, environment):
    """The installed app migrated, seeded and served by gunicorn on a free port."""
    upgraded = run(installed, "flask", "db", "upgrade", cwd=elsewhere, env=environment)
    assert "0001" in upgraded
    run(installed, "flask", "seed-demo", cwd=elsewhere, env=environment)
    log = elsewhere / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(installed / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", "1"]
            + ["app:create_app()"],
            cwd=elsewhere,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert server.poll() is None, f"gunicorn stopped:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"gunicorn did not listen:\n{log.read_text()}"
            time.sleep(0.1)  # a real process starting up, not the app's clock
        yield found.group(1)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_installed_app_serves_the_sign_in_page_with_its_stylesheet(served):
    with urllib.request.urlopen(f"{served}/login", timeout=30) as response:
        assert response.status == 200
        page = response.read().decode()
    assert 'name="password"' in page
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    with urllib.request.urlopen(f"{served}{html.unescape(stylesheet)}", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")
        assert response.read() == (ROOT / "static" / "css" / "app.css").read_bytes()


def test_the_installed_app_signs_in_a_demo_login(served):
    """The demo that seed-demo loaded is there: a family login's password is accepted."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{served}/login", timeout=30) as response:
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.read().decode())
    form = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "email": "parent@example.com", "password": "twostep-demo"}
    ).encode()
    with opener.open(f"{served}/login", data=form, timeout=30) as response:
        assert response.status == 200
        landed = response.geturl()
    assert not landed.endswith("/login"), "the demo password was refused"
