"""requirements.lock agrees with pyproject.toml, and pyproject.toml declares every package the
code imports. After changing a dependency, `make lock` rewrites the lock."""

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK_TEXT = (ROOT / "requirements.lock").read_text()
OUR_MODULES = {"app", "blueprints", "models", "services", "tests", "bench"}
REMEDY = "run `make lock` after changing a dependency in pyproject.toml"


def requirements(group: str | None = None) -> list[Requirement]:
    """pyproject.toml's runtime dependencies, or those of one optional group."""
    project = PYPROJECT["project"]
    listed = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in listed]


def declared() -> list[Requirement]:
    """Everything the lock must hold: runtime and every optional group."""
    groups = PYPROJECT["project"]["optional-dependencies"]
    return requirements() + [req for group in groups for req in requirements(group)]


def pins() -> dict[str, str]:
    """requirements.lock's pins for this interpreter: canonical name -> version (the lock is
    universal: a package may be pinned apart per Python version, behind a marker)."""
    found = re.findall(
        r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)(?: ; ([^\\\n]+?))?\s*\\?$", LOCK_TEXT, re.MULTILINE
    )
    return {
        canonicalize_name(name): version
        for name, version, marker in found
        if not marker or Marker(marker).evaluate()
    }


def test_the_lock_pins_every_declared_dependency_at_an_allowed_version():
    locked = pins()
    wrong = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        if name not in locked:
            wrong.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            wrong.append(f"{requirement} does not allow the locked {name}=={locked[name]}")
    assert not wrong, f"{wrong}: {REMEDY}"


def test_the_lock_asks_for_nothing_pyproject_no_longer_declares():
    """The lock's direct dependencies (`via twostep (pyproject.toml)`) are exactly the declared
    ones, and its command covers every optional group."""
    direct = set()
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT):
        if "twostep (pyproject.toml)" in block:
            direct.add(canonicalize_name(block.split("==")[0]))
    assert direct == {canonicalize_name(req.name) for req in declared()}, REMEDY
    command = LOCK_TEXT.splitlines()[1]
    for group in PYPROJECT["project"]["optional-dependencies"]:
        assert f"--extra {group}" in command, f"the lock leaves out [{group}]: {REMEDY}"
    assert "--generate-hashes" in command and LOCK_TEXT.count("--hash=sha256:") >= len(pins())


def test_this_environment_holds_the_locked_versions_and_what_they_need():
    """`make venv` installs from the lock: every declared dependency and everything it needs,
    followed through the installed packages' metadata, is installed at its locked version."""
    locked = pins()
    seen: set[str] = set()
    queue = [(req, frozenset()) for req in declared()]
    wrong = []
    while queue:
        requirement, extras_asked = queue.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in (extras_asked or {""})
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} is not installed")
            continue
        if locked.get(name) != installed:
            wrong.append(f"{name} {installed} is installed, the lock says {locked.get(name)}")
        for line in metadata.requires(name) or []:
            queue.append((Requirement(line), frozenset(requirement.extras)))
    assert not wrong, f"{wrong}: run `make venv` (or {REMEDY})"


def imported_top_level_modules(folder: Path) -> set[str]:
    """The top-level names every Python file under `folder` (or the file itself) imports."""
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.py"))
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - OUR_MODULES - {"__future__"}


def undeclared(paths: list[str], groups: list[str | None]) -> list[str]:
    """Imports under `paths` whose distribution none of `groups` declares."""
    allowed = {canonicalize_name(req.name) for group in groups for req in requirements(group)}
    providers = metadata.packages_distributions()
    missing = []
    for module in sorted(set().union(*(imported_top_level_modules(ROOT / p) for p in paths))):
        distributions = {canonicalize_name(name) for name in providers.get(module, [])}
        if not distributions & allowed:
            missing.append(f"{module} (from {sorted(distributions) or 'nothing installed'})")
    return missing


def test_the_app_imports_only_declared_runtime_dependencies():
    missing = undeclared(["app.py", "blueprints", "models", "services"], [None])
    assert not missing, f"declare these in [project] dependencies or stop importing them: {missing}"


def test_the_tests_and_benchmark_import_only_declared_dependencies():
    assert not undeclared(["tests"], [None, "dev"])
    assert not undeclared(["bench"], [None, "dev", "bench"])
