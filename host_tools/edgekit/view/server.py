"""`edgekit view`: serves the fleet pages (view/page.py) on localhost, read only: GET of /,
/device/<id> and /devices.json; anything else is 404/405. Each request opens the registry
for that request (a long-running viewer never holds the database)."""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from edgekit.errors import EdgekitError
from edgekit.registry.db import Registry
from edgekit.view import page


def make_handler(registry_path):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):          # quiet: a viewer is not a web server log
            pass

        def _send(self, code, body, ctype="text/html; charset=utf-8"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the http.server hook name
            path = unquote(self.path.split("?", 1)[0])
            try:
                with Registry(registry_path) as reg:
                    if path == "/":
                        return self._send(200, page.fleet_page(*page.load(reg)))
                    if path == "/devices.json":
                        devices, alarms = page.load(reg)
                        return self._send(200, json.dumps(
                            [dict({k: v for k, v in d.items() if not isinstance(v, bytes)},
                                  alarms=alarms[d["device_id"]]) for d in devices]),
                            "application/json")
                    if path.startswith("/device/"):
                        found = page.load(reg, path[len("/device/"):])
                        if found is None:
                            return self._send(404, "<p>no such device</p>")
                        return self._send(200, page.device_page(*found))
            except EdgekitError as exc:
                return self._send(500, f"<p>{page.esc(exc)}</p>")
            self._send(404, "<p>not found</p>")

        def _read_only(self):
            self._send(405, "<p>edgekit view is read-only</p>")

        do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    return Handler


def make_server(registry_path, host="127.0.0.1", port=8080):
    return ThreadingHTTPServer((host, port), make_handler(registry_path))


def cmd_view(args):
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.public:
        raise EdgekitError(f"--host {args.host}: the view shows every device and its location; "
                           "it listens on this computer only unless you add --public")
    with Registry(args.registry):               # a bad registry: say so now, not per page
        pass
    try:
        server = make_server(args.registry, args.host, args.port)
    except OSError as exc:
        raise EdgekitError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick "
                           "another --port") from None
    host, port = server.server_address[:2]
    if args.json:                       # for a script that starts it and opens the page
        print(json.dumps({"url": f"http://{host}:{port}/"}), flush=True)
    print(f"edgekit view: http://{host}:{port}/ (read-only; Ctrl-C stops it)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "view", help="a local, read-only web page of the fleet",
        description="Serve the registry, a map of the devices (drawn locally, no tile "
                    "server), each device's state and alarms and charts of its stored "
                    "telemetry, on http://127.0.0.1:8080/. Read-only.")
    p.add_argument("--registry", metavar="FILE",
                   help="registry database (default $EDGEKIT_HOME/registry.sqlite)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    p.add_argument("--json", action="store_true",
                   help='print {"url": ...} on stdout once it listens')
    p.add_argument("--public", action="store_true",
                   help="allow a --host other than this computer")
    p.set_defaults(func=cmd_view)
