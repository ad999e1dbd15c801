"""Where the page's templates and static files live, and the vendored libraries' pinned URLs.

Every third-party file ships in the package under `static/vendor/<name>-<version>/`
with its licence, so the page, `/docs` and `/redoc` work on a machine without
internet. Upgrading one is: `npm pack <name>@<version>`, copy the same files into a
new versioned folder, change the version here.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
STATIC_URL = "/static"

UPLOT = f"{STATIC_URL}/vendor/uplot-1.6.32"
SWAGGER_UI = f"{STATIC_URL}/vendor/swagger-ui-dist-5.35.0"
REDOC = f"{STATIC_URL}/vendor/redoc-2.5.4"


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


def templates() -> Jinja2Templates:
    return Jinja2Templates(directory=TEMPLATES_DIR)
