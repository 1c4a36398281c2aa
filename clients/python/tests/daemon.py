"""Starts the real opslog release binary on 127.0.0.1:0 with a temp config and a known API key."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("OPSLOG_BIN") or os.path.join(HERE, "..", "..", "..", "target", "release", "opslog")
# The client writes with an ingest key (all integration code needs); the test reads back with a
# read key, as the CLI or a dashboard user would.
TOKEN = "test-prod-ingest-key-0123456789"
READ_KEY = "test-prod-read-key-0123456789"


class Daemon:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="opslog-py-")
        config = os.path.join(self.dir, "opslog.toml")
        # It holds secrets: opslog refuses a config file others can read.
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(
                '[server]\nlisten = "127.0.0.1:0"\ndata_dir = %s\nadmin_tokens = ["test-admin-token-0123456789"]\n\n'
                '[environments.prod]\napi_keys = [{ key = "%s", scope = "ingest" }, { key = "%s", scope = "read" }]\n'
                % (json.dumps(os.path.join(self.dir, "data")), TOKEN, READ_KEY)
            )
        env = dict(os.environ, RUST_LOG="warn")
        self.process = subprocess.Popen(
            [BIN, "serve", "--config", config], stdout=subprocess.PIPE, env=env, text=True
        )
        first = self.process.stdout.readline()
        if "listening on " not in first:
            raise RuntimeError("unexpected first line from opslog: %r" % first)
        self.base = first.split("listening on ", 1)[1].strip()
        self.token = TOKEN
        # Keep draining stdout so the rest of the banner never blocks the daemon.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def get(self, path):
        request = urllib.request.Request(self.base + "/v1/environments/prod" + path)
        request.add_header("Authorization", "Bearer " + READ_KEY)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def admin(self, method, path, body=None):
        """An admin call on the prod environment (settings)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + "/v1/environments/prod" + path, data=data, method=method)
        request.add_header("Authorization", "Bearer test-admin-token-0123456789")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def messages(self, op_id):
        out, cursor = [], None
        while True:
            query = "limit=500" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
            page = self.get("/operations/%s/messages?%s" % (op_id, query))
            out.extend(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def eventually(check, limit=10.0):
    """Polls ``check`` until it returns something truthy, for at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    pause = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %ss" % limit)
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
