"""The tree's layering: tools and product code never import the tests, the tooling's floor (devtools) never imports
pytest, training and the service never import each other, and tests use the packages' public names only."""

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked_python() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / p for p in listed if (ROOT / p).is_file()]


def imported(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file (also those inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


PROJECT = {"audiocore", "training", "service", "devtools", "loadtests", "scripts", "k8s"}


def private_imports(path: Path) -> list[str]:
    """`from <project module> import _name`: a test that reaches for a private name pins an implementation."""
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in PROJECT
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


FILES = {p.relative_to(ROOT).as_posix(): imported(p) for p in tracked_python()}
OUTSIDE_TESTS = {name: found for name, found in FILES.items() if not name.startswith("tests/")}


def test_the_tree_is_read():
    assert "devtools/server.py" in OUTSIDE_TESTS and "service/app.py" in OUTSIDE_TESTS


def test_nothing_outside_tests_imports_the_tests():
    assert not [name for name, found in OUTSIDE_TESTS.items() if "tests" in found]


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("devtools/", {"pytest", "tests", "loadtests", "scripts"}),
        ("audiocore/", {"training", "service", "devtools", "loadtests"}),
        ("training/", {"service", "devtools", "loadtests"}),
        ("service/", {"training", "devtools", "loadtests"}),
    ],
)
def test_each_package_imports_only_what_lies_below_it(package, forbidden):
    wrong = {name: sorted(found & forbidden) for name, found in FILES.items() if name.startswith(package)}
    assert not {name: bad for name, bad in wrong.items() if bad}


def test_tests_import_no_private_names():
    found = {p.relative_to(ROOT).as_posix(): private_imports(p) for p in tracked_python() if "tests" in p.parts}
    assert {name: bad for name, bad in found.items() if bad} == {}
