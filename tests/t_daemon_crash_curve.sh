#!/usr/bin/env bash
# t_daemon_crash_curve.sh - kill -9 during ingest and generation (database
# intact, documents whole or absent) and TCP+CurveZMQ access control (see
# tests/daemon/test_crash_curve.py).
cd "$(dirname "$0")/.." && exec timeout 600 /usr/bin/python3 tests/daemon/test_crash_curve.py
