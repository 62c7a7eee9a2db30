/*
 * srt-gw-dns-forwarder: runs inside the jail's network namespace, where nftables redirects every
 * DNS query (UDP and TCP, port 53, any destination) to it, and hands each query to the gateway's
 * DNS resolver over its unix socket (2-byte length framing, as DNS over TCP).
 *
 * Shape: one process, one ppoll loop. UDP queries from every client share one persistent gateway
 * connection: each gets a forwarder-owned 16-bit ID (two clients using the same ID never collide),
 * and the answer goes back to whoever asked, with the client's ID restored. TCP clients get one
 * forked child each that relays bytes to a fresh gateway connection (the framing is the same on
 * both sides, so the child never parses DNS), as the redirector does for all TCP.
 *
 * SECURITY: fail closed — when the gateway socket cannot be reached, a UDP query is dropped (the
 * client times out) and a TCP client is reset; the forwarder never answers on its own and sends
 * nothing anywhere but the gateway socket. test/e2e/dns-forwarder.test.ts ("drops queries when
 * the gateway is absent (fail closed)").
 *
 * Plain C, libc only, Linux only.
 */
#define _GNU_SOURCE
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
#include <time.h>
#include <unistd.h>

#include "helper-runtime.h"

#define DNS_HEADER_BYTES 12
#define UDP_QUERY_MAX 4096
/* RFC 1035: without EDNS0 a UDP answer may not exceed 512 bytes; EDNS0 sizes are capped here. */
#define UDP_CLASSIC_LIMIT 512
#define UDP_EDNS_LIMIT_MAX 4096
#define QTYPE_OPT 41
/* A question section: a name of at most 255 wire bytes, then type and class. */
#define QUESTION_MAX (255 + 4)
#define PENDING_MAX 4096
#define PENDING_TTL_MS 10000
/* Queries queued for the gateway while it is slow to read; beyond this a query is dropped. */
#define GATEWAY_OUT_MAX (64 * 1024)
/* The gateway closes a unix connection after 10 s without traffic (gateway/dns/server.ts,
 * tcpIdleTimeoutMs). A query written just as that timer fires would be lost, so a connection idle
 * for half that long is replaced before it is used. */
#define GATEWAY_IDLE_REOPEN_MS 5000
#define TCP_CLIENTS_MAX 256
#define TCP_IDLE_TIMEOUT_MS 30000
#define TCP_RELAY_CHUNK (16 * 1024)

static const char *prog = "srt-gw-dns-forwarder";

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s --listen-port PORT --gateway-socket PATH [--ready-fd N]\n"
          "\n"
          "Answers DNS queries (UDP and TCP) that nftables redirected to 127.0.0.1:PORT and\n"
          "[::1]:PORT by passing each one to the gateway's DNS resolver on the unix socket PATH\n"
          "(length-framed, as DNS over TCP). When the gateway cannot be reached, UDP queries are\n"
          "dropped and TCP clients reset; nothing is ever answered or sent anywhere else. Prints one\n"
          "'listening' line on stderr when ready, and with --ready-fd N also writes \"ready\\n\" to\n"
          "fd N and closes it (for a supervisor to wait on).\n",
          prog);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

union address {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

/* Returns a bound (and for TCP listening) loopback socket, or -1 (errno set). */
static int bind_loopback(int family, int type, uint16_t port) {
  int fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  /* Not for UDP: there SO_REUSEADDR would let a second process share the port. */
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  union address a;
  memset(&a, 0, sizeof a);
  socklen_t len;
  if (family == AF_INET) {
    a.in.sin_family = AF_INET;
    a.in.sin_port = htons(port);
    a.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof a.in;
  } else {
    /* v6-only, so the v4 socket owns 127.0.0.1 and mapped addresses never appear. */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    a.in6.sin6_family = AF_INET6;
    a.in6.sin6_port = htons(port);
    a.in6.sin6_addr = in6addr_loopback;
    len = sizeof a.in6;
  }
  if (type == SOCK_DGRAM) {
    /* Rides out bursts (a package manager resolving many hosts at once); the kernel caps it. */
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (bind(fd, &a.sa, len) < 0 || (type == SOCK_STREAM && listen(fd, 1024) < 0)) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

/* ---- UDP: pending queries ------------------------------------------------------------------ */

/* One UDP query waiting for its answer. Kept in a list ordered by send time (oldest first), so
 * expiry and "drop the oldest when full" both look only at the head. */
struct pending {
  int prev, next;
  uint16_t forwarder_id, client_id;
  uint16_t udp_limit;    /* largest answer the client takes over UDP */
  uint16_t question_len; /* 0 when the query had no question we could copy */
  int socket_index;      /* the UDP socket it arrived on, which the answer leaves from */
  socklen_t address_len;
  union address client;
  long long sent_ms;
  unsigned char question[QUESTION_MAX];
};

static struct pending pending[PENDING_MAX];
static int free_slots[PENDING_MAX];
static int free_count;
static int oldest = -1, newest = -1;
static int pending_count;
/* Forwarder ID → slot, or -1. */
static int16_t slot_by_id[65536];
static uint16_t next_forwarder_id;

static void pending_init(void) {
  for (int i = 0; i < PENDING_MAX; i++) free_slots[i] = PENDING_MAX - 1 - i;
  free_count = PENDING_MAX;
  memset(slot_by_id, 0xff, sizeof slot_by_id);
}

static void pending_remove(int slot) {
  struct pending *p = &pending[slot];
  if (p->prev >= 0) pending[p->prev].next = p->next;
  else oldest = p->next;
  if (p->next >= 0) pending[p->next].prev = p->prev;
  else newest = p->prev;
  slot_by_id[p->forwarder_id] = -1;
  free_slots[free_count++] = slot;
  pending_count--;
}

/* Takes a slot (dropping the oldest query when all are in use) and a forwarder ID no pending
 * query holds. */
static int pending_add(void) {
  if (free_count == 0) pending_remove(oldest);
  int slot = free_slots[--free_count];
  /* At most PENDING_MAX of the 65536 IDs are taken, so this ends quickly. */
  while (slot_by_id[next_forwarder_id] >= 0) next_forwarder_id++;
  struct pending *p = &pending[slot];
  p->forwarder_id = next_forwarder_id++;
  slot_by_id[p->forwarder_id] = (int16_t)slot;
  p->prev = newest;
  p->next = -1;
  if (newest >= 0) pending[newest].next = slot;
  else oldest = slot;
  newest = slot;
  pending_count++;
  return slot;
}

static void pending_expire(long long now) {
  while (oldest >= 0 && now - pending[oldest].sent_ms >= PENDING_TTL_MS) pending_remove(oldest);
}

static void pending_clear(void) {
  while (oldest >= 0) pending_remove(oldest);
}

/* What the forwarder needs to know about one UDP query. */
struct query_info {
  uint16_t udp_limit;
  uint16_t question_len;
  const unsigned char *question;
};

/*
 * Reads the question and the EDNS0 payload size of a query. Returns 0 to forward it, -1 to drop it.
 *
 * The gateway answers most malformed queries with FORMERR/NOTIMP, but a message it cannot answer
 * at all makes it close the stream (after one, the framing cannot be trusted), and with it every
 * other client's query in flight on the shared connection. So the forwarder drops exactly those
 * itself: the checks below mirror the silent-drop cases of parseDnsQuery in
 * gateway/dns/dns-message.ts (a response; a question or OPT record running past the packet; a
 * compressed label in the question; trailing bytes).
 */
static int inspect_query(const unsigned char *msg, size_t len, struct query_info *info) {
  info->udp_limit = UDP_CLASSIC_LIMIT;
  info->question_len = 0;
  info->question = msg + DNS_HEADER_BYTES;
  uint16_t flags = get16(msg + 2);
  if (flags & 0x8000) return -1; /* QR: a response, not a query */
  unsigned opcode = (flags >> 11) & 0xf;
  uint16_t qdcount = get16(msg + 4), ancount = get16(msg + 6), nscount = get16(msg + 8), arcount = get16(msg + 10);
  /* The gateway answers these from the header alone (NOTIMP / FORMERR, no question echoed). */
  if (opcode != 0 || qdcount != 1 || ancount != 0 || nscount != 0 || arcount > 1) return 0;

  size_t off = DNS_HEADER_BYTES;
  size_t name_bytes = 1;
  for (;;) {
    if (off >= len) return -1;
    unsigned label = msg[off++];
    if (label == 0) break;
    if (label & 0xc0) return -1;
    if (off + label > len) return -1;
    name_bytes += label + 1;
    /* FORMERR from the header alone, as above; the rest of the packet does not matter. */
    if (name_bytes > 255) return 0;
    off += label;
  }
  if (off + 4 > len) return -1;
  off += 4;
  info->question_len = (uint16_t)(off - DNS_HEADER_BYTES);
  if (arcount == 1) {
    if (off + 11 > len) return -1;
    if (msg[off] != 0 || get16(msg + off + 1) != QTYPE_OPT) {
      info->question_len = 0; /* FORMERR, header only */
      return 0;
    }
    uint16_t payload = get16(msg + off + 3), rdlength = get16(msg + off + 9);
    if (off + 11 + rdlength > len) return -1;
    /* RFC 6891: a size below 512 means 512. */
    info->udp_limit = payload < UDP_CLASSIC_LIMIT ? UDP_CLASSIC_LIMIT : payload > UDP_EDNS_LIMIT_MAX ? UDP_EDNS_LIMIT_MAX : payload;
    off += 11 + rdlength;
  }
  return off == len ? 0 : -1;
}

/* ---- UDP: the shared gateway connection ---------------------------------------------------- */

static struct {
  int fd; /* -1 while not connected */
  long long last_active_ms;
  size_t in_len, out_len;
  unsigned char in[2 + 65535];
  unsigned char out[GATEWAY_OUT_MAX];
} gateway = {.fd = -1};

static const char *gateway_path;
static int udp_sockets[2];
static int udp_count;

/* Forgets the connection and every query in flight on it: their answers cannot come any more,
 * and the clients retry. */
static void gateway_close(void) {
  if (gateway.fd >= 0) close(gateway.fd);
  gateway.fd = -1;
  gateway.in_len = gateway.out_len = 0;
  pending_clear();
}

/* Writes what it can of the queued queries; returns -1 after closing a broken connection. */
static int gateway_flush(void) {
  size_t done = 0;
  while (done < gateway.out_len) {
    ssize_t n = write(gateway.fd, gateway.out + done, gateway.out_len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      gateway_close();
      return -1;
    }
    done += (size_t)n;
    gateway.last_active_ms = now_ms();
  }
  memmove(gateway.out, gateway.out + done, gateway.out_len - done);
  gateway.out_len -= done;
  return 0;
}

/* One datagram from a client. */
static void forward_query(int socket_index, unsigned char *msg, size_t len, const union address *client,
                          socklen_t client_len) {
  struct query_info info;
  if (inspect_query(msg, len, &info) < 0) return;
  long long now = now_ms();
  /* An idle connection is about to be closed by the gateway: start a fresh one instead. */
  if (gateway.fd >= 0 && gateway.out_len == 0 && now - gateway.last_active_ms >= GATEWAY_IDLE_REOPEN_MS) gateway_close();
  if (gateway.fd < 0) {
    /* SECURITY: fail closed — no gateway, no answer; the client times out. */
    gateway.fd = connect_gateway_socket(gateway_path, 1);
    if (gateway.fd < 0) return;
    gateway.last_active_ms = now;
  }
  if (gateway.out_len + 2 + len > sizeof gateway.out) return; /* the gateway is not keeping up */

  int slot = pending_add();
  struct pending *p = &pending[slot];
  p->client_id = get16(msg);
  p->udp_limit = info.udp_limit;
  p->question_len = info.question_len;
  memcpy(p->question, info.question, info.question_len);
  p->socket_index = socket_index;
  p->client = *client;
  p->address_len = client_len;
  p->sent_ms = now;

  put16(msg, p->forwarder_id);
  put16(gateway.out + gateway.out_len, (uint16_t)len);
  memcpy(gateway.out + gateway.out_len + 2, msg, len);
  gateway.out_len += 2 + len;
  gateway_flush();
}

/* One framed answer from the gateway: back to the client that asked, under its own ID. */
static void deliver_answer(unsigned char *msg, size_t len) {
  if (len < DNS_HEADER_BYTES) return;
  int slot = slot_by_id[get16(msg)];
  if (slot < 0) return; /* expired, dropped as the oldest, or never ours */
  struct pending *p = &pending[slot];
  /* The gateway echoes the question verbatim; a different one is a stale answer for a reused ID. */
  if (get16(msg + 4) == 1 && p->question_len > 0 &&
      (len < DNS_HEADER_BYTES + (size_t)p->question_len || memcmp(msg + DNS_HEADER_BYTES, p->question, p->question_len) != 0))
    return;
  put16(msg, p->client_id);
  unsigned char truncated[DNS_HEADER_BYTES + QUESTION_MAX];
  const unsigned char *reply = msg;
  size_t reply_len = len;
  if (len > p->udp_limit) {
    /* Too big for this client over UDP (the gateway answers a stream in full): send the header
     * with TC set and the question, so the client retries over TCP. */
    memcpy(truncated, msg, DNS_HEADER_BYTES);
    truncated[2] |= 0x02;
    put16(truncated + 4, p->question_len > 0 ? 1 : 0);
    memset(truncated + 6, 0, 6);
    memcpy(truncated + DNS_HEADER_BYTES, p->question, p->question_len);
    reply = truncated;
    reply_len = DNS_HEADER_BYTES + p->question_len;
  }
  ssize_t n;
  do n = sendto(udp_sockets[p->socket_index], reply, reply_len, 0, &p->client.sa, p->address_len);
  while (n < 0 && errno == EINTR);
  /* A failed send (client gone, buffer full) loses the answer; the client retries. */
  pending_remove(slot);
}

static void gateway_read(void) {
  for (;;) {
    ssize_t n = read(gateway.fd, gateway.in + gateway.in_len, sizeof gateway.in - gateway.in_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      gateway_close();
      return;
    }
    gateway.in_len += (size_t)n;
    gateway.last_active_ms = now_ms();
    size_t off = 0;
    while (gateway.in_len - off >= 2) {
      size_t frame = get16(gateway.in + off);
      if (gateway.in_len - off < 2 + frame) break;
      deliver_answer(gateway.in + off + 2, frame);
      off += 2 + frame;
    }
    memmove(gateway.in, gateway.in + off, gateway.in_len - off);
    gateway.in_len -= off;
    /* The buffer holds a whole frame of the largest size, so a full read always makes progress. */
  }
}

/* Reads the datagrams waiting on one UDP socket (a bounded batch, so no socket starves the rest). */
static void udp_receive(int socket_index) {
  unsigned char msg[UDP_QUERY_MAX];
  for (int batch = 0; batch < 64; batch++) {
    union address client;
    socklen_t client_len = sizeof client;
    /* MSG_TRUNC returns the datagram's real length, so an oversized one is recognised and dropped. */
    ssize_t n = recvfrom(udp_sockets[socket_index], msg, sizeof msg, MSG_TRUNC, &client.sa, &client_len);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) continue; /* EINTR, or an ICMP error queued on the socket (reported once) */
    if (n < DNS_HEADER_BYTES || n > UDP_QUERY_MAX) continue;
    forward_query(socket_index, msg, (size_t)n, &client, client_len);
  }
}

/* ---- TCP: one child per client ------------------------------------------------------------- */

/* One direction of the relay, through a small buffer (DNS messages are at most 64 KiB). */
struct direction {
  int src, dst;
  size_t len, off;
  int src_done; /* src reached EOF; dst gets SHUT_WR once the buffer is drained */
  int shut;     /* SHUT_WR has been sent to dst */
  unsigned char buf[TCP_RELAY_CHUNK];
};

/* Moves what it can without blocking; returns -1 on a hard error, 1 if bytes moved, else 0. */
static int pump(struct direction *d) {
  int moved = 0;
  for (;;) {
    while (d->off < d->len) {
      ssize_t n = write(d->dst, d->buf + d->off, d->len - d->off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return moved; /* dst is full: wait for POLLOUT */
      if (n <= 0) return -1;
      d->off += (size_t)n;
      moved = 1;
    }
    d->off = d->len = 0;
    if (d->src_done) {
      /* Propagate the half-close only after everything read before it has been delivered. */
      if (!d->shut) {
        shutdown(d->dst, SHUT_WR);
        d->shut = 1;
      }
      return moved;
    }
    ssize_t n = read(d->src, d->buf, sizeof d->buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return moved; /* nothing to read: wait for POLLIN */
    if (n < 0) return -1;
    if (n == 0) d->src_done = 1;
    else moved = 1;
    d->len = (size_t)n;
  }
}

/* Relays until both directions have ended, one side fails, or nothing moves for 30 s. */
static void relay(int client, int gw) {
  if (set_nonblocking(client) < 0 || set_nonblocking(gw) < 0) return;
  static struct direction dirs[2];
  dirs[0] = (struct direction){.src = client, .dst = gw};
  dirs[1] = (struct direction){.src = gw, .dst = client};
  long long last_active = now_ms();
  for (;;) {
    for (int i = 0; i < 2; i++) {
      int moved = pump(&dirs[i]);
      if (moved < 0) return;
      if (moved) last_active = now_ms();
    }
    if (dirs[0].shut && dirs[1].shut) return;
    struct pollfd fds[2];
    nfds_t nfds = 0;
    for (int i = 0; i < 2; i++) {
      struct direction *d = &dirs[i];
      if (d->off < d->len) fds[nfds++] = (struct pollfd){.fd = d->dst, .events = POLLOUT};
      else if (!d->src_done) fds[nfds++] = (struct pollfd){.fd = d->src, .events = POLLIN};
    }
    if (nfds == 0) return;
    long long wait = last_active + TCP_IDLE_TIMEOUT_MS - now_ms();
    if (wait <= 0) return; /* idle: a stuck or silent client must not hold a slot forever */
    if (poll(fds, nfds, (int)wait) < 0 && errno != EINTR) return;
  }
}

/* The child's whole life: one TCP client. Never returns. */
static void serve_tcp_client(int client) {
  /* TCP_NODELAY: the gateway is a hop, not the sender; batching here only adds latency. */
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int gw = connect_gateway_socket(gateway_path, 0);
  if (gw < 0) {
    /* SECURITY: fail closed. A reset (linger 0) tells the client at once. */
    struct linger lg = {1, 0};
    setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    _exit(2);
  }
  relay(client, gw);
  _exit(0);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* IPv6 is optional only when this kernel or namespace has none; any other failure is fatal, so a
 * squatter on [::1]:PORT cannot take the v6 queries. */
static int ipv6_absent(int err) { return err == EAFNOSUPPORT || err == EADDRNOTAVAIL || err == EPROTONOSUPPORT; }

int main(int argc, char **argv) {
  int port = -1;
  int ready_fd = -1;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = helper_option_value(prog, argc, argv, &i, usage);
    if (!strcmp(arg, "--listen-port")) {
      port = helper_listen_port(prog, value);
    } else if (!strcmp(arg, "--gateway-socket")) {
      gateway_path = value;
    } else if (!strcmp(arg, "--ready-fd")) {
      if ((ready_fd = parse_open_fd(prog, arg, value)) < 0) return 64;
    } else {
      helper_unknown_option(prog, arg, usage);
    }
  }
  if (port < 0 || gateway_path == NULL) {
    usage(stderr);
    return 64;
  }
  if (strlen(gateway_path) == 0 || strlen(gateway_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    fprintf(stderr, "%s: --gateway-socket must be a unix socket path of 1-%zu bytes\n", prog,
            sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return 64;
  }
  /* Signals are handled inside ppoll only (no lost wake-up); SIGPIPE becomes EPIPE. */
  sigset_t during_wait;
  helper_install_signals(&during_wait);

  int tcp_listeners[2];
  int tcp_count = 0;
  int v4_udp = bind_loopback(AF_INET, SOCK_DGRAM, (uint16_t)port);
  int v4_tcp = v4_udp < 0 ? -1 : bind_loopback(AF_INET, SOCK_STREAM, (uint16_t)port);
  if (v4_udp < 0 || v4_tcp < 0) {
    fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", prog, port, strerror(errno));
    return 1;
  }
  udp_sockets[udp_count++] = v4_udp;
  tcp_listeners[tcp_count++] = v4_tcp;
  int v6_udp = bind_loopback(AF_INET6, SOCK_DGRAM, (uint16_t)port);
  int v6_tcp = v6_udp < 0 ? -1 : bind_loopback(AF_INET6, SOCK_STREAM, (uint16_t)port);
  if (v6_udp >= 0 && v6_tcp >= 0) {
    udp_sockets[udp_count++] = v6_udp;
    tcp_listeners[tcp_count++] = v6_tcp;
  } else if (!ipv6_absent(errno)) {
    fprintf(stderr, "%s: cannot listen on [::1]:%d: %s\n", prog, port, strerror(errno));
    return 1;
  } else if (v6_udp >= 0) {
    close(v6_udp);
  }
  /* Under a supervisor (--ready-fd) the line would only be noise on the user's terminal. */
  if (ready_fd < 0)
    fprintf(stderr, "%s: listening on 127.0.0.1:%d%s (udp, tcp), gateway %s\n", prog, port,
            udp_count == 2 ? " and [::1]" : " (no IPv6)", gateway_path);
  /* Every socket is bound now: a query sent from here on waits in its buffer or backlog. */
  if (ready_fd >= 0 && signal_ready(prog, ready_fd) < 0) return 1;

  pending_init();
  long tcp_active = 0;
  while (!stop_requested) {
    /* Reap finished children; each one frees a TCP slot. */
    child_exited = 0;
    while (waitpid(-1, NULL, WNOHANG) > 0) tcp_active--;
    long long now = now_ms();
    pending_expire(now);

    /* fds: UDP sockets, then the gateway connection, then the TCP listeners while below the cap
     * (at the cap new clients wait in the kernel's backlog until a slot frees). */
    struct pollfd fds[5];
    nfds_t nfds = 0;
    for (int i = 0; i < udp_count; i++) fds[nfds++] = (struct pollfd){.fd = udp_sockets[i], .events = POLLIN};
    nfds_t gateway_index = nfds;
    if (gateway.fd >= 0)
      fds[nfds++] = (struct pollfd){.fd = gateway.fd, .events = (short)(POLLIN | (gateway.out_len > 0 ? POLLOUT : 0))};
    nfds_t tcp_index = nfds;
    if (tcp_active < TCP_CLIENTS_MAX)
      for (int i = 0; i < tcp_count; i++) fds[nfds++] = (struct pollfd){.fd = tcp_listeners[i], .events = POLLIN};
    /* Wake up when the oldest pending query expires. */
    struct timespec timeout, *timeout_p = NULL;
    if (oldest >= 0) {
      long long wait = pending[oldest].sent_ms + PENDING_TTL_MS - now;
      if (wait < 0) wait = 0;
      timeout = (struct timespec){.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
      timeout_p = &timeout;
    }
    if (ppoll(fds, nfds, timeout_p, &during_wait) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: ppoll: %s\n", prog, strerror(errno));
      return 1;
    }

    if (gateway.fd >= 0 && gateway_index < tcp_index) {
      short revents = fds[gateway_index].revents;
      if (revents & (POLLIN | POLLHUP | POLLERR)) gateway_read();
      if (gateway.fd >= 0 && (revents & POLLOUT)) gateway_flush();
    }
    for (int i = 0; i < udp_count; i++)
      if (fds[i].revents & (POLLIN | POLLERR)) udp_receive(i);
    for (nfds_t i = tcp_index; i < nfds && tcp_active < TCP_CLIENTS_MAX; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int client = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
      if (client < 0) continue; /* EAGAIN, ECONNABORTED, EMFILE...: try again on the next round */
      pid_t pid = fork();
      if (pid == 0) {
        for (int j = 0; j < tcp_count; j++) close(tcp_listeners[j]);
        for (int j = 0; j < udp_count; j++) close(udp_sockets[j]);
        /* The shared UDP connection must close when the parent closes it, not when we exit. */
        if (gateway.fd >= 0) close(gateway.fd);
        sigprocmask(SIG_SETMASK, &during_wait, NULL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        serve_tcp_client(client);
      }
      if (pid > 0) tcp_active++;
      /* fork failed: dropping the connection is the fail-closed answer. */
      close(client);
    }
  }
  /* TCP children finish their clients; the jail ends them with the namespace. */
  return 0;
}
