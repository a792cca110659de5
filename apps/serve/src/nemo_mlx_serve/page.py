"""`GET /`: the one page of the server (page/index.html, shipped in the package).

The page loads nothing from elsewhere: its CSS and JS are inline, allowed by a nonce made
for each response, and its Content-Security-Policy forbids every other origin."""

from __future__ import annotations

import secrets
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

NONCE = "{{nonce}}"  # where index.html wants the response's nonce


@cache
def template() -> str:
    """index.html as shipped, nonce placeholders and all."""
    return files(__package__).joinpath("page", "index.html").read_text(encoding="utf-8")


def policy(nonce: str) -> str:
    """The page's CSP: this origin only; inline script and style only with `nonce`; audio
    also from the page's own object URLs (`blob:`)."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "media-src 'self' blob:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


async def page(request: Request) -> Response:
    nonce = secrets.token_urlsafe(18)
    headers = {
        "Content-Security-Policy": policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",  # the nonce is new each time
    }
    return HTMLResponse(template().replace(NONCE, nonce), headers=headers)


routes = [Route("/", page, methods=["GET"])]
