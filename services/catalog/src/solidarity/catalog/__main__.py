"""`python -m solidarity.catalog`: run the catalog service with SOLIDARITY_* settings."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from solidarity.catalog.bootstrap import create_app
from solidarity.catalog.settings import CatalogSettings
from solidarity.shared.runtime import serve


def main() -> None:
    try:
        settings = CatalogSettings()
    except ValidationError as exc:
        # One line per problem, without the input values (they may hold the token).
        problems = "; ".join(str(e.get("msg", "")) for e in exc.errors())
        sys.exit(f"catalog: invalid settings: {problems}")
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
