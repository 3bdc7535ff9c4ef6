"""`python -m solidarity.registration`: run the registration service until stopped."""

from __future__ import annotations

from solidarity.registration.bootstrap import create_app
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.runtime import serve


def main() -> None:
    settings = RegistrationSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
