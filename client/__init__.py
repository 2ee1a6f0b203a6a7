"""The lab's client, standard library only: non-persistent (a new connection per request, N at a
time) or persistent (N keep-alive connections sharing the requests, optionally pipelined).

```
plan.py      what to send and what must come back (pure)
session.py   one TCP connection: timed connect/read/write, per-request timestamps
core.py      the two modes on top of sessions; records and summary
log.py       human lines like the article's, or one JSON object per request
```

Every response is checked byte for byte; every socket operation has a timeout, so the client
ends with exit 0 (all matched) or 1 (a one-line error on stderr), never a hang.
"""
