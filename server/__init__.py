"""The lab's threaded TCP server: one thread per connection, standard library only.

```
Server (core.py)          listeners, accept loop, limits, SIGTERM shutdown
  └─ Connection (connection.py)   one accepted socket: timed reads/writes, FIN, logging
       └─ serve_echo / serve_http (handlers.py)   the protocol, on top of wire/
Log (log.py)              human lines like the article's, or one JSON object a line
```

Threads rather than asyncio because the lab is about connections: a thread per connection keeps
each connection's story (accept, messages, FIN, close) in one straight piece of code, and the
shutdown joins every handler, so the last FIN is always on the wire before the process exits.
"""
