"""The virtual clock: a discrete-event loop (`loop.Engine`) that drives the same role cores as
the gRPC roles, in one process, with the simulated executor's latencies; one model per system
(`runtime/engine/diffserve.py`, `runtime/engine/spotserve.py`) wires the cores together."""
