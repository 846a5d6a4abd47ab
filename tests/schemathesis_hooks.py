"""The hooks file of the outsider's schemathesis run (SCHEMATHESIS_HOOKS): `map_body` for every schema."""

import schemathesis

from tests.support_schemathesis import map_body

schemathesis.hook(map_body)
