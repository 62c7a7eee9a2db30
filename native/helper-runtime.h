/*
 * The process plumbing the jail's helpers (srt-gw-redirector, srt-gw-dns-forwarder) share:
 * signals that stop the loop or report exited children without a lost-wakeup race, blocking
 * writes, argument parsing, and the ready signal a supervisor waits on.
 */
#ifndef SRT_GW_HELPER_RUNTIME_H
#define SRT_GW_HELPER_RUNTIME_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

/* Set by the handlers helper_install_signals() installs; the main loop reads and clears them. */
extern volatile sig_atomic_t child_exited;
extern volatile sig_atomic_t stop_requested;

/*
 * Ignores SIGPIPE (writes fail with EPIPE instead), blocks SIGCHLD/SIGTERM/SIGINT and stores in
 * `during_wait` the mask to pass to ppoll: a signal arriving between the loop's checks and the
 * wait is then delivered inside ppoll, never missed.
 */
void helper_install_signals(sigset_t *during_wait);

/* Writes all of buf to a blocking fd; returns 0 or -1. */
int write_all(int fd, const void *buf, size_t len);

int set_nonblocking(int fd);

/* 1-65535, or -1. */
int parse_port(const char *text);

/* Bounds a blocking connect to a gateway whose accept backlog is full: no client hangs forever. */
#define GATEWAY_CONNECT_TIMEOUT_S 5

/*
 * Connects to the gateway's unix socket at `path` (its length checked by the caller); returns the
 * fd or -1. Non-blocking: a full backlog (EAGAIN) counts as unreachable instead of stalling the
 * caller; blocking: it waits at most GATEWAY_CONNECT_TIMEOUT_S.
 */
int connect_gateway_socket(const char *path, int nonblocking);

/* Prints a helper's usage text to the given stream. */
typedef void helper_usage_fn(FILE *out);

/*
 * The option loops of both helpers, where every flag takes one value: returns the value of the
 * flag at argv[*i] and moves *i onto it. -h/--help prints the usage to stdout and exits 0; a flag
 * with nothing after it is reported, with the usage, and exits 64.
 */
const char *helper_option_value(const char *prog, int argc, char **argv, int *i, helper_usage_fn *usage);

/* An option the helper does not know: says so, with the usage, and exits 64. */
void helper_unknown_option(const char *prog, const char *flag, helper_usage_fn *usage) __attribute__((noreturn));

/* --listen-port's value (1-65535), or exits 64 saying why. */
int helper_listen_port(const char *prog, const char *value);

/* A descriptor number from 3 to 1023 that is open, or -1 after saying why on stderr. */
int parse_open_fd(const char *prog, const char *flag, const char *text);

/* Writes "ready\n" to fd and closes it; returns 0, or -1 after saying why on stderr. */
int signal_ready(const char *prog, int fd);

#endif
