"""Protocol logic shared by the server, the client and the lab: bytes in, values out.

Standard library only and no sockets, so it runs in the minimal containers and is tested
without a network (the h11 way):

- `framing`: `length` framing (4-byte big-endian length, then the payload) and `raw` (no
  boundaries at all, the article's "LuffyZoroSanji").
- `http`: HTTP/1.0 and HTTP/1.1 requests and responses for the `http` protocol, and the
  deterministic resource bodies `body(name, size)`.
- `payload`: deterministic message contents for the echo protocol's `--sizes`.
- `protocols`: the registry of protocols (what each layer needs to know about one), and the
  checklist for adding one.
- `units`: rates (`20mbit`) and byte sizes (`14k`) as scenarios and command lines write them.
- `args`: argparse types shared by the programs.
"""
