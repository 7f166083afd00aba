"""probes job."""
