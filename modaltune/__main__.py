"""`python -m modaltune`: the workflow's rules call the library this way, with an explicit interpreter."""

from modaltune.cli import main

raise SystemExit(main())
