"""``python -m secton_harness`` is the ``secton-harness`` command."""

from secton_harness.cli import main

main()
