"""The parts of ``bench/load.py``: configurations, servers, wrk, the connection sampler,
the scenarios, the no-database overhead, the machine and the report."""
