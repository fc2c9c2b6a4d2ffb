"""What the installed package needs besides its Python code is inside it, and the migrations stand
alone: an old migration must keep doing what it did, whatever the application code becomes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

import phoneagent
from phoneagent.db.migrate import MIGRATIONS, alembic_config
from phoneagent.stack.paths import template

PACKAGE = Path(phoneagent.__file__).resolve().parent
VERSIONS = sorted((MIGRATIONS / "versions").glob("*.py"))


def _phoneagent_imports(path: Path) -> list[str]:
    """Every import of phoneagent (or relative import) in the file, as `line: statement`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "phoneagent"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module or "."] if node.level or module.split(".")[0] == "phoneagent" else []
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
        ):
            names = [
                str(a.value)
                for a in node.args[:1]
                if isinstance(a, ast.Constant) and str(a.value).split(".")[0] == "phoneagent"
            ]
        else:
            continue
        found += [f"line {node.lineno}: {ast.unparse(node)}" for _ in names[:1]]
    return found


def test_the_migrations_are_inside_the_package() -> None:
    assert MIGRATIONS.is_relative_to(PACKAGE), MIGRATIONS
    assert len(VERSIONS) >= 8, f"found only {[p.name for p in VERSIONS]} in {MIGRATIONS / 'versions'}"
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    assert {Path(s.path) for s in scripts.walk_revisions()} == set(VERSIONS)


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.name)
def test_a_migration_imports_no_application_code(path: Path) -> None:
    imports = _phoneagent_imports(path)
    assert not imports, (
        f"{path.name} imports application code ({'; '.join(imports)}): a change to that module would "
        "change this old migration. Copy the constants, SQL and functions it needs into the migration."
    )


def test_the_import_check_sees_the_ways_of_importing(tmp_path: Path) -> None:
    sample = tmp_path / "0099_sample.py"
    sample.write_text(
        "import phoneagent.calls.query\n"
        "from phoneagent.calls import query\n"
        "from . import sibling\n"
        "import importlib\n"
        "importlib.import_module('phoneagent.db')\n"
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
    )
    assert [line.split(":")[0] for line in _phoneagent_imports(sample)] == [
        "line 1",
        "line 2",
        "line 3",
        "line 5",
    ]


@pytest.mark.parametrize(
    "name", ["redis.conf.tmpl", "livekit.yaml.tmpl", "livekit-sip.yaml.tmpl", "egress.yaml.tmpl"]
)
def test_the_stack_config_templates_are_package_data(name: str) -> None:
    found = template(name)
    assert Path(str(found)).is_relative_to(PACKAGE / "stack" / "templates"), found
    assert "${" in found.read_text()


def test_an_unknown_template_is_named_in_the_error() -> None:
    with pytest.raises(FileNotFoundError, match="nope.tmpl"):
        template("nope.tmpl")
