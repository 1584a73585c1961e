"""Security headers for the pages people open in a browser.

The archive shows text that anyone in a session could have written, so the pages are built to
be inert even if escaping ever failed: no script may run, nothing loads from elsewhere, no other
site may frame them, and nothing is cached where a shared browser or the back button could
show it after sign-out.
"""

from __future__ import annotations

from aiohttp import web

from .errors import Handler

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    # For browsers that predate CSP's frame-ancestors.
    "X-Frame-Options": "DENY",
}
# The homeserver's and machines' routes answer JSON and set their own headers.
NOT_PAGES = ("/_matrix/", "/api/", "/health", "/metrics")


def is_page(path: str) -> bool:
    """Whether a path is one of the people-facing pages (or their stylesheet)."""
    return not path.startswith(NOT_PAGES)


def add_page_headers(response: web.StreamResponse) -> None:
    """Set each header unless the handler chose its own."""
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add `PAGE_HEADERS` to page answers, including redirects and errors."""
    if not is_page(request.path):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as e:
        # Redirects (to sign-in, say) are raised; they leave through here too.
        add_page_headers(e)
        raise
    add_page_headers(response)
    return response
