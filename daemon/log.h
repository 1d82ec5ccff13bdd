/* log.h - the daemon's leveled log: lines "TIME LEVEL [thread] message" to
 * stderr or to a file that SIGHUP reopens. LOG() checks the level before it
 * formats anything. Thread-safe (one mutex around each line). */
#ifndef LOG_H
#define LOG_H

typedef enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
} log_level;

/* The current level; read by the LOG macro without locking (an int). */
extern volatile int log_level_current;

/* Parses "error" | "warn" | "info" | "debug"; returns -1 if unknown. */
int log_level_parse(const char *s);

/* Sends lines to path (appending; NULL or "" or "-" = stderr) at level.
 * Returns 0, or -1 when the file cannot be opened (the log stays on stderr). */
int log_open(const char *path, log_level level);

/* Reopens the log file (after rotation; SIGHUP). Returns 0 or -1. */
int log_reopen(void);

/* Closes the log file (back to stderr). */
void log_close(void);

/* Writes one line; use the LOG macro instead. */
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG(level, ...) do { \
    if ((int)(level) <= log_level_current) log_write((level), __VA_ARGS__); \
} while (0)

#endif
