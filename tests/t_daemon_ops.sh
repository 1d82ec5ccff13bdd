#!/usr/bin/env bash
# t_daemon_ops.sh - smoldocd end to end on a tiny random model: every op via
# the Python and C clients, prefix reuse, map/reduce, settings (see
# tests/daemon/test_ops.py).
cd "$(dirname "$0")/.." && exec timeout 600 /usr/bin/python3 tests/daemon/test_ops.py
