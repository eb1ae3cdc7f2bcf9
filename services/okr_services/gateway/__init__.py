"""The API gateway: authentication (``auth``: API keys and bearer tokens), authorisation
by role (``policy``) and the ``okr keys`` command (``keys_cli``).
docs/adr/0012-authentication-and-roles.md."""
