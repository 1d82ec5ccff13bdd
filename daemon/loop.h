/* loop.h - the daemon's event loop: the one thread that owns the ROUTER
 * sockets, the ZAP handler and the SQLite store. It answers cheap requests
 * itself, queues ingest and engine jobs (bounded; `busy` when full), forwards
 * the workers' events to clients, stores results, enforces deadlines of
 * queued jobs, and handles SIGTERM (drain, then cancel) and SIGHUP. */
#ifndef LOOP_H
#define LOOP_H

#include "sd.h"
#include "settings.h"

/* Runs the daemon until SIGTERM/SIGINT. sigfd is a signalfd for SIGTERM,
 * SIGINT and SIGHUP (blocked in every thread). Returns the process exit
 * status: 0 after a clean stop, 2 when start-up failed (err says why). */
int loop_run(const settings *s, int sigfd, sd_err *err);

#endif
