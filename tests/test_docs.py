"""The README stays true: its configuration table is the one the settings classes produce."""

from __future__ import annotations

from pathlib import Path

from scripts.settings_doc import table

REPO = Path(__file__).resolve().parents[1]


def test_readme_configuration_table_matches_settings_when_generated() -> None:
    # Given
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")

    # Then: regenerate with `python -m scripts.settings_doc` when a setting changes
    assert readme[start:end].strip() == table().strip()


def test_readme_names_the_two_commands_when_read_first() -> None:
    quick_start = (REPO / "README.md").read_text().split("## How it works")[0]
    assert "make demo" in quick_start and "make test" in quick_start
