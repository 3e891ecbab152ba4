"""Verifies Logout Tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6) with joserfc, as a
relying party would: reads {"jwks", "issuer", "tokens": [{"token", "aud"}]} on stdin, checks each
token's signature against the JWKS (ES256, key by `kid`), `typ` = logout+jwt, `iss`, `aud`, `iat`,
`exp` (not expired, short-lived), `jti`, the back-channel logout event, `sub` and `sid`, and the
absence of `nonce`; prints [{"header", "claims"}] as JSON. Any failure exits non-zero."""
import json
import sys
import time

from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

EVENT = "http://schemas.openid.net/event/backchannel-logout"

req = json.load(sys.stdin)
keys = KeySet.import_key_set(req["jwks"])
out = []
for item in req["tokens"]:
    token = jwt.decode(item["token"], keys, algorithms=["ES256"])
    header, claims = token.header, token.claims
    if header.get("typ") != "logout+jwt":
        sys.exit(f"typ is {header.get('typ')!r}, not logout+jwt")
    JWTClaimsRegistry(
        leeway=5,
        iss={"essential": True, "value": req["issuer"]},
        aud={"essential": True, "value": item["aud"]},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
        sub={"essential": True},
        sid={"essential": True},
    ).validate(claims)
    if claims.get("events") != {EVENT: {}}:
        sys.exit(f"events is {claims.get('events')!r}")
    if "nonce" in claims:
        sys.exit("a Logout Token must not carry a nonce")
    if not (0 < claims["exp"] - claims["iat"] <= 600) or claims["iat"] > time.time() + 5:
        sys.exit(f"iat/exp out of range: {claims['iat']} {claims['exp']}")
    out.append({"header": header, "claims": claims})
print(json.dumps(out))
