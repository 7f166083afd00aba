"""loadtests job."""
