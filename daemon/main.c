/* main.c - smoldocd: settings, data folder (mode 0700) and its lock, log,
 * signals, then the event loop (loop.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "settings.h"

/* Creates dir (and its parents) with mode 0700 and makes sure only the owner
 * can enter it. */
static int make_data_dir(const char *dir, sd_err *err) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) && errno != EEXIST) return sd_seterr(err, SD_EIO, "mkdir %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(dir, 0700) && errno != EEXIST) return sd_seterr(err, SD_EIO, "mkdir %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return sd_seterr(err, SD_EIO, "%s is not a directory", dir);
    if ((st.st_mode & 0777) != 0700 && chmod(dir, 0700))
        return sd_seterr(err, SD_EIO, "chmod 0700 %s: %s", dir, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    settings s;
    sd_err err = {0};
    settings_init(&s);
    if (settings_load(&s, argc, argv, &err)) {
        fprintf(stderr, "smoldocd: %s\n", err.msg);
        settings_clear(&s);
        return 1;
    }
    if (s.help) {
        settings_help(stdout);
        settings_clear(&s);
        return 0;
    }
    if (settings_validate(&s, &err)) {
        fprintf(stderr, "smoldocd: %s\n", err.msg);
        settings_clear(&s);
        return 1;
    }
    if (log_open(s.log_file, (log_level)log_level_parse(s.log_level))) {
        fprintf(stderr, "smoldocd: cannot open log file %s: %s\n", s.log_file, strerror(errno));
        settings_clear(&s);
        return 1;
    }
    int rc = 2, lockfd = -1, sigfd = -1;
    if (make_data_dir(s.data, &err)) {
        LOG(LOG_ERROR, "%s", err.msg);
        goto out;
    }
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/smoldocd.lock", s.data);
    lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB)) {
        LOG(LOG_ERROR, "another smoldocd is using %s (lock %s: %s)", s.data, lock, strerror(errno));
        fprintf(stderr, "smoldocd: another smoldocd is using %s\n", s.data);
        goto out;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(lockfd, 0) == 0 && write(lockfd, pid, (size_t)n) != n) LOG(LOG_WARN, "cannot write %s", lock);
    /* Signals are taken by the loop through a signalfd; every thread blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0) {
        LOG(LOG_ERROR, "signalfd: %s", strerror(errno));
        goto out;
    }
    rc = loop_run(&s, sigfd, &err);
    if (rc) fprintf(stderr, "smoldocd: %s\n", err.msg);
out:
    if (sigfd >= 0) close(sigfd);
    if (lockfd >= 0) close(lockfd);
    log_close();
    settings_clear(&s);
    return rc;
}
