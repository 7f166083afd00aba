"""The reference Secton API server: the embedded default target and the test double."""

from simulator.app import build_app
from simulator.config import SimulatorConfig, load_config
from simulator.server import serve

__all__ = ["SimulatorConfig", "build_app", "load_config", "serve"]
