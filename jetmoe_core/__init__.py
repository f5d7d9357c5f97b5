"""What the corpus builder (``pipeline``) and the trainer (``trainer``) both need, written once.

    from jetmoe_core.config import ConfigError, load_toml, from_table, apply_overrides
    from jetmoe_core.io import sha256_file, write_bytes_atomic, write_json_atomic, explain_os_error
    from jetmoe_core import shards      # the shard and manifest contract: names, columns, metadata, dtype rule
    from jetmoe_core.cli import dispatch

Both packages import this one; it imports neither of them (and no torch, no datatrove), so the wall between
the builder and the trainer stays: they meet only through the files the shard contract describes.
"""
