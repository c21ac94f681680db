"""``python -m transferlab``: the same as the ``transferlab`` command (how ``train --processes`` starts its copies)."""

from .cli import main

main()
