"""The admin token as a request carries it: `Authorization: Bearer`, or the dashboard's cookie.

Apart from the admin API, which refuses calls without it, since Segmind's routes ask it too: a v1
call may move a stopped clock only with it (`may_move_clock`, read by the routes and the replay layer).
"""

from __future__ import annotations

import hmac

from starlette.requests import cookie_parser
from starlette.types import Scope

# The agreed interface of the admin token: a browser hands it over once as `/_mock/?token=...`,
# and the server keeps it in this cookie, which it accepts like `Authorization: Bearer`.
ADMIN_COOKIE = "segmind_mock_admin"


def carries_token(scope: Scope, token: str) -> bool:
    """Tell whether a request carries the admin token, as `Authorization: Bearer` or the dashboard's cookie."""
    for name, raw in scope["headers"]:
        value = raw.decode("latin-1")
        if name == b"authorization":
            scheme, _, credential = value.partition(" ")
            if scheme.lower() == "bearer" and same_token(credential.strip(), token):
                return True
        elif name == b"cookie" and same_token(cookie_parser(value).get(ADMIN_COOKIE, ""), token):
            return True
    return False


def may_move_clock(scope: Scope, token: str | None) -> bool:
    """Tell whether a v1 call may jump a stopped clock, which every job shares, to its job's end.

    That takes the admin API's rights: the admin token, where one is set (docs/admin.md).
    """
    return token is None or carries_token(scope, token)


def same_token(given: str, token: str) -> bool:
    """Tell whether `given` is the token, in constant time: a refusal's time says nothing of how much matched."""
    return hmac.compare_digest(given.encode(), token.encode())
