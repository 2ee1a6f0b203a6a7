"""One module per CLI command, each with `run(args) -> int`: thin shells over the pure modules."""
