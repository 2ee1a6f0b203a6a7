"""The lab's TCP server: one thread per connection by default, standard library only.

```
Server (core.py)          listeners, accept loop, limits, SIGTERM shutdown, each connection's story
  ├─ Connection (connection.py)        one accepted socket: timed reads/writes, FIN, logging
  ├─ EventLoop, LoopConnection (loop.py)   the `epoll` model: event loops instead of a thread each
  └─ serve_echo / serve_http (handlers.py)   the protocol, on top of wire/
Log (log.py)              human lines like the article's, or one JSON object a line
```

Threads by default because the lab is about connections: a thread per connection keeps each
connection's story (accept, messages, FIN, close) in one straight piece of code, and the
shutdown joins every handler, so the last FIN is always on the wire before the process exits.
The handlers are generators (`yield from conn.recv(...)`), so the `epoll` model runs the very
same code from event loops, at a fraction of the CPU per request under load.
"""
