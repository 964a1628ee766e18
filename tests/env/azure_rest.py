#!/usr/bin/env python3
"""A tiny Azure Blob REST client (SharedKey auth, standard library only), so the tests read what
mtn wrote through Azurite's REST API independently of object_store.

  azure_rest.py ENDPOINT ACCOUNT KEY mkcontainer CONTAINER
  azure_rest.py ENDPOINT ACCOUNT KEY get CONTAINER BLOB OUTFILE
  azure_rest.py ENDPOINT ACCOUNT KEY head CONTAINER BLOB        (prints the headers as JSON)
  azure_rest.py ENDPOINT ACCOUNT KEY list CONTAINER PREFIX      (prints blob names, one a line)
  azure_rest.py ENDPOINT ACCOUNT KEY put CONTAINER BLOB INFILE [SHA256]   (SHA256: x-ms-meta-sha256)
  azure_rest.py ENDPOINT ACCOUNT KEY delete CONTAINER BLOB

ENDPOINT is the account URL, path-style for Azurite: http://127.0.0.1:PORT/devstoreaccount1.
"""
import base64, hashlib, hmac, json, sys, urllib.error, urllib.parse, urllib.request
from email.utils import formatdate

VERSION = "2021-08-06"


def request(endpoint, account, key, method, path, query=None, body=b"", headers=None):
    query = query or {}
    url = endpoint.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    h = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": VERSION}
    h.update(headers or {})
    if method == "PUT":
        # urllib would add a form Content-Type of its own, which the signature must cover.
        h["Content-Type"] = "application/octet-stream"
    length = str(len(body)) if body else ""
    canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(h.items()) if k.startswith("x-ms-"))
    resource = "/" + account + urllib.parse.urlparse(url).path
    for k in sorted(query):
        resource += f"\n{k.lower()}:{query[k]}"
    to_sign = "\n".join([method, "", "", length, "", h.get("Content-Type", ""), "", "", "", "", "", ""])
    to_sign += "\n" + canon_headers + resource
    sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest())
    h["Authorization"] = f"SharedKey {account}:{sig.decode()}"
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=h)
    if method == "PUT":
        req.add_header("Content-Length", str(len(body)))
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main():
    endpoint, account, key, cmd, container = sys.argv[1:6]
    rest = sys.argv[6:]
    ep = (endpoint, account, key)
    if cmd == "mkcontainer":
        st, _, body = request(*ep, "PUT", f"/{container}", {"restype": "container"})
        if st not in (201, 409):
            sys.exit(f"create container {container}: {st} {body[:300]!r}")
    elif cmd == "get":
        st, _, body = request(*ep, "GET", f"/{container}/{rest[0]}")
        if st != 200:
            sys.exit(f"get {rest[0]}: {st} {body[:300]!r}")
        with open(rest[1], "wb") as f:
            f.write(body)
    elif cmd == "head":
        st, h, _ = request(*ep, "HEAD", f"/{container}/{rest[0]}")
        print(json.dumps({"status": st, "headers": {k.lower(): v for k, v in h.items()}}))
    elif cmd == "list":
        st, _, body = request(*ep, "GET", f"/{container}", {"restype": "container", "comp": "list", "prefix": rest[0]})
        if st != 200:
            sys.exit(f"list: {st} {body[:300]!r}")
        import xml.etree.ElementTree as ET
        for n in ET.fromstring(body).iter("Name"):
            print(n.text)
    elif cmd == "put":
        with open(rest[1], "rb") as f:
            data = f.read()
        headers = {"x-ms-blob-type": "BlockBlob"}
        if len(rest) > 2:
            headers["x-ms-meta-sha256"] = rest[2]
        st, _, body = request(*ep, "PUT", f"/{container}/{rest[0]}", body=data, headers=headers)
        if st != 201:
            sys.exit(f"put {rest[0]}: {st} {body[:300]!r}")
    elif cmd == "delete":
        st, _, body = request(*ep, "DELETE", f"/{container}/{rest[0]}")
        if st not in (202, 404):
            sys.exit(f"delete {rest[0]}: {st} {body[:300]!r}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
