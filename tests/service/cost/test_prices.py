"""The price table: shipped, overridable, and never pricing an unknown model at zero."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from service.cost.prices import load_prices
from service.errors import ConfigurationError
from service.settings import Settings

TABLE = """
version = "test-1"
[video."veo-test"]
usd_per_second = { "720p" = 0.5, "720p+audio" = 0.75 }
[call."gemini-test"]
usd_per_call = 0.01
"""


def test_built_in_table_prices_the_default_model() -> None:
    """The shipped table prices the default Veo model at every tier the API accepts."""
    prices = load_prices()
    model = Settings().veo_model
    for resolution in ("720p", "1080p"):
        for audio in (False, True):
            price = prices.per_second(model, resolution, audio)
            assert price is not None
            assert price > 0


def test_unknown_model_has_no_price() -> None:
    """A model the table does not list is priced None, not zero."""
    assert load_prices().per_second("veo-9-imaginary", "720p", False) is None


def test_unlisted_tier_has_no_price() -> None:
    """A listed model without the asked tier (Veo 2 has no 1080p) is priced None."""
    assert load_prices().per_second("veo-2.0-generate-001", "1080p", False) is None


def test_operator_file_replaces_the_table(tmp_path: Path) -> None:
    """A file named by REELTRACE_PRICES_FILE is read with its own prices and version."""
    path = tmp_path / "prices.toml"
    path.write_text(TABLE)
    prices = load_prices(path)
    assert prices.per_second("veo-test", "720p", True) == Decimal("0.75")
    assert prices.per_call("gemini-test") == Decimal("0.01")
    assert prices.version.startswith("test-1+")


def test_a_changed_table_has_a_new_version(tmp_path: Path) -> None:
    """Editing a price without touching `version` still changes the table's version."""
    path = tmp_path / "prices.toml"
    path.write_text(TABLE)
    before = load_prices(path).version
    path.write_text(TABLE.replace("0.75", "0.8"))
    assert load_prices(path).version != before


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('version = "x"\n[video.m]\nusd_per_second = { "720p" = -1 }', "video.m.720p"),
        ('version = "x"\n[video.m]\nusd_per_second = { "720p" = "cheap" }', "video.m.720p"),
        ('[video.m]\nusd_per_second = { "720p" = 1 }', "version"),
        ("version = ", "not valid TOML"),
    ],
)
def test_bad_table_is_refused_naming_the_entry(tmp_path: Path, text: str, named: str) -> None:
    """A malformed table stops the start with a message naming the bad entry."""
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=named):
        load_prices(path)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A REELTRACE_PRICES_FILE that cannot be read names the variable."""
    with pytest.raises(ConfigurationError, match="REELTRACE_PRICES_FILE"):
        load_prices(tmp_path / "absent.toml")
