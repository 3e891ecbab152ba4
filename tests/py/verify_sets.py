"""Verifies Security Event Tokens (RFC 8417; OpenID Shared Signals Framework 1.0 §4; CAEP 1.0;
RISC 1.0) with joserfc, as a receiver would: reads {"jwks", "issuer", "sets": [{"token", "aud"}]}
on stdin, checks each token's signature against the JWKS (ES256, key by `kid`), `typ` =
secevent+jwt, `iss`, `aud`, `iat`, `jti`, no `sub` and no `exp` (SSF §4.1.2-3), a `sub_id`
(RFC 9493), exactly one event, and the event's own claims (iss_sub subject with our issuer,
`event_timestamp`, `reason_admin` for revocations; an opaque stream subject for verification);
prints [{"header", "claims"}] as JSON. Any failure exits non-zero."""
import json
import sys
import time

from joserfc.jwk import KeySet

from jwt_check import checked

BASE = "https://schemas.openid.net/secevent/"
SESSION_REVOKED = BASE + "caep/event-type/session-revoked"
CREDENTIAL_COMPROMISE = BASE + "risc/event-type/credential-compromise"
VERIFICATION = BASE + "ssf/event-type/verification"

req = json.load(sys.stdin)
keys = KeySet.import_key_set(req["jwks"])
out = []
for item in req["sets"]:
    header, claims = checked(item["token"], keys, "secevent+jwt", req["issuer"], item["aud"], "iat", "jti")
    if claims["iat"] > time.time() + 5:
        sys.exit(f"iat in the future: {claims['iat']}")
    for absent in ("sub", "exp"):
        if absent in claims:
            sys.exit(f"an SSF SET must not carry {absent}")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        sys.exit(f"events must hold one event: {events!r}")
    (uri, event), = events.items()
    sub_id = claims.get("sub_id") or {}
    if uri == VERIFICATION:
        if sub_id.get("format") != "opaque" or not sub_id.get("id"):
            sys.exit(f"a verification's sub_id is the opaque stream id: {sub_id!r}")
    elif uri in (SESSION_REVOKED, CREDENTIAL_COMPROMISE):
        if sub_id.get("format") != "iss_sub" or sub_id.get("iss") != req["issuer"] or not sub_id.get("sub"):
            sys.exit(f"sub_id is not the user's iss_sub: {sub_id!r}")
        if not isinstance(event.get("event_timestamp"), int):
            sys.exit(f"event_timestamp missing: {event!r}")
        if not (event.get("reason_admin") or {}).get("en"):
            sys.exit(f"reason_admin missing: {event!r}")
        if uri == CREDENTIAL_COMPROMISE and event.get("credential_type") != "refresh_token":
            sys.exit(f"credential_type: {event!r}")
    else:
        sys.exit(f"unknown event type {uri}")
    out.append({"header": header, "claims": claims})
print(json.dumps(out))
