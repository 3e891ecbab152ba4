#!/usr/bin/env python3
"""Interoperability test: autional against PyPI Authlib's requests client (OAuth2Session).

A confidential client (client_secret_basic) runs the authorization code flow with PKCE S256:
Authlib builds the authorization URL, a requests.Session walks the server's sign-in and consent
pages (hidden inputs parsed from the HTML), Authlib exchanges the code from the redirect URL
(authorization_response) and refreshes. Checks: the redirect's state and iss (RFC 9207), the
ID token (signature against jwks_uri and the OIDC claims, with Authlib's CodeIDToken), userinfo
with the access token, rotation on refresh, and that the old refresh token then fails with
invalid_grant (and, as reuse, takes the rotated one down with it).

Environment:
  AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
  CLIENT_ID        a confidential client registered for client_secret_basic
  CLIENT_SECRET    its secret
  REDIRECT_URI     a redirect URI registered for it (nothing needs to listen)
  USERNAME, PASSWORD  an existing user's credentials

Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.
"""

import json
import os
import sys
import traceback
import warnings
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

try:
    import requests
    from authlib.common.security import generate_token
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session
except ImportError as e:  # pragma: no cover - reported by tests/interop_py.rs
    print(f"FAIL authlib_code_flow: {e}: run scripts/setup (pip install authlib requests)", file=sys.stderr)
    sys.exit(3)

with warnings.catch_warnings():
    # authlib.jose is deprecated in favour of joserfc but still what its OIDC claim classes use.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

HTTP_TIMEOUT = 15
SCRIPT = "authlib_code_flow"


def env(name):
    value = os.environ.get(name, "")
    if not value:
        print(f"FAIL {SCRIPT}: missing required environment variable {name}", file=sys.stderr)
        sys.exit(2)
    return value


ISSUER = env("AUTIONAL_ISSUER").rstrip("/")
CLIENT_ID = env("CLIENT_ID")
CLIENT_SECRET = env("CLIENT_SECRET")
REDIRECT_URI = env("REDIRECT_URI")
USERNAME = env("USERNAME")
PASSWORD = env("PASSWORD")
SCOPE = "openid profile offline_access"


class StepFailure(Exception):
    pass


_step_no = 0


def step(name):
    """Decorator-ish runner: runs fn, prints "ok N - name: detail", or raises StepFailure."""

    def run(fn):
        global _step_no
        _step_no += 1
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported with its step
            if os.environ.get("PY_TEST_VERBOSE"):
                traceback.print_exc()
            raise StepFailure(f"step {_step_no} ({name}) failed: {type(e).__name__}: {e}") from e
        print(f"ok {_step_no} - {name}{': ' + str(detail) if detail else ''}", flush=True)
        return detail

    return run


class FormParser(HTMLParser):
    """Collects <form>s: method, action, inputs and buttons. HTMLParser already decodes the
    character references in attribute values (askama writes e.g. &#34; and &#38;)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._form = None
        self._button = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = {
                "method": a.get("method", "get").lower(),
                "action": a.get("action", ""),
                "inputs": [],
                "buttons": [],
            }
            self.forms.append(self._form)
        elif self._form is not None and tag == "input":
            self._form["inputs"].append(
                {"name": a.get("name"), "type": a.get("type", "text").lower(), "value": a.get("value", "")}
            )
        elif self._form is not None and tag == "button":
            self._button = {"name": a.get("name"), "type": a.get("type", "submit").lower(), "value": a.get("value", "")}
            self._form["buttons"].append(self._button)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "button":
            self._button = None


def forms_of(html):
    p = FormParser()
    p.feed(html)
    p.close()
    return p.forms


def hidden_fields(form):
    return [(i["name"], i["value"]) for i in form["inputs"] if i["type"] == "hidden" and i["name"]]


def snippet(resp, n=300):
    text = " ".join(resp.text.split())
    return text[:n]


def expect_redirect(resp, what, statuses=(303,)):
    loc = resp.headers.get("Location")
    if resp.status_code not in statuses or not loc:
        raise AssertionError(
            f"{what}: expected HTTP {' or '.join(map(str, statuses))} with Location, got {resp.status_code}"
            f"{' (Location: ' + loc + ')' if loc else ''}: {snippet(resp)}"
        )
    return urljoin(resp.url, loc)


def expect_html(resp, what):
    if resp.status_code != 200:
        loc = resp.headers.get("Location")
        raise AssertionError(
            f"{what}: expected HTTP 200 HTML, got {resp.status_code}{' (Location: ' + loc + ')' if loc else ''}: {snippet(resp)}"
        )
    ct = resp.headers.get("Content-Type", "")
    assert "text/html" in ct, f"{what}: expected text/html, got {ct!r}"
    return resp.text


def expect_oauth_error(call, error, what):
    try:
        result = call()
    except OAuthError as e:
        assert e.error == error, f"{what}: expected error={error}, got error={e.error} ({e.description})"
        return e
    raise AssertionError(f"{what}: expected {error}, but the server answered with tokens: {sorted(result)}")


def main():
    ctx = {}

    @step("discovery (requests): endpoints and client_secret_basic")
    def _():
        r = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"discovery: HTTP {r.status_code}"
        md = r.json()
        assert md["issuer"] == ISSUER, f"issuer {md['issuer']!r} != {ISSUER!r}"
        assert "client_secret_basic" in md.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        assert "S256" in md.get("code_challenge_methods_supported", []), "S256 not advertised"
        ctx["md"] = md
        return f"token_endpoint={md['token_endpoint']}"

    md = ctx["md"]
    oauth = OAuth2Session(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_basic",
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    code_verifier = generate_token(48)
    nonce = generate_token(20)

    @step("create_authorization_url (PKCE S256, state, nonce)")
    def _():
        url, st = oauth.create_authorization_url(
            md["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce, prompt="consent"
        )
        q = parse_qs(urlparse(url).query)
        assert q.get("code_challenge_method") == ["S256"], f"Authlib did not send S256: {q}"
        assert q.get("code_challenge"), "no code_challenge"
        ctx["url"], ctx["state"] = url, st
        return f"{urlparse(url).path}?{'&'.join(sorted(q))}"

    ua = requests.Session()  # the user agent: cookies, no automatic redirects

    @step("GET authorize without a session redirects to sign-in")
    def _():
        r = ua.get(ctx["url"], allow_redirects=False, timeout=HTTP_TIMEOUT)
        login = expect_redirect(r, "GET authorize (no session)")
        assert urlparse(login).path == "/login", f"expected /login, got {login}"
        ctx["login"] = login
        return urlparse(login).path

    @step("sign in through the form (hidden inputs parsed and unescaped)")
    def _():
        r = ua.get(ctx["login"], allow_redirects=False, timeout=HTTP_TIMEOUT)
        html = expect_html(r, "GET sign-in page")
        form = next((f for f in forms_of(html) if any(i["name"] == "password" for i in f["inputs"])), None)
        assert form, f"no sign-in form with a password input: {html[:300]}"
        assert form["method"] == "post", "sign-in form must POST"
        fields = hidden_fields(form)
        assert any(n == "csrf_token" and v for n, v in fields), "sign-in form lacks a csrf_token"
        fields += [("username", USERNAME), ("password", PASSWORD)]
        action = urljoin(ctx["login"], form["action"] or ctx["login"])
        r = ua.post(action, data=fields, headers={"Origin": ISSUER}, allow_redirects=False, timeout=HTTP_TIMEOUT)
        back = expect_redirect(r, "POST sign-in")
        assert urlparse(back).path == "/oauth/authorize", f"expected /oauth/authorize, got {back}"
        assert "autional_session" in ua.cookies, f"no session cookie: {list(ua.cookies.keys())}"
        # The return_to survived the round trip through the (entity-escaped) hidden input intact.
        assert parse_qs(urlparse(back).query) == parse_qs(urlparse(ctx["url"]).query), (
            f"the authorization request changed across sign-in: {back}"
        )
        ctx["back"] = back
        return f"303 -> {urlparse(back).path}"

    @step("consent page: approve")
    def _():
        r = ua.get(ctx["back"], allow_redirects=False, timeout=HTTP_TIMEOUT)
        html = expect_html(r, "GET authorize (signed in)")
        form = next((f for f in forms_of(html) if any(b["name"] == "approved" for b in f["buttons"])), None)
        assert form, f"no consent form with button[name=approved]: {html[:300]}"
        values = {b["value"] for b in form["buttons"] if b["name"] == "approved"}
        assert values == {"true", "false"}, f"approved buttons: {values}"
        fields = hidden_fields(form) + [("approved", "true")]
        action = urljoin(ctx["back"], form["action"])
        r = ua.post(action, data=fields, headers={"Origin": ISSUER}, allow_redirects=False, timeout=HTTP_TIMEOUT)
        cb = expect_redirect(r, "POST consent", (302, 303))
        assert cb.startswith(REDIRECT_URI), f"redirect to {cb}, not {REDIRECT_URI}"
        q = parse_qs(urlparse(cb).query)
        assert "error" not in q, f"authorization error: {q}"
        assert q.get("state") == [ctx["state"]], "state mismatch"
        assert q.get("iss") == [ISSUER], f"iss {q.get('iss')} != {ISSUER}"
        ctx["callback"] = cb
        return f"{r.status_code} -> {REDIRECT_URI}?code=…&state=…&iss=…"

    @step("fetch_token(authorization_response=…) with client_secret_basic and the PKCE verifier")
    def _():
        token = oauth.fetch_token(
            md["token_endpoint"],
            authorization_response=ctx["callback"],
            state=ctx["state"],
            code_verifier=code_verifier,
        )
        assert str(token.get("token_type", "")).lower() == "bearer", f"token_type {token.get('token_type')}"
        assert token.get("access_token"), "no access_token"
        assert str(token.get("refresh_token", "")).startswith("rt_"), "no rt_ refresh_token (offline_access)"
        assert token.get("id_token"), "no id_token"
        ctx["token"] = dict(token)
        return f"keys={sorted(token)} expires_in={token.get('expires_in')}"

    @step("the ID token verifies (jwks_uri) and its claims hold (Authlib CodeIDToken)")
    def _():
        token = ctx["token"]
        jwks = requests.get(md["jwks_uri"], timeout=HTTP_TIMEOUT).json()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            claims = jwt.decode(
                token["id_token"],
                JsonWebKey.import_key_set(jwks),
                claims_cls=CodeIDToken,
                claims_options={"iss": {"essential": True, "value": ISSUER}},
                claims_params={"nonce": nonce, "client_id": CLIENT_ID, "access_token": token["access_token"]},
            )
            claims.validate()
        assert claims.get("nonce") == nonce, "nonce"
        ctx["sub"] = claims["sub"]
        return f"sub={claims['sub']} aud={claims['aud']} auth_time={claims.get('auth_time')}"

    @step("userinfo with the access token (Authlib adds the Bearer header)")
    def _():
        r = oauth.get(md["userinfo_endpoint"], timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"userinfo: HTTP {r.status_code}: {snippet(r)}"
        info = r.json()
        assert info.get("sub") == ctx["sub"], f"userinfo sub {info.get('sub')} != {ctx['sub']}"
        return f"claims={sorted(info)}"

    @step("refresh_token(...) rotates: a new refresh token, and a new ID token for the same user")
    def _():
        old = ctx["token"]["refresh_token"]
        new = oauth.refresh_token(md["token_endpoint"], refresh_token=old)
        assert new.get("access_token"), "no access_token from refresh"
        assert str(new.get("refresh_token", "")).startswith("rt_"), "no rt_ refresh_token from refresh"
        assert new["refresh_token"] != old, "the refresh token did not rotate"
        assert new.get("access_token") != ctx["token"]["access_token"], "same access token"
        if new.get("id_token"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c2 = jwt.decode(new["id_token"], JsonWebKey.import_key_set(requests.get(md["jwks_uri"], timeout=HTTP_TIMEOUT).json()))
            assert c2["sub"] == ctx["sub"], "refreshed ID token sub differs"
            assert "nonce" not in c2, "a refreshed ID token carries no nonce"
        ctx["old_rt"], ctx["new_rt"] = old, new["refresh_token"]
        return "rotated"

    @step("the old refresh token now fails with invalid_grant")
    def _():
        e = expect_oauth_error(
            lambda: oauth.refresh_token(md["token_endpoint"], refresh_token=ctx["old_rt"]),
            "invalid_grant",
            "reuse of the rotated refresh token",
        )
        return f"error={e.error}"

    @step("that reuse revoked the family: the rotated refresh token fails too")
    def _():
        e = expect_oauth_error(
            lambda: oauth.refresh_token(md["token_endpoint"], refresh_token=ctx["new_rt"]),
            "invalid_grant",
            "the newest refresh token after reuse",
        )
        return f"error={e.error}"

    @step("a wrong client secret is refused (invalid_client)")
    def _():
        bad = OAuth2Session(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET + "x",
            token_endpoint_auth_method="client_secret_basic",
        )
        e = expect_oauth_error(
            lambda: bad.refresh_token(md["token_endpoint"], refresh_token=ctx["new_rt"]),
            "invalid_client",
            "refresh with a wrong secret",
        )
        return f"error={e.error}"


if __name__ == "__main__":
    try:
        main()
    except StepFailure as e:
        print(f"FAIL {SCRIPT}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"PASS {SCRIPT}: {_step_no} steps")
