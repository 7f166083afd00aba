"""``python -m secton_cli`` is the ``secton-harness`` command."""

from secton_cli.app import main

main()
