"""Verifies Logout Tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6) with joserfc, as a
relying party would: reads {"jwks", "issuer", "tokens": [{"token", "aud"}]} on stdin, checks each
token's signature against the JWKS (ES256, key by `kid`), `typ` = logout+jwt, `iss`, `aud`, `iat`,
`exp` (not expired, short-lived), `jti`, the back-channel logout event, `sub` and `sid`, and the
absence of `nonce`; prints [{"header", "claims"}] as JSON. Any failure exits non-zero."""
import json
import sys
import time

from joserfc.jwk import KeySet

from jwt_check import checked

EVENT = "http://schemas.openid.net/event/backchannel-logout"

req = json.load(sys.stdin)
keys = KeySet.import_key_set(req["jwks"])
out = []
for item in req["tokens"]:
    header, claims = checked(
        item["token"], keys, "logout+jwt", req["issuer"], item["aud"], "iat", "exp", "jti", "sub", "sid"
    )
    if claims.get("events") != {EVENT: {}}:
        sys.exit(f"events is {claims.get('events')!r}")
    if "nonce" in claims:
        sys.exit("a Logout Token must not carry a nonce")
    if not (0 < claims["exp"] - claims["iat"] <= 600) or claims["iat"] > time.time() + 5:
        sys.exit(f"iat/exp out of range: {claims['iat']} {claims['exp']}")
    out.append({"header": header, "claims": claims})
print(json.dumps(out))
