"""`python -m syncd` is the `syncd` command."""

from syncd.cli import main

raise SystemExit(main())
