"""The price table: USD per second of output video by model, resolution and audio.

It ships in the package (`prices.toml`, with its sources and the date each price was
checked) and an operator replaces it with `REELTRACE_PRICES_FILE`. Its `version` is
the file's declared version plus a digest of its bytes, so two different tables never
share a version even when an edit forgets to change the declared one; each request
stores the version (and the unit price) it was priced with at submit, so a new table
reprices only the requests submitted after it.

A model or tier the table does not list has no price: lookups answer None, never 0.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from service.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class PriceTable:
    version: str
    video: dict[str, dict[str, Decimal]]
    """model -> tier (`720p`, `1080p+audio`, ...) -> USD per output second."""
    calls: dict[str, Decimal]
    """model -> USD per call (the lesson script's Gemini call)."""
    source: str

    def per_second(self, model: str, resolution: str, audio: bool) -> Decimal | None:
        """USD per output second, or None when the table does not price this model/tier."""
        tiers = self.video.get(model)
        if tiers is None:
            return None
        return tiers.get(f"{resolution}+audio" if audio else resolution)

    def per_call(self, model: str) -> Decimal | None:
        return self.calls.get(model)


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigurationError(f"price table: {where} must be a number, got {value!r}")
    try:
        price = Decimal(str(value))
    except ArithmeticError as exc:
        raise ConfigurationError(f"price table: {where} must be a number, got {value!r}") from exc
    if not price.is_finite() or price < 0:
        raise ConfigurationError(f"price table: {where} must be a number >= 0, got {value!r}")
    return price


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    section = doc.get(name, {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"price table: [{name}] must be a table")
    return section


def parse_prices(data: bytes, source: str) -> PriceTable:
    """Parse and check a price table; a bad one is a ConfigurationError naming the entry."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"price table {source}: not valid TOML ({exc})") from exc
    declared = doc.get("version")
    if not isinstance(declared, str) or not declared:
        raise ConfigurationError(f"price table {source}: needs a `version` string")
    video: dict[str, dict[str, Decimal]] = {}
    for model, entry in _section(doc, "video").items():
        tiers = entry.get("usd_per_second") if isinstance(entry, dict) else None
        if not isinstance(tiers, dict) or not tiers:
            raise ConfigurationError(f"price table {source}: video.{model} needs usd_per_second")
        video[model] = {tier: _decimal(v, f"video.{model}.{tier}") for tier, v in tiers.items()}
    calls = {
        model: _decimal(entry.get("usd_per_call") if isinstance(entry, dict) else None, f"call.{model}")
        for model, entry in _section(doc, "call").items()
    }
    digest = hashlib.sha256(data).hexdigest()[:8]
    return PriceTable(version=f"{declared}+{digest}", video=video, calls=calls, source=source)


def load_prices(path: Path | None = None) -> PriceTable:
    """The operator's table (`REELTRACE_PRICES_FILE`) or the one shipped in the package."""
    if path is None:
        data = resources.files("service.cost").joinpath("prices.toml").read_bytes()
        return parse_prices(data, "built-in prices.toml")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"REELTRACE_PRICES_FILE: cannot read {path} ({exc.strerror})") from exc
    return parse_prices(data, str(path))
