"""Files syncd ships with its code (package data, read with `importlib.resources`), so they
are there however syncd was installed: from a wheel, by pipx, or from a checkout.

- ``config.example.toml``: the commented starter config `syncd init` writes (the README's
  quickstart; the repository's top-level ``config.example.toml`` is a link to it).
"""
