/*
 * srt-gw-redirector: runs inside the jail's network namespace, where nftables redirects every
 * outgoing TCP connection to it, and hands each connection to the gateway's unix socket behind a
 * PROXY protocol v2 header that names the address the sandboxed program dialled.
 *
 * Shape: one parent that accepts (ppoll on the v4 and v6 listeners) and one forked child per
 * connection that relays bytes with splice() through a pipe (no user-space copy). Fork per
 * connection keeps the relay a straight-line loop and isolates a bug in one connection from the
 * others; the cost (~100 us per connect) is small next to the gateway's TLS handshake.
 *
 * SECURITY: fail closed — if the original destination cannot be read or the gateway socket cannot
 * be reached, the client's connection is closed at once; nothing is ever forwarded anywhere but the
 * gateway socket. test/e2e/redirector.test.ts ("closes the connection when the gateway is absent").
 *
 * Plain C, libc only, Linux only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper-runtime.h"

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>; defined here because
 * the kernel headers clash with libc's netinet headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define MAX_CONNECTIONS_DEFAULT 1024
#define SPLICE_CHUNK (64 * 1024)

static const char *prog = "srt-gw-redirector";

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s --listen-port PORT (--gateway-socket PATH | --gateway-channel FD) [--max-connections N] [--ready-fd N]\n"
          "\n"
          "Accepts TCP connections that nftables redirected to 127.0.0.1:PORT and [::1]:PORT,\n"
          "reads each one's original destination (SO_ORIGINAL_DST) and relays it to the gateway's\n"
          "unix socket PATH behind a PROXY protocol v2 header. Connections are closed at once when\n"
          "the gateway cannot be reached. With --gateway-channel FD (a node IPC channel), it hands\n"
          "each accepted socket itself to the gateway instead (SCM_RIGHTS), with no relay.\n"
          "Prints one 'listening' line on stderr when ready, and with\n"
          "--ready-fd N also writes \"ready\\n\" to fd N and closes it (for a supervisor to wait on).\n",
          prog);
}

/* Returns a listening socket, or -1 (errno set). */
static int listen_on(int family, uint16_t port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *sin;
  } else {
    /* v6-only, so the v4 listener owns 127.0.0.1 and mapped addresses never appear. */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = in6addr_loopback;
    len = sizeof *sin6;
  }
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

/*
 * The address the client dialled before nftables rewrote it, and the client's own address.
 * Returns -1 when the original destination is unknown (not a redirected connection: refuse it).
 */
static int original_destination(int client, struct sockaddr_storage *peer, struct sockaddr_storage *dst) {
  socklen_t peer_len = sizeof *peer, dst_len = sizeof *dst;
  memset(dst, 0, sizeof *dst);
  if (getpeername(client, (struct sockaddr *)peer, &peer_len) < 0) return -1;
  if (peer->ss_family == AF_INET) return getsockopt(client, SOL_IP, SO_ORIGINAL_DST, dst, &dst_len);
  if (peer->ss_family == AF_INET6) return getsockopt(client, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &dst_len);
  return -1;
}

/*
 * Builds the PROXY v2 header for one connection: source = the client's address inside the jail,
 * destination = the address it dialled. Returns its length, or 0 when that is unknown.
 */
static size_t build_proxy_header(int client, unsigned char *out) {
  static const unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                              0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  struct sockaddr_storage peer, dst;
  if (original_destination(client, &peer, &dst) < 0) return 0;
  memcpy(out, signature, sizeof signature);
  out[12] = 0x21; /* version 2, command PROXY */
  if (peer.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&peer;
    const struct sockaddr_in *d = (const struct sockaddr_in *)&dst;
    out[13] = 0x11; /* AF_INET, STREAM */
    out[14] = 0;
    out[15] = 12;
    memcpy(out + 16, &s->sin_addr, 4);
    memcpy(out + 20, &d->sin_addr, 4);
    memcpy(out + 24, &s->sin_port, 2); /* ports are already in network order */
    memcpy(out + 26, &d->sin_port, 2);
    return 16 + 12;
  }
  const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&peer;
  const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&dst;
  out[13] = 0x21; /* AF_INET6, STREAM */
  out[14] = 0;
  out[15] = 36;
  memcpy(out + 16, &s->sin6_addr, 16);
  memcpy(out + 32, &d->sin6_addr, 16);
  memcpy(out + 48, &s->sin6_port, 2);
  memcpy(out + 50, &d->sin6_port, 2);
  return 16 + 36;
}

/* "ADDRESS" and the port of a sockaddr, as text. */
static void address_text(const struct sockaddr_storage *sa, char *out, size_t size, unsigned *port) {
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)size);
    *port = ntohs(a->sin_port);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)size);
    *port = ntohs(a->sin6_port);
  }
}

/*
 * --gateway-channel: hands the accepted socket itself to the gateway over node's IPC channel
 * (one JSON line in node's NODE_HANDLE form, the descriptor attached with SCM_RIGHTS), naming
 * the original destination. The gateway then reads and writes the program's own TCP socket:
 * nothing relays the bytes, so the hop costs no copy and no extra wake-up per request.
 * Returns 0, or -1 when the connection must be refused (unknown destination, channel gone).
 */
static int hand_over(int channel, int client) {
  struct sockaddr_storage peer, dst;
  if (original_destination(client, &peer, &dst) < 0) return -1;
  char dst_ip[INET6_ADDRSTRLEN], src_ip[INET6_ADDRSTRLEN];
  unsigned dst_port, src_port;
  address_text(&dst, dst_ip, sizeof dst_ip, &dst_port);
  address_text(&peer, src_ip, sizeof src_ip, &src_port);
  char message[384];
  int length = snprintf(message, sizeof message,
                        "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"srtgw\":\"redirected\",\"address\":\"%s\","
                        "\"port\":%u,\"source\":\"%s%s%s:%u\"}}\n",
                        dst_ip, dst_port, peer.ss_family == AF_INET6 ? "[" : "", src_ip, peer.ss_family == AF_INET6 ? "]" : "", src_port);
  if (length <= 0 || (size_t)length >= sizeof message) return -1;
  char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof control);
  struct iovec iov = {message, (size_t)length};
  struct msghdr header = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&header);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &client, sizeof(int));
  ssize_t sent;
  do sent = sendmsg(channel, &header, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return -1;
  /* The descriptor went with the first byte; the rest of a short write follows as plain data. */
  return sent == length ? 0 : write_all(channel, message + sent, (size_t)(length - sent));
}

/* Connects to the gateway's unix socket and sends the header; returns the fd or -1. */
static int open_gateway(const char *path, const unsigned char *header, size_t header_len) {
  int fd = connect_gateway_socket(path, 0);
  if (fd < 0) return -1;
  if (write_all(fd, header, header_len) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One direction of the relay: bytes move from src into the pipe, then from the pipe into dst. */
struct direction {
  int src, dst;
  int pipe_r, pipe_w;
  size_t in_pipe; /* bytes read from src not yet written to dst */
  int src_done;   /* src reached EOF; dst gets SHUT_WR once the pipe is drained */
  int shut;       /* SHUT_WR has been sent to dst */
};

/* Moves what it can without blocking; returns -1 on a hard error (reset, broken pipe). */
static int pump(struct direction *d) {
  for (;;) {
    if (d->in_pipe > 0) {
      ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0; /* dst is full: wait for POLLOUT */
        return -1;
      }
      d->in_pipe -= (size_t)n;
      if (d->in_pipe > 0) continue;
    }
    if (d->src_done) {
      /* Propagate the half-close only after everything read before it has been delivered. */
      if (!d->shut) {
        shutdown(d->dst, SHUT_WR);
        d->shut = 1;
      }
      return 0;
    }
    ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0; /* nothing to read: wait for POLLIN */
      return -1;
    }
    if (n == 0) d->src_done = 1;
    d->in_pipe += (size_t)n;
  }
}

/* Relays until both directions have finished or one side fails; then the process exits. */
static void relay(int client, int gateway) {
  int a[2], b[2];
  if (pipe2(a, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(b, O_NONBLOCK | O_CLOEXEC) < 0) return;
  if (set_nonblocking(client) < 0 || set_nonblocking(gateway) < 0) return;
  struct direction dirs[2] = {
      {client, gateway, a[0], a[1], 0, 0, 0},
      {gateway, client, b[0], b[1], 0, 0, 0},
  };
  for (;;) {
    for (int i = 0; i < 2; i++)
      if (pump(&dirs[i]) < 0) return;
    if (dirs[0].shut && dirs[1].shut) return;
    /* Wait for whatever each direction is blocked on: room in dst, or data in src. */
    struct pollfd fds[4];
    nfds_t nfds = 0;
    for (int i = 0; i < 2; i++) {
      struct direction *d = &dirs[i];
      if (d->in_pipe > 0) fds[nfds++] = (struct pollfd){.fd = d->dst, .events = POLLOUT};
      else if (!d->src_done) fds[nfds++] = (struct pollfd){.fd = d->src, .events = POLLIN};
    }
    if (nfds == 0) return;
    if (poll(fds, nfds, -1) < 0 && errno != EINTR) return;
  }
}

/* The child's whole life: one client connection. Never returns. */
static void serve_connection(int client, const char *gateway_path) {
  unsigned char header[16 + 36];
  /* TCP_NODELAY: the gateway is a hop, not the sender; batching here only adds latency. */
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  size_t header_len = build_proxy_header(client, header);
  if (header_len == 0) _exit(1);
  int gateway = open_gateway(gateway_path, header, header_len);
  if (gateway < 0) {
    /* SECURITY: fail closed. A reset (linger 0) tells the client at once instead of an EOF that
     * looks like a server that answered nothing. */
    struct linger lg = {1, 0};
    setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    _exit(2);
  }
  relay(client, gateway);
  _exit(0);
}

/*
 * --gateway-channel mode: one process, no relay. Accepts, hands each socket to the gateway and
 * closes its own copy; reads (and drops) the gateway's acknowledgements. When the channel closes,
 * the gateway is gone: exit, so new connections are refused (fail closed).
 */
static int hand_over_loop(const int *listeners, int nlisteners, int channel, const sigset_t *during_wait) {
  while (!stop_requested) {
    struct pollfd fds[3];
    nfds_t nfds = 0;
    fds[nfds++] = (struct pollfd){.fd = channel, .events = POLLIN};
    for (int i = 0; i < nlisteners; i++) fds[nfds++] = (struct pollfd){.fd = listeners[i], .events = POLLIN};
    if (ppoll(fds, nfds, NULL, during_wait) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: ppoll: %s\n", prog, strerror(errno));
      return 1;
    }
    if (fds[0].revents) {
      char acks[4096];
      ssize_t n = recv(channel, acks, sizeof acks, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        fprintf(stderr, "%s: the gateway closed its channel; refusing connections from now on\n", prog);
        return 1;
      }
    }
    for (nfds_t i = 1; i < nfds; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int client = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (client < 0) continue;
      /* The gateway writes to this socket directly: no batching on the way back to the program. */
      int one = 1;
      setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (hand_over(channel, client) < 0) {
        /* SECURITY: fail closed — a reset, never a connection anywhere else. */
        struct linger lg = {1, 0};
        setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      close(client);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  int port = -1;
  long max_connections = MAX_CONNECTIONS_DEFAULT;
  const char *gateway_path = NULL;
  int channel = -1;
  int ready_fd = -1;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = helper_option_value(prog, argc, argv, &i, usage);
    if (!strcmp(arg, "--listen-port")) {
      port = helper_listen_port(prog, value);
    } else if (!strcmp(arg, "--gateway-socket")) {
      gateway_path = value;
    } else if (!strcmp(arg, "--gateway-channel")) {
      if ((channel = parse_open_fd(prog, arg, value)) < 0) return 64;
    } else if (!strcmp(arg, "--ready-fd")) {
      if ((ready_fd = parse_open_fd(prog, arg, value)) < 0) return 64;
    } else if (!strcmp(arg, "--max-connections")) {
      char *end;
      max_connections = strtol(value, &end, 10);
      if (*end || end == value || max_connections < 1 || max_connections > 65536) {
        fprintf(stderr, "%s: --max-connections must be 1-65536 (got '%s')\n", prog, value);
        return 64;
      }
    } else {
      helper_unknown_option(prog, arg, usage);
    }
  }
  if (port < 0 || (gateway_path == NULL) == (channel < 0)) {
    usage(stderr);
    return 64;
  }
  if (gateway_path != NULL && strlen(gateway_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    fprintf(stderr, "%s: --gateway-socket path is longer than a unix socket path may be\n", prog);
    return 64;
  }

  /* Signals are handled inside ppoll only (no lost wake-up); SIGPIPE becomes EPIPE. */
  sigset_t during_wait;
  helper_install_signals(&during_wait);

  int listeners[2];
  int nlisteners = 0;
  int v4 = listen_on(AF_INET, (uint16_t)port);
  if (v4 < 0) {
    fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", prog, port, strerror(errno));
    return 1;
  }
  listeners[nlisteners++] = v4;
  /* IPv6 is optional: a kernel or netns without it still gets IPv4 redirected. */
  int v6 = listen_on(AF_INET6, (uint16_t)port);
  if (v6 >= 0) listeners[nlisteners++] = v6;
  /* Under a supervisor (--ready-fd) the line would only be noise on the user's terminal. */
  if (ready_fd < 0)
    fprintf(stderr, "%s: listening on 127.0.0.1:%d%s, gateway %s\n", prog, port,
            v6 >= 0 ? " and [::1]" : " (no IPv6)", gateway_path ? gateway_path : "channel");
  /* Listening sockets exist now, so connections redirected from here on queue in the backlog. */
  if (ready_fd >= 0 && signal_ready(prog, ready_fd) < 0) return 1;

  if (channel >= 0) return hand_over_loop(listeners, nlisteners, channel, &during_wait);

  long active = 0;
  while (!stop_requested) {
    /* Reap finished children; each one frees a connection slot. */
    child_exited = 0;
    while (waitpid(-1, NULL, WNOHANG) > 0) active--;

    /* At the cap, stop accepting: new clients wait in the kernel's backlog until a slot frees. */
    struct pollfd fds[2];
    nfds_t nfds = 0;
    if (active < max_connections)
      for (int i = 0; i < nlisteners; i++) fds[nfds++] = (struct pollfd){.fd = listeners[i], .events = POLLIN};
    if (ppoll(fds, nfds, NULL, &during_wait) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: ppoll: %s\n", prog, strerror(errno));
      return 1;
    }
    for (nfds_t i = 0; i < nfds && active < max_connections; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int client = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (client < 0) continue; /* EAGAIN, ECONNABORTED, EMFILE...: try again on the next round */
      pid_t pid = fork();
      if (pid == 0) {
        for (int j = 0; j < nlisteners; j++) close(listeners[j]);
        sigprocmask(SIG_SETMASK, &during_wait, NULL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        serve_connection(client, gateway_path);
      }
      if (pid > 0) active++;
      /* fork failed: dropping the connection is the fail-closed answer. */
      close(client);
    }
  }
  /* Children keep relaying their connections; the jail ends them with the namespace. */
  return 0;
}
