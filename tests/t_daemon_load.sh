#!/usr/bin/env bash
# t_daemon_load.sh - smoldocd under concurrency, cancel, deadlines, a full
# queue and malformed frames (see tests/daemon/test_load.py).
cd "$(dirname "$0")/.." && exec timeout 600 /usr/bin/python3 tests/daemon/test_load.py
