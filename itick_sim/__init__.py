"""itick_sim — a deterministic, iTick-compatible market-data simulator (WSGI app + loopback server)."""

from itick_sim.app import Simulator
from itick_sim.counters import RequestCounters
from itick_sim.reference import IpoSpec
from itick_sim.server import SimServer, serve
from itick_sim.settings import SimSettings
from itick_sim.universe import SplitSpec, SymbolSpec

__all__ = ["IpoSpec", "RequestCounters", "SimServer", "SimSettings", "Simulator", "SplitSpec", "SymbolSpec", "serve"]
