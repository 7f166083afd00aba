"""reports job."""
