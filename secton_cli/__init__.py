"""The entry layer of ``secton-harness``: the command registry (``app``) and the demo.

It sits above the jobs and imports each job's ``command`` module; nothing imports it.
"""
