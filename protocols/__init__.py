# Wire formats shared by the gateway (CPython), the boards (MicroPython) and the simulators.
# Pure and sans-I/O: bytes in, values out. Only the subset of Python that MicroPython runs.
