"""What calls cost and how fast keys may make them: prices, the documented plans, credits shown for unlimited keys.

Each choice names its evidence as `shared/wire-format.md` does: DOCS (Segmind's pages) or GUESS
(the fake's own choice; change it here when the truth is known).
"""

from __future__ import annotations

from contracts.models import MODELS
from contracts.responses import RATE_LIMIT_WINDOW_SECONDS

# A scenario's 429 tells the client to retry one documented rate-limit window later (GUESS).
RATE_LIMIT_RESET_SECONDS = RATE_LIMIT_WINDOW_SECONDS
# The documented plans, in requests a minute (DOCS).
RATE_LIMIT_PLANS: dict[str, int] = {"free": 5, "pro": 50}
# Price of one run in credits, from each shipped model's file: the "~$" figure on its page (DOCS), one
# credit taken to be one US dollar (GUESS). The real price varies a little with the parameters
# ("Affects Pricing"). A model file's own `price` prices its model (docs/models.md).
PRICES: dict[str, float] = {spec.slug: spec.price for spec in MODELS.values()}
# The balance reported (v1's `x-remaining-credits`, a completed job's `remaining_credits`) for a key
# without one: any key in open mode, a declared key without `credits`. A number, since clients parse
# it as one (segmind-workflow's total_credits_left() calls float()); it never goes down (CHOICE).
OPEN_KEY_CREDITS = 1_000_000.0


def amount(credits: float) -> str:
    """Credits as text, without float noise or exponents: 0.833, 12, -4.5."""
    return f"{credits:.6f}".rstrip("0").rstrip(".")
