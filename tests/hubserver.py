"""A small HTTP server on 127.0.0.1 that serves model repos the way the Hugging Face Hub does
for hf_hub_download: HEAD/GET /{repo_id}/resolve/{revision}/{filename} with X-Repo-Commit,
ETag and Content-Length; 404 with X-Error-Code for missing files and revisions. It also takes
pushes the way HfApi.create_repo / create_commit send them (repos/create, validate-yaml,
preupload answered with "regular" uploads, an NDJSON commit), so a push can be checked by
downloading it again at the commit it returned."""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional


class FakeHub:
    def __init__(self):
        self.repos: Dict[str, Dict[str, Dict[str, bytes]]] = {}  # repo -> revision -> file -> bytes
        self.corrupt_times: Dict[str, int] = {}  # file name -> how many GETs serve wrong bytes
        self.requests = []
        self.refs: Dict[str, Dict[str, str]] = {}  # repo -> branch -> commit
        self.tokens_seen = []
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
                rev = hub.refs.get(repo, {}).get(rev, rev)  # a branch resolves to its commit
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

            def _json(self, code: int, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                hub.requests.append((self.command, self.path))
                hub.tokens_seen.append(self.headers.get("Authorization", ""))
                data = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    d = json.loads(data)
                    repo = f"{d['organization']}/{d['name']}" if d.get("organization") else d["name"]
                    hub.repos.setdefault(repo, {})
                    return self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":
                    return self._json(200, {})
                parts = path.strip("/").split("/")  # api models ORG NAME (preupload|commit) REV
                if len(parts) >= 6 and parts[0] == "api" and parts[4] in ("preupload", "commit"):
                    repo, action, branch = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
                    if repo not in hub.repos:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "RepoNotFound")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if action == "preupload":
                        files = json.loads(data)["files"]
                        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False} for f in files]})
                    base = hub.refs.get(repo, {}).get(branch)
                    files = dict(hub.repos[repo].get(base, {})) if base else {}
                    for line in data.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    commit = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest())
                                                            for k, v in files.items())).encode()).hexdigest()
                    hub.repos[repo][commit] = files
                    hub.refs.setdefault(repo, {})[branch] = commit
                    return self._json(200, {"commitUrl": f"{hub.url}/{repo}/commit/{commit}", "commitOid": commit})
                self._json(404, {"error": f"not served here: {path}"})

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
