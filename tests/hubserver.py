"""A small HTTP server on 127.0.0.1 that serves model repos the way the Hugging Face Hub does
for hf_hub_download: HEAD/GET /{repo_id}/resolve/{revision}/{filename} with X-Repo-Commit,
ETag and Content-Length; 404 with X-Error-Code for missing files and revisions."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional


class FakeHub:
    def __init__(self):
        self.repos: Dict[str, Dict[str, Dict[str, bytes]]] = {}  # repo -> revision -> file -> bytes
        self.corrupt_times: Dict[str, int] = {}  # file name -> how many GETs serve wrong bytes
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _lookup(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if "resolve" not in parts:
                    return None, None, "EntryNotFound"
                i = parts.index("resolve")
                repo, rev, fname = "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2:])
                revs = hub.repos.get(repo)
                if revs is None:
                    return None, None, "RepoNotFound"
                if rev not in revs:
                    return None, None, "RevisionNotFound"
                data = revs[rev].get(fname)
                if data is None:
                    return None, None, "EntryNotFound"
                return rev, (fname, data), None

            def _send(self, body: bool):
                hub.requests.append((self.command, self.path))
                rev, item, err = self._lookup()
                if err:
                    self.send_response(404)
                    self.send_header("X-Error-Code", err)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                fname, data = item
                if body and hub.corrupt_times.get(fname, 0) > 0:
                    hub.corrupt_times[fname] -= 1
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(200)
                self.send_header("X-Repo-Commit", rev)
                self.send_header("ETag", '"' + hashlib.sha256(item[1]).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._send(False)

            def do_GET(self):
                self._send(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_folder(self, repo: str, revision: str, folder: Path, skip: Optional[set] = None):
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file() and p.name not in (skip or set())}
        self.repos.setdefault(repo, {})[revision] = files

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
