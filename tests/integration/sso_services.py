"""Stand-ins for a company SSO, run as real processes by test_header_sso.py:

proxy  --listen IP:PORT --upstream URL [--header NAME]
    a reverse proxy in front of the hub that has "signed the user in": the name it has for the
    browser (here: the X-Test-Sso-User request header, the SSO's session in this test) goes to
    the hub in the username header, which it always sets itself (a browser's own is dropped).
whoami --listen IP:PORT --session TOKEN=NAME ...
    a "who am I" service: GET /whoami with the corp_session cookie answers {"username": NAME}
    or 401; GET /login is its sign-in page.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
SSO_SESSION = "X-Test-Sso-User"


def proxy_app(upstream: str, header: str) -> web.Application:
    class Forward(web.RequestHandler):
        SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

        async def _forward(self):
            headers = httputil.HTTPHeaders()
            for name, value in self.request.headers.get_all():
                if name.lower() not in HOP | {header.lower(), SSO_SESSION.lower()}:
                    headers.add(name, value)
            who = self.request.headers.get(SSO_SESSION)
            if who:
                headers[header] = who
            body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    upstream + self.request.uri,
                    method=self.request.method,
                    headers=headers,
                    body=body,
                    follow_redirects=False,
                    allow_nonstandard_methods=True,
                    request_timeout=60,
                ),
                raise_error=False,
            )
            self.set_status(response.code, response.reason)
            self.clear_header("Content-Type")
            for name, value in response.headers.get_all():
                if name.lower() not in HOP:
                    self.add_header(name, value)
            if response.body:
                self.write(response.body)

        get = post = put = patch = delete = head = options = _forward

    return web.Application([(r".*", Forward)])


def whoami_app(sessions: dict[str, str]) -> web.Application:
    class WhoAmI(web.RequestHandler):
        def get(self):
            name = sessions.get(self.get_cookie("corp_session") or "")
            if name is None:
                self.set_status(401)
                return self.finish({"error": "not signed in"})
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"username": name}))

    class Login(web.RequestHandler):
        def get(self):
            self.finish("<h1>Corporate sign-in</h1>")

    return web.Application([(r"/whoami", WhoAmI), (r"/login", Login)])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["proxy", "whoami"])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream")
    parser.add_argument("--header", default="X-Remote-User")
    parser.add_argument("--session", action="append", default=[])
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if args.kind == "proxy":
        app = proxy_app(args.upstream.rstrip("/"), args.header)
    else:
        app = whoami_app(dict(pair.split("=", 1) for pair in args.session))
    app.listen(int(port), address=host)
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
