"""A local fake of the prefectures' booking platforms: the demo, the tests and the
benchmarks all run against it, never against a real site.

Written from the project's platform notes, independently of the adapters: it never
imports an adapter's constants, and production code never imports it.
"""

from observatoire.simulator.server import RunningSimulator, start_simulator

__all__ = ["RunningSimulator", "start_simulator"]
