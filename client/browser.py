"""`python -m client.browser --url URL`: load a page in headless Chromium and report what it did.

The browser client of the lab (tcplab/browser image; `client: browser` in a scenario's mode).
Chromium loads the page once, with a fresh profile (so nothing comes from its cache), writes its
net-log (every socket with its local port, every request and the socket it went on) and dumps
the DOM when the page has loaded. This driver then prints:

    stdout   the net-log, verbatim (JSON; opens in Chromium's netlog viewer)
    stderr   Chromium's own stderr, then one JSON line: {"event": "browser_done", "exit",
             "elapsed_s", "title", "dom", "keylog"}

Over TLS (`--spki-pin`), Chromium trusts the server whose key has that pin (its own trust store
is NSS, which nothing here writes to), and writes the TLS secrets it negotiates to a key log
(SSLKEYLOGFILE format) in its temporary folder: `keylog` carries that text, for Wireshark.

Exit 0 when Chromium loaded the page and wrote its net-log; 1 otherwise (one line on stderr);
2 on bad arguments. Standard library only, like the rest of the client package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Debian's /usr/bin/chromium is a shell wrapper that reads /etc/chromium.d; the binary itself
# takes the same flags without it.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")

# Everything Chromium would fetch or start besides the page is off, so the capture holds the
# page's connections only: no component updates, no sync, no background fetches, no first-run.
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",  # the sandbox needs user namespaces or a setuid helper; the container is it
    "--disable-gpu",
    "--disable-dev-shm-usage",  # Docker's /dev/shm is 64 MiB
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--mute-audio",
)

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def chromium_argv(
    binary: str,
    url: str,
    profile: str,
    netlog: str,
    spki_pin: str | None = None,
    keylog: str | None = None,
) -> list[str]:
    """Chromium's command line: a fresh profile, the net-log (its default capture mode: no
    cookies or bodies), and --dump-dom, which prints the DOM once the page has loaded and exits.
    Over TLS: the server key's pin it trusts, and the key log it writes."""
    tls = [f"--ignore-certificate-errors-spki-list={spki_pin}"] if spki_pin else []
    if keylog:
        tls.append(f"--ssl-key-log-file={keylog}")
    return [
        binary,
        *QUIET_FLAGS,
        *tls,
        f"--user-data-dir={profile}",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Default",
        "--dump-dom",
        url,
    ]


def page_title(dom: str) -> str | None:
    match = TITLE.search(dom)
    return " ".join(match.group(1).split()) if match else None


def find_chromium(given: str | None) -> str | None:
    for candidate in (given,) if given else CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m client.browser",
        description="Load a page in headless Chromium; print its net-log (stdout) and the DOM "
        "(the last stderr line, JSON).",
    )
    p.add_argument("--url", required=True, help="the page, e.g. http://server:3000/index.html")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole load")
    p.add_argument("--chromium", help="the browser binary (default: Debian's chromium)")
    p.add_argument(
        "--spki-pin",
        metavar="BASE64",
        help="https: trust the server whose key has this pin (base64 SHA-256 of its "
        "SubjectPublicKeyInfo), and return the TLS key log",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not re.match(r"https?://[^/\s]+", args.url):
        print(f"error: --url must be an http(s) URL, got {args.url!r}", file=sys.stderr)
        return 2
    binary = find_chromium(args.chromium)
    if binary is None:
        print("error: no chromium binary found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tcplab-browser-") as tmp:
        netlog = Path(tmp) / "netlog.json"
        keylog = Path(tmp) / "tls-keys.log" if args.spki_pin else None
        argv = chromium_argv(
            binary, args.url, str(Path(tmp) / "profile"), str(netlog), args.spki_pin,
            str(keylog) if keylog else None,
        )  # fmt: skip
        started = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(
                f"error: chromium did not load {args.url} within {args.timeout:g} s",
                file=sys.stderr,
            )
            return 1
        elapsed = time.monotonic() - started
        sys.stderr.buffer.write(done.stderr)
        dom = done.stdout.decode("utf-8", "replace")
        if netlog.is_file():
            sys.stdout.buffer.write(netlog.read_bytes())
            sys.stdout.flush()
        summary = {
            "event": "browser_done",
            "exit": done.returncode,
            "elapsed_s": round(elapsed, 3),
            "title": page_title(dom),
            "dom": dom,
            "keylog": keylog.read_text() if keylog and keylog.is_file() else None,
        }
        print(json.dumps(summary), file=sys.stderr, flush=True)
        if done.returncode != 0 or not netlog.is_file() or not dom:
            what = "no net-log" if not netlog.is_file() else f"exit {done.returncode}"
            print(f"error: chromium failed on {args.url} ({what})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
