"""What a relying party checks of every token it receives from us, with joserfc: the signature
against the JWKS (ES256, key by `kid`), the `typ` header, and the registered claims `iss`
(our issuer), `aud` (the receiving client) and the others named essential. Shared by
verify_logout_tokens.py and verify_sets.py, which add their own specification's claims."""
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry


def checked(token, keys, typ, issuer, aud, *essential):
    """The token's (header, claims) once signature, typ, iss, aud and the `essential` claims
    check out; exits with the reason otherwise."""
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    header, claims = decoded.header, decoded.claims
    if header.get("typ") != typ:
        raise SystemExit(f"typ is {header.get('typ')!r}, not {typ}")
    JWTClaimsRegistry(
        leeway=5,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": aud},
        **{name: {"essential": True} for name in essential},
    ).validate(claims)
    return header, claims
