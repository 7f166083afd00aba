"""``python -m secton_harness`` is the ``secton-harness`` command.

The one module of the core that reaches the entry layer: it is run, never imported, so the
rule "the core imports no job" holds for everything that can be imported (the import-rule
test names this exception).
"""

from secton_cli.app import main

main()
