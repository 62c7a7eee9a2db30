/* The process plumbing the jail's helpers share; see helper-runtime.h. */
#define _GNU_SOURCE
#include "helper-runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

volatile sig_atomic_t child_exited;
volatile sig_atomic_t stop_requested;

static void on_sigchld(int sig) {
  (void)sig;
  child_exited = 1;
}

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

void helper_install_signals(sigset_t *during_wait) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGCHLD);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigprocmask(SIG_BLOCK, &blocked, during_wait);
  sigdelset(during_wait, SIGCHLD);
  sigdelset(during_wait, SIGTERM);
  sigdelset(during_wait, SIGINT);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sigaction(SIGCHLD, &sa, NULL);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int parse_port(const char *text) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || *end || end == text || value < 1 || value > 65535) return -1;
  return (int)value;
}

int connect_gateway_socket(const char *path, int nonblocking) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  if (!nonblocking) {
    struct timeval timeout = {GATEWAY_CONNECT_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  }
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, strlen(path));
  int rc;
  do rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

const char *helper_option_value(const char *prog, int argc, char **argv, int *i, helper_usage_fn *usage) {
  const char *flag = argv[*i];
  if (!strcmp(flag, "-h") || !strcmp(flag, "--help")) {
    usage(stdout);
    exit(0);
  }
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value (or unknown option)\n", prog, flag);
    usage(stderr);
    exit(64);
  }
  return argv[++*i];
}

void helper_unknown_option(const char *prog, const char *flag, helper_usage_fn *usage) {
  fprintf(stderr, "%s: unknown option %s\n", prog, flag);
  usage(stderr);
  exit(64);
}

int helper_listen_port(const char *prog, const char *value) {
  int port = parse_port(value);
  if (port < 0) {
    fprintf(stderr, "%s: --listen-port must be 1-65535 (got '%s')\n", prog, value);
    exit(64);
  }
  return port;
}

int parse_open_fd(const char *prog, const char *flag, const char *text) {
  char *end;
  errno = 0;
  long fd = strtol(text, &end, 10);
  if (errno || *end || end == text || fd < 3 || fd > 1023 || fcntl((int)fd, F_GETFD) < 0) {
    fprintf(stderr, "%s: %s must be an open file descriptor from 3 to 1023 (got '%s')\n", prog, flag, text);
    return -1;
  }
  return (int)fd;
}

int signal_ready(const char *prog, int fd) {
  if (write_all(fd, "ready\n", 6) < 0) {
    fprintf(stderr, "%s: --ready-fd %d: %s\n", prog, fd, strerror(errno));
    return -1;
  }
  close(fd);
  return 0;
}
