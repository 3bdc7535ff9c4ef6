"""`python -m solidarity.notifications`: run the service with settings from the environment."""

from __future__ import annotations

from solidarity.notifications.bootstrap import create_app
from solidarity.notifications.settings import NotificationsSettings
from solidarity.shared.runtime import serve


def main() -> None:
    settings = NotificationsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
