"""Signing in to the archive page with a Matrix password, and the session cookie that follows.

The password goes to the homeserver once (`POST /login`, spec: Client-Server API,
"Password-based" login); the access token it answers with is used for `/account/whoami` and
logged out again at once, so Backline keeps no Matrix token. What Backline keeps instead is a
random cookie token, stored only as its SHA-256, with an expiry and a CSRF token for forms.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from mautrix.util.async_db import Database

from ..config import Config
from ..db import connection, transaction
from ..db import web_sessions as sessions_db
from ..db.web_sessions import WebSession
from ..permissions import can_search_archive, role_for
from .render import PageError, html_response, redirect, shows_errors

log = logging.getLogger("backline.web.signin")

SESSION_COOKIE = "backline_session"
# Before sign-in there is no session to hold a CSRF token, so the login form uses a
# double-submit token: the same random value in a cookie and in a hidden field.
LOGIN_CSRF_COOKIE = "backline_login_csrf"
LOGIN_CSRF_LIFETIME = 3600
CSRF_FIELD = "csrf_token"
HOMESERVER_TIMEOUT = aiohttp.ClientTimeout(total=15)
DEFAULT_PAGE = "/archive"
MAX_FIELD_LENGTH = 1024


def token_hash(token: str) -> str:
    """What the store keeps of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    """Whether a submitted CSRF token is the expected one, compared in constant time."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only a path on this site, never another site's URL."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_PAGE
    # Browsers read "/\\evil.example" as "//evil.example"; control characters are stripped.
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return DEFAULT_PAGE
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_PAGE
    return value


def login_location(request: web.Request) -> str:
    """The sign-in page, returning to this request's page afterwards."""
    return f"/login?next={quote(request.path_qs, safe='')}"


def form_text(form: Any, name: str) -> str:
    """A text field of a posted form; files and over-long values count as missing."""
    value = form.get(name)
    if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH:
        return ""
    return value


class SignInFailed(Exception):
    """The homeserver did not confirm the password; `status` and `message` are for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignIn:
    """GET/POST /login and POST /logout, and who is signed in for the other pages."""

    def __init__(self, config: Config, db: Database, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.db = db
        self.http = http

    def add_routes(self, app: web.Application) -> None:
        """Add the sign-in and sign-out routes."""
        app.router.add_get("/login", shows_errors(self.get_login))
        app.router.add_post("/login", shows_errors(self.post_login))
        app.router.add_post("/logout", shows_errors(self.post_logout))

    # region who is signed in

    async def current(self, request: web.Request) -> WebSession | None:
        """The unexpired sign-in this request's cookie belongs to, if any."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > MAX_FIELD_LENGTH:
            return None
        async with connection(self.db) as conn:
            return await sessions_db.get_web_session(conn, token_hash(token))

    async def require(self, request: web.Request) -> WebSession:
        """The signed-in compliance user; others are sent to sign in, or refused."""
        session = await self.current(request)
        if session is None:
            raise web.HTTPSeeOther(login_location(request))
        # The config may have changed since sign-in; a role taken away ends access at once.
        if not can_search_archive(role_for(session.user_id, self.config)):
            raise refusal(session.user_id)
        return session

    # endregion
    # region pages

    async def get_login(self, request: web.Request) -> web.Response:
        """The sign-in form; someone already signed in goes straight on."""
        next_page = safe_next(request.query.get("next"))
        if await self.current(request) is not None:
            return redirect(next_page)
        return self.login_form(request, next_page)

    async def post_login(self, request: web.Request) -> web.Response:
        """Check the password with the homeserver, then the role; start a session."""
        form = await request.post()
        username = form_text(form, "user").strip()
        password = form_text(form, "password")
        next_page = safe_next(form_text(form, "next"))

        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not tokens_match(expected, form_text(form, CSRF_FIELD)):
            error = "This sign-in form has expired. Please sign in again."
            return self.login_form(request, next_page, error, username, status=403)
        if not username or not password:
            error = "Enter your Matrix user ID and password."
            return self.login_form(request, next_page, error, username, status=400)

        try:
            user_id = await self.check_password(username, password)
        except SignInFailed as e:
            return self.login_form(request, next_page, e.message, username, status=e.status)

        if not can_search_archive(role_for(user_id, self.config)):
            log.info("Archive sign-in refused: no archive role", extra={"user_id": user_id})
            raise refusal(user_id)
        return await self.start_session(user_id, next_page)

    async def post_logout(self, request: web.Request) -> web.Response:
        """End the session (the form must carry its CSRF token) and forget the cookie."""
        session = await self.current(request)
        if session is not None:
            form = await request.post()
            if not tokens_match(session.csrf_token, form_text(form, CSRF_FIELD)):
                raise PageError(
                    403, "Request refused", "The sign-out form was not sent by this site."
                )
            async with transaction(self.db) as conn:
                await sessions_db.delete_web_session(conn, session.token_sha256)
            log.info("Archive sign-out", extra={"user_id": session.user_id})

        response = redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def login_form(
        self,
        request: web.Request,
        next_page: str,
        error: str = "",
        username: str = "",
        status: int = 200,
    ) -> web.Response:
        """The form, with a fresh double-submit token unless the browser already has one."""
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if len(token) != 43:  # token_urlsafe(32)
            token = secrets.token_urlsafe(32)
        response = html_response(
            "login.html",
            status,
            csrf_token=token,
            next=next_page,
            error=error,
            username=username,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=LOGIN_CSRF_LIFETIME,
            path="/login",
            secure=self.config.web.secure_cookies,
            httponly=True,
            samesite="Strict",
        )
        return response

    async def start_session(self, user_id: str, next_page: str) -> web.Response:
        """Store a new sign-in and hand its token to the browser as a cookie."""
        token = secrets.token_urlsafe(32)
        lifetime = self.config.web.session_lifetime
        async with transaction(self.db) as conn:
            await sessions_db.delete_expired_web_sessions(conn)
            await sessions_db.create_web_session(
                conn, token_hash(token), user_id, secrets.token_urlsafe(32), int(lifetime * 1000)
            )
        log.info("Archive sign-in", extra={"user_id": user_id})

        response = redirect(next_page)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(lifetime),
            path="/",
            secure=self.config.web.secure_cookies,
            httponly=True,
            samesite="Strict",
        )
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    # endregion
    # region the homeserver

    async def check_password(self, username: str, password: str) -> str:
        """The user ID the homeserver confirms for this password; never keeps its token."""
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
            "initial_device_display_name": "Backline archive sign-in",
        }
        answer = await self._call("POST", "/login", body)
        token = answer.get("access_token")
        if not isinstance(token, str):
            raise SignInFailed(502, "The homeserver did not complete the sign-in.")
        try:
            whoami = await self._call("GET", "/account/whoami", token=token)
        finally:
            await self._logout(token)
        user_id = whoami.get("user_id")
        if not isinstance(user_id, str):
            raise SignInFailed(502, "The homeserver did not say who signed in.")
        return user_id

    async def _logout(self, token: str) -> None:
        try:
            await self._call("POST", "/logout", {}, token=token)
        except SignInFailed as e:
            # The token stays valid at the homeserver until it expires or the user removes
            # the device "Backline archive sign-in"; Backline itself has already dropped it.
            log.warning("Could not log the sign-in token out: %s", e.message)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = ""
    ) -> dict[str, Any]:
        url = f"{self.config.homeserver.address.rstrip('/')}/_matrix/client/v3{path}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.http.request(
                method, url, json=body, headers=headers, timeout=HOMESERVER_TIMEOUT
            ) as response:
                status = response.status
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.warning("Homeserver %s %s failed: %s", method, path, type(e).__name__)
            raise SignInFailed(502, "The homeserver could not be reached. Try again.") from e

        if status == 429:
            raise SignInFailed(429, "Too many sign-in attempts. Wait a minute and try again.")
        if status in (400, 401, 403):
            raise SignInFailed(401, "Wrong user ID or password.")
        if status != 200 or not isinstance(answer, dict):
            log.warning("Homeserver %s %s answered %s", method, path, status)
            raise SignInFailed(502, "The homeserver could not check the password. Try again.")
        return answer

    # endregion


def refusal(user_id: str) -> PageError:
    """The page for someone whose password was right but whose role does not allow access."""
    return PageError(
        403,
        "No access to the archive",
        f"You are signed in to Matrix as {user_id}, but only compliance officers and"
        " administrators may use the archive. Ask your Backline administrator for access.",
        link="/login",
        link_text="Sign in as someone else",
    )
