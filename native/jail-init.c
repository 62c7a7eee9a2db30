/*
 * srt-gw-jail-init: the first program inside `srt-gw run`'s bubblewrap jail. It turns the empty
 * network namespace bwrap made into one whose only ways out are the gateway's unix sockets, then
 * runs the command where it can neither see those sockets nor the helpers that hold them.
 *
 *   1. network: `lo` up, default routes via lo (with src, else redirected connects hang), the
 *      nftables rules the caller wrote (every TCP connect → the redirector, every DNS query → the
 *      DNS forwarder, everything else dropped);
 *   2. helpers: srt-gw-redirector (which hands each connection's socket to the gateway over the
 *      node IPC channel --gateway-channel) and srt-gw-dns-forwarder (to the gateway's DNS socket,
 *      mounted only in this mount namespace), each waited for on a ready pipe;
 *   3. the command: in a new PID namespace (pid 1 there is a small reaper that forwards signals),
 *      a new mount namespace with the gateway's socket directory unmounted and a fresh /proc,
 *      a new user namespace that maps the caller's own uid/gid, no capabilities, no new privileges
 *      and a seccomp filter (see install_seccomp).
 *
 * The parent (`srt-gw run`) talks to it over --control-fd. Steps 1 and 2 run while the parent is
 * still starting its gateway; the command (step 3) waits for a 0 byte, "the gateway is ready".
 * After that each byte is a signal number to pass to the command; end of file means the parent
 * is gone and the command is killed (before the 0 byte: it never runs).
 *
 * Exit status: the command's (128+N when killed by signal N); 125 when the jail could not be set
 * up (a message on stderr says what failed); 126/127 when the command cannot be executed/found.
 *
 * SECURITY: fail closed — any setup step that fails stops before the command runs, and nothing
 * here ever connects anywhere: the command's only exits are the helpers, which only speak to the
 * gateway. test/e2e/jail-network.test.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "unix-socket-supervisor.h"

#define EXIT_SETUP 125
#define EXIT_CANNOT_EXECUTE 126
#define EXIT_NOT_FOUND 127

static const char *prog = "srt-gw-jail-init";

struct options {
  const char *nft;            /* path of the nft binary */
  const char *nft_rules;      /* ruleset file for nft -f */
  const char *redirector;     /* srt-gw-redirector binary */
  const char *dns_forwarder;  /* srt-gw-dns-forwarder binary */
  int gateway_channel;        /* node IPC channel to the gateway: the redirector hands sockets over it */
  const char *dns_socket;     /* the gateway's DNS socket */
  const char *hide;           /* directory (a mount point) holding the sockets; unmounted for the command */
  int redirect_port;
  int dns_port;
  long uid, gid;              /* the caller's ids outside, which the command gets back */
  int control_fd;
  char **command;
  char **allow_unix_sockets;  /* --allow-unix-socket paths, NULL-terminated */
  int allow_unix_socket_count;
  int listener_handoff;       /* the reaper's end of the socketpair the unix socket listener crosses */
  char **overlay_roots;       /* --overlay ROOT: writable roots whose writes go to an upper layer */
  int overlay_root_count;
  const char *overlay_layers; /* --overlay-layers DIR: DIR/N/upper and DIR/N/work for the Nth root */
};

/* The helpers once started: a setup failure after that stops them too, or bwrap's pid 1, which
 * waits for every process of the jail, would wait for them forever. */
static pid_t started_helpers[2];

static void stop_helpers(void) {
  for (size_t i = 0; i < sizeof started_helpers / sizeof started_helpers[0]; i++)
    if (started_helpers[i] > 0) kill(started_helpers[i], SIGKILL);
}

static void die(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
  stop_helpers();
  _exit(EXIT_SETUP);
}

static void die_msg(const char *message) {
  fprintf(stderr, "%s: %s\n", prog, message);
  stop_helpers();
  _exit(EXIT_SETUP);
}

/* Waits for the parent's 0 byte: its gateway is listening. Anything else, or end of file (the
 * gateway failed to start, or the parent died), and the command never runs. Quietly: the parent
 * says why. */
static void wait_for_gateway(int control_fd) {
  unsigned char byte;
  ssize_t n;
  do n = read(control_fd, &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1 || byte != 0) {
    stop_helpers();
    _exit(EXIT_SETUP);
  }
}

/* ---------------------------------------------------------------- network ---------------- */

static void bring_up_loopback(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket for lo");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) die("read lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) die("bring lo up");
  close(fd);
}

/*
 * `ip route add default dev lo src <loopback>`: without a route, connect() to an outside address
 * fails with ENETUNREACH before nftables can redirect it; without `src`, the redirected
 * connection leaves from 0.0.0.0 and never reaches the redirector's accept queue.
 * Returns 0, or -1 with errno set (IPv6 may be missing; the caller decides).
 */
static int add_default_route(int family) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct {
    struct nlmsghdr nh;
    struct rtmsg rt;
    char attrs[64];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_type = RTM_NEWROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  req.nh.nlmsg_seq = 1;
  req.rt.rtm_family = (unsigned char)family;
  req.rt.rtm_table = RT_TABLE_MAIN;
  req.rt.rtm_protocol = RTPROT_BOOT;
  req.rt.rtm_scope = family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  req.rt.rtm_type = RTN_UNICAST;
  size_t len = NLMSG_LENGTH(sizeof req.rt);

  uint32_t oif = if_nametoindex("lo");
  struct in6_addr loopback6 = IN6ADDR_LOOPBACK_INIT;
  uint32_t loopback4 = htonl(INADDR_LOOPBACK);
  const void *src = family == AF_INET ? (const void *)&loopback4 : (const void *)&loopback6;
  size_t src_len = family == AF_INET ? sizeof loopback4 : sizeof loopback6;
  struct {
    unsigned short type;
    const void *data;
    size_t size;
  } attrs[] = {{RTA_OIF, &oif, sizeof oif}, {RTA_PREFSRC, src, src_len}};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
    struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(len));
    rta->rta_type = attrs[i].type;
    rta->rta_len = (unsigned short)RTA_LENGTH(attrs[i].size);
    memcpy(RTA_DATA(rta), attrs[i].data, attrs[i].size);
    len = NLMSG_ALIGN(len) + RTA_ALIGN(rta->rta_len);
  }
  req.nh.nlmsg_len = (uint32_t)len;

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, &req, len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  char reply[512];
  ssize_t n = recv(fd, reply, sizeof reply, 0);
  int saved = n < 0 ? errno : 0;
  close(fd);
  if (n < 0) {
    errno = saved;
    return -1;
  }
  struct nlmsghdr *nh = (struct nlmsghdr *)reply;
  if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && nh->nlmsg_type == NLMSG_ERROR) {
    int error = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
    if (error != 0) {
      errno = -error;
      return -1;
    }
  }
  return 0;
}

/* Starts argv with stdin from /dev/null; returns its pid. */
static pid_t start_program(char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execv(argv[0], argv);
    fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

/* The exit status of `pid` (128+signal when killed), or -1 when it cannot be waited for. */
static int wait_for_exit(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Brings up lo and its routes, and starts `nft -f RULES`; returns nft's pid (see finish_network). */
static pid_t start_network(const struct options *o) {
  bring_up_loopback();
  if (add_default_route(AF_INET) < 0) die("add the IPv4 default route via lo");
  /* A kernel without IPv6 has nothing to route; the IPv6 nft table then has nothing to catch. */
  if (add_default_route(AF_INET6) < 0 && errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL) die("add the IPv6 default route via lo");
  char *nft_argv[] = {(char *)o->nft, "-f", (char *)o->nft_rules, NULL};
  return start_program(nft_argv);
}

static void finish_network(const struct options *o, pid_t nft) {
  int status = wait_for_exit(nft);
  if (status != 0) {
    fprintf(stderr, "%s: nft -f %s failed (status %d); the jail has no network rules, so the command does not run\n", prog,
            o->nft_rules, status);
    stop_helpers();
    _exit(EXIT_SETUP);
  }
}

/* ---------------------------------------------------------------- helpers ---------------- */

/* Keeps only CAP_NET_BIND_SERVICE across the helper's exec (it binds ports below 1024). */
static void limit_helper_capabilities(void) {
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
    if (cap != CAP_NET_BIND_SERVICE) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* A helper that was started and has not yet said it is ready. */
struct pending_helper {
  pid_t pid;
  int ready_fd;
  const char *name;
};

/* Starts a helper with `--ready-fd N`; await_helper reads its "ready". */
static struct pending_helper start_helper(const char *binary, const char *gateway_flag, const char *gateway_value, int keep_fd, int port, const char *name) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    fcntl(ready[1], F_SETFD, 0); /* the descriptors the helper inherits besides stdio */
    if (keep_fd >= 0) fcntl(keep_fd, F_SETFD, 0);
    limit_helper_capabilities();
    char port_text[16], fd_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    snprintf(fd_text, sizeof fd_text, "%d", ready[1]);
    char *argv[] = {(char *)binary, "--listen-port", port_text, (char *)gateway_flag, (char *)gateway_value, "--ready-fd", fd_text, NULL};
    execv(binary, argv);
    fprintf(stderr, "%s: cannot run the %s %s: %s\n", prog, name, binary, strerror(errno));
    _exit(127);
  }
  close(ready[1]);
  return (struct pending_helper){.pid = pid, .ready_fd = ready[0], .name = name};
}

/* Waits until the helper says "ready" (its listeners are bound, so connections redirected from
 * then on queue in the kernel); anything else and the command does not run. */
static void await_helper(struct pending_helper helper) {
  char buffer[16];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(helper.ready_fd, buffer + got, sizeof buffer - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got == sizeof buffer - 1 || memchr(buffer, '\n', got)) break;
  }
  close(helper.ready_fd);
  buffer[got] = '\0';
  if (strcmp(buffer, "ready\n") != 0) {
    fprintf(stderr, "%s: the %s did not start (see its message above); the command does not run\n", prog, helper.name);
    stop_helpers();
    _exit(EXIT_SETUP);
  }
}

/* ---------------------------------------------------------------- the command ------------ */

#define DENY(ctx, err, call, ...)                                                     \
  do {                                                                                \
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), SCMP_SYS(call), __VA_ARGS__) < 0) \
      die_msg("seccomp rule for " #call " was refused");                            \
  } while (0)

/*
 * SECURITY: what the command may not do even though it has no capabilities.
 * - sockets of any family but AF_UNIX, AF_INET and AF_INET6 (netlink, packet, vsock — which is
 *   not confined by the network namespace — bluetooth, ...), and raw/packet sockets of INET
 *   families: only TCP (redirected) and UDP (dropped unless DNS) reach the stack;
 * - io_uring (its operations bypass seccomp), ptrace and cross-process memory access (the command
 *   must not drive the reaper or read what it holds), new user namespaces (they would hand the
 *   command capabilities again), setns, bpf, perf, userfaultfd, keyrings, mount API;
 * - TIOCSTI/TIOCLINUX: pushing keystrokes into the user's terminal outside the jail.
 * test/e2e/jail-network.test.ts ("the seccomp filter refuses ...").
 */
static void install_seccomp(void) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL) die_msg("seccomp_init failed");
  static const int blocked_families[] = {AF_UNSPEC, 3, 4, 5, 6, 7, 8, 9};
  for (size_t i = 0; i < sizeof blocked_families / sizeof blocked_families[0]; i++) {
    DENY(ctx, EAFNOSUPPORT, socket, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)blocked_families[i]));
    DENY(ctx, EAFNOSUPPORT, socketpair, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)blocked_families[i]));
  }
  DENY(ctx, EAFNOSUPPORT, socket, 1, SCMP_A0(SCMP_CMP_GT, AF_INET6));
  DENY(ctx, EAFNOSUPPORT, socketpair, 1, SCMP_A0(SCMP_CMP_GT, AF_INET6));
  static const int inet_families[] = {AF_INET, AF_INET6};
  static const int raw_types[] = {SOCK_RAW, SOCK_PACKET};
  for (size_t f = 0; f < 2; f++)
    for (size_t t = 0; t < 2; t++)
      DENY(ctx, EPERM, socket, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)inet_families[f]), SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (scmp_datum_t)raw_types[t]));

  DENY(ctx, ENOSYS, io_uring_setup, 0);
  DENY(ctx, ENOSYS, io_uring_enter, 0);
  DENY(ctx, ENOSYS, io_uring_register, 0);
  /* clone3 passes its flags in memory, where seccomp cannot look: answer ENOSYS so libc falls
   * back to clone(), whose flags are checked below. */
  DENY(ctx, ENOSYS, clone3, 0);
  DENY(ctx, EPERM, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  DENY(ctx, EPERM, unshare, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
  static const int always_denied[] = {
      SCMP_SYS(ptrace),       SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(setns),
      SCMP_SYS(bpf),          SCMP_SYS(perf_event_open),  SCMP_SYS(userfaultfd),       SCMP_SYS(keyctl),
      SCMP_SYS(add_key),      SCMP_SYS(request_key),      SCMP_SYS(mount),             SCMP_SYS(umount2),
      SCMP_SYS(pivot_root),   SCMP_SYS(fsopen),           SCMP_SYS(fsmount),           SCMP_SYS(fsconfig),
      SCMP_SYS(move_mount),   SCMP_SYS(open_tree),        SCMP_SYS(fspick),            SCMP_SYS(mount_setattr),
      SCMP_SYS(kexec_load),   SCMP_SYS(kexec_file_load), SCMP_SYS(init_module),      SCMP_SYS(finit_module),      SCMP_SYS(delete_module),
      SCMP_SYS(open_by_handle_at),
  };
  for (size_t i = 0; i < sizeof always_denied / sizeof always_denied[0]; i++)
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), always_denied[i], 0) < 0) die_msg("seccomp rule was refused");
  DENY(ctx, EPERM, ioctl, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
  DENY(ctx, EPERM, ioctl, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
  if (seccomp_load(ctx) < 0) die_msg("loading the seccomp filter failed");
  seccomp_release(ctx);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  ssize_t n = write(fd, text, strlen(text));
  if (n != (ssize_t)strlen(text)) die(path);
  close(fd);
}

/* Maps the caller's uid/gid (as seen outside the jail) onto bwrap's uid/gid 0. */
static void enter_user_namespace(long uid, long gid) {
  if (unshare(CLONE_NEWUSER) < 0) die("new user namespace for the command");
  char map[64];
  snprintf(map, sizeof map, "%ld 0 1\n", uid);
  write_file("/proc/self/uid_map", map);
  write_file("/proc/self/setgroups", "deny");
  snprintf(map, sizeof map, "%ld 0 1\n", gid);
  write_file("/proc/self/gid_map", map);
}

static void drop_all_capabilities(void) {
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &header, data) < 0) die("drop capabilities");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
}

static void exec_command(char **command) {
  drop_all_capabilities();
  /* Only stdio crosses into the command; everything else the jail opened stays behind. */
  syscall(SYS_close_range, 3, ~0U, 0);
  install_seccomp();
  execvp(command[0], command);
  int error = errno;
  fprintf(stderr, "srt-gw: cannot run %s: %s\n", command[0], strerror(error));
  _exit(error == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
}

/*
 * SECURITY: the unix socket filter (native/unix-socket-supervisor.c) goes on the reaper, so the
 * command and everything it starts inherit it. Its listener must reach the init, whose threads
 * answer it, but not by sendmsg (the filter would hand that very call to the listener nobody
 * reads yet): the reaper says the descriptor's number on fd 3, the init copies it with
 * pidfd_getfd and answers one byte, and only then the reaper closes its copy and starts the
 * command. Any failure: the command never runs. test/e2e/jail-unix-sockets.test.ts.
 */
static void hand_over_unix_socket_listener(int handoff) {
  char error[256];
  int listener = unix_socket_filter_install(error);
  if (listener < 0) die_msg(error);
  if (write(handoff, &listener, sizeof listener) != sizeof listener) die("hand over the unix socket listener");
  unsigned char taken = 0;
  ssize_t n;
  do n = read(handoff, &taken, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1 || taken != 1) die_msg("the unix socket supervisor did not start; the command does not run");
  close(listener);
  close(handoff);
}

/* The init's side: takes the reaper's listener and starts the supervisor threads. When the reaper
 * failed before (end of file), it is left to exit with its own message. */
static void start_unix_socket_supervisor(struct options *o, int handoff, pid_t reaper) {
  int number;
  ssize_t n;
  do n = read(handoff, &number, sizeof number);
  while (n < 0 && errno == EINTR);
  if (n != sizeof number) {
    close(handoff);
    return;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, reaper, 0);
  if (pidfd < 0) die("pidfd_open (Linux 5.3 or later) for the unix socket supervisor");
  int listener = (int)syscall(SYS_pidfd_getfd, pidfd, number, 0);
  if (listener < 0) die("pidfd_getfd (Linux 5.6 or later) for the unix socket supervisor");
  close(pidfd);
  fcntl(listener, F_SETFD, FD_CLOEXEC);
  if (unix_socket_supervisor_start(listener, o->allow_unix_sockets) < 0) die("start the unix socket supervisor");
  unsigned char taken = 1;
  if (write(handoff, &taken, 1) != 1) die("tell the reaper the unix socket supervisor runs");
  close(handoff);
}

/* ---------------------------------------------------------------- reviewed writes -------- */

/* Decodes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mount_path(char *path) {
  char *out = path;
  for (char *in = path; *in; out++) {
    if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
      *out = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
      in += 4;
    } else {
      *out = *in++;
    }
  }
  *out = '\0';
}

static int is_below(const char *path, const char *root) {
  size_t n = strlen(root);
  return strncmp(path, root, n) == 0 && path[n] == '/';
}

/* The mount points strictly below `root`, outermost only (each is cloned with what is below it). */
static int outermost_mounts_below(const char *root, char ***found) {
  FILE *mountinfo = fopen("/proc/self/mountinfo", "re");
  if (mountinfo == NULL) die("read /proc/self/mountinfo");
  char **paths = NULL;
  int count = 0;
  char *line = NULL;
  size_t size = 0;
  while (getline(&line, &size, mountinfo) > 0) {
    /* id parent major:minor root MOUNT-POINT options ... */
    char *field = line;
    for (int i = 0; i < 4 && field; i++) field = strchr(field, ' ') ? strchr(field, ' ') + 1 : NULL;
    if (field == NULL) continue;
    char *end = strchr(field, ' ');
    if (end) *end = '\0';
    unescape_mount_path(field);
    if (!is_below(field, root)) continue;
    char **grown = realloc(paths, sizeof(char *) * (size_t)(count + 1));
    if (grown == NULL || (grown[count] = strdup(field)) == NULL) die_msg("out of memory");
    paths = grown;
    count++;
  }
  free(line);
  fclose(mountinfo);
  int kept = 0;
  for (int i = 0; i < count; i++) {
    int covered = 0;
    for (int j = 0; j < count && !covered; j++) covered = is_below(paths[i], paths[j]) || (j < i && !strcmp(paths[i], paths[j]));
    if (!covered) paths[kept++] = paths[i];
  }
  *found = paths;
  return kept;
}

/*
 * Mounts an overlay over each writable root: the host directory is the lower layer, the command's
 * writes go to DIR/N/upper (in the user's state directory), which srt-gw reviews after the run.
 * The jail's mounts below a root (hidden credential paths, read-only paths) would be covered by
 * the overlay, whose lower layer is the root's filesystem alone: each is cloned first and moved
 * back on top of the overlay.
 * SECURITY: without the re-mounts a hidden path inside a writable root (~/.ssh, a denyRead, the
 * state directory) would show its host content through the lower layer — test/e2e/overlay-writes.test.ts.
 */
static void mount_overlays(const struct options *o) {
  /* The working directory bwrap entered is the directory under the overlay: entered again below. */
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == NULL) die("read the working directory");
  for (int i = 0; i < o->overlay_root_count; i++) {
    const char *root = o->overlay_roots[i];
    char **below = NULL;
    int count = outermost_mounts_below(root, &below);
    int *clones = calloc((size_t)count + 1, sizeof(int));
    if (clones == NULL) die_msg("out of memory");
    for (int j = 0; j < count; j++) {
      clones[j] = (int)syscall(SYS_open_tree, AT_FDCWD, below[j], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      if (clones[j] < 0) die(below[j]);
    }
    /* volatile: no syncs of the upper layer (a scratch layer, read once after the run and never
     * mounted again); without it, tearing the jail down flushes every byte the command wrote. */
    char options[3 * PATH_MAX + 64];
    int n = snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s/%d/upper,workdir=%s/%d/work,userxattr,volatile", root, o->overlay_layers, i,
                     o->overlay_layers, i);
    if (n < 0 || (size_t)n >= sizeof options) die_msg("overlay options too long");
    if (mount("overlay", root, "overlay", 0, options) < 0) {
      fprintf(stderr, "%s: cannot mount the overlay over %s: %s\n", prog, root, strerror(errno));
      stop_helpers();
      _exit(EXIT_SETUP);
    }
    for (int j = 0; j < count; j++) {
      if (syscall(SYS_move_mount, clones[j], "", AT_FDCWD, below[j], MOVE_MOUNT_F_EMPTY_PATH) < 0) die(below[j]);
      close(clones[j]);
      free(below[j]);
    }
    free(clones);
    free(below);
  }
  /* The layers stay reachable only through the overlays. */
  if (umount2(o->overlay_layers, MNT_DETACH) < 0) die("unmount the overlay layers");
  /* SECURITY: else the command's relative writes go past the overlay to the host directory —
   * test/e2e/overlay-writes.test.ts. */
  if (chdir(cwd) < 0) die("enter the working directory through the overlay");
}

/* `--opaque-directories`: of the NUL-separated paths on stdin, writes (NUL-separated) those that
 * an overlay marked opaque (deleted and made again: the lower layer's entries are gone). Node has
 * no call that reads extended attributes; srt-gw's review of an upper layer asks this. */
static int list_opaque_directories(void) {
  size_t size = 0, capacity = 65536;
  char *paths = malloc(capacity + 1);
  if (paths == NULL) return 70;
  for (;;) {
    if (size == capacity && (paths = realloc(paths, (capacity *= 2) + 1)) == NULL) return 70;
    ssize_t n = read(STDIN_FILENO, paths + size, capacity - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 74;
    if (n == 0) break;
    size += (size_t)n;
  }
  paths[size] = '\0';
  for (size_t at = 0; at < size; at += strlen(paths + at) + 1) {
    const char *path = paths + at;
    static const char *const names[] = {"user.overlay.opaque", "trusted.overlay.opaque"};
    for (size_t i = 0; i < 2; i++) {
      char value[2];
      if (lgetxattr(path, names[i], value, sizeof value) == 1 && value[0] == 'y') {
        fwrite(path, 1, strlen(path) + 1, stdout);
        break;
      }
    }
  }
  return fflush(stdout) == 0 ? 0 : 74;
}

static volatile sig_atomic_t forwarded_to;

static void forward_signal(int sig) {
  if (forwarded_to > 0) kill((pid_t)forwarded_to, sig);
}

static void wake_up(int sig) { (void)sig; }

static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

static int status_to_exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * pid 1 of the command's PID namespace: mounts its /proc, maps the user, starts the command and
 * then only reaps and forwards signals (pid 1 ignores signals it has no handler for, so the
 * command itself must not be pid 1). Exits with the command's status, which ends the namespace.
 * It starts with the forwarded signals blocked and unblocks them (to `unblocked`) only once its
 * handlers are in place: a signal sent meanwhile (a kill right after the start) stays pending
 * instead of being dropped, as pid 1 would drop it.
 */
static void run_reaper(const struct options *o, const sigset_t *unblocked) {
  /* If the init outside dies, so does this namespace (getppid() is 0 here: no race check). */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* The reaper is visible to the command as pid 1: it keeps no descriptor of the init's (but the
   * handoff of the unix socket listener, moved to fd 3 and closed before the command starts). */
  if (dup2(o->listener_handoff, 3) < 0) die("keep the listener handoff");
  syscall(SYS_close_range, 4, ~0U, 0);
  if (unshare(CLONE_NEWNS) < 0) die("new mount namespace for the command");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
  if (o->overlay_root_count > 0) mount_overlays(o);
  /* SECURITY: the gateway's sockets are unreachable from the command; only the helpers, in the
   * mount namespace left behind, hold them. test/e2e/jail-network.test.ts. */
  if (umount2(o->hide, MNT_DETACH) < 0) die("unmount the gateway socket directory");
  if (access(o->dns_socket, F_OK) == 0) die_msg("the gateway socket is still visible after unmounting; refusing to run");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc for the command");
  if (mount("/proc/sys", "/proc/sys", NULL, MS_BIND | MS_REC, NULL) < 0 ||
      mount(NULL, "/proc/sys", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    die("make /proc/sys read-only");
  /* SECURITY: the host's sysfs lists the host's network interfaces (/sys/class/net, with their
   * addresses' hardware and names), and /proc/kallsyms lists the kernel's symbols and modules. A
   * sysfs mounted here belongs to the jail's network namespace (only lo), and kallsyms reads as
   * empty — test/e2e/jail-host-view.test.ts. */
  if (mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount the jail's own /sys");
  if (mount("/dev/null", "/proc/kallsyms", NULL, MS_BIND, NULL) < 0) die("hide /proc/kallsyms");
  enter_user_namespace(o->uid, o->gid);
  /* Before PR_SET_DUMPABLE 0: the init takes the listener from this process with pidfd_getfd. */
  hand_over_unix_socket_listener(3);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  pid_t child = fork();
  if (child < 0) die("fork the command");
  if (child == 0) {
    sigprocmask(SIG_SETMASK, unblocked, NULL);
    exec_command(o->command);
  }
  forwarded_to = child;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++) sigaction(forwarded_signals[i], &sa, NULL);
  sigprocmask(SIG_SETMASK, unblocked, NULL);
  drop_all_capabilities();
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) _exit(EXIT_SETUP);
    if (pid == child) _exit(status_to_exit_code(status));
  }
}

/* ---------------------------------------------------------------- main ------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s --nft PATH --nft-rules FILE --redirector PATH --redirect-port N --gateway-channel FD\n"
          "       --dns-forwarder PATH --dns-port N --dns-socket PATH --hide DIR --uid N --gid N --control-fd N\n"
          "       [--allow-unix-socket PATH]... [--overlay-layers DIR --overlay ROOT...] -- COMMAND [ARG...]\n"
          "   or: %s --probe-unix-sockets   (what keeps the command off host unix sockets here)\n"
          "\n"
          "Runs inside srt-gw run's bubblewrap jail (not by hand): sets up the network namespace so that\n"
          "every TCP connection and DNS query goes to the gateway, then runs COMMAND without capabilities\n"
          "in nested PID, mount and user namespaces where the gateway's sockets are not visible.\n",
          prog, prog);
}

static long parse_number(const char *flag, const char *value, long min, long max) {
  char *end;
  errno = 0;
  long n = strtol(value, &end, 10);
  if (errno || *end || end == value || n < min || n > max) {
    fprintf(stderr, "%s: %s must be a number from %ld to %ld (got '%s')\n", prog, flag, min, max, value);
    exit(64);
  }
  return n;
}

static void parse_options(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->uid = o->gid = -1;
  o->control_fd = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "--")) {
      i++;
      break;
    }
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!strcmp(arg, "--probe-unix-sockets")) exit(unix_socket_supervisor_probe());
    if (!strcmp(arg, "--opaque-directories")) exit(list_opaque_directories());
    if (i + 1 >= argc) {
      fprintf(stderr, "%s: %s needs a value (or unknown option)\n", prog, arg);
      exit(64);
    }
    const char *value = argv[++i];
    if (!strcmp(arg, "--nft")) o->nft = value;
    else if (!strcmp(arg, "--nft-rules")) o->nft_rules = value;
    else if (!strcmp(arg, "--redirector")) o->redirector = value;
    else if (!strcmp(arg, "--dns-forwarder")) o->dns_forwarder = value;
    else if (!strcmp(arg, "--gateway-channel")) o->gateway_channel = (int)parse_number(arg, value, 3, 1023);
    else if (!strcmp(arg, "--dns-socket")) o->dns_socket = value;
    else if (!strcmp(arg, "--hide")) o->hide = value;
    else if (!strcmp(arg, "--redirect-port")) o->redirect_port = (int)parse_number(arg, value, 1, 65535);
    else if (!strcmp(arg, "--dns-port")) o->dns_port = (int)parse_number(arg, value, 1, 65535);
    else if (!strcmp(arg, "--uid")) o->uid = parse_number(arg, value, 0, 4294967294L);
    else if (!strcmp(arg, "--gid")) o->gid = parse_number(arg, value, 0, 4294967294L);
    else if (!strcmp(arg, "--control-fd")) o->control_fd = (int)parse_number(arg, value, 3, 1023);
    else if (!strcmp(arg, "--overlay-layers")) o->overlay_layers = value;
    else if (!strcmp(arg, "--overlay")) {
      if (!o->overlay_roots && !(o->overlay_roots = calloc((size_t)argc, sizeof(char *)))) exit(70);
      /* The overlay's mount options separate layers with ':' and options with ','. */
      if (value[0] != '/' || strpbrk(value, ",:\\\n") != NULL || strlen(value) >= PATH_MAX) {
        fprintf(stderr, "%s: --overlay must be an absolute path without ',', ':' or '\\' (got '%s')\n", prog, value);
        exit(64);
      }
      o->overlay_roots[o->overlay_root_count++] = (char *)value;
    } else if (!strcmp(arg, "--allow-unix-socket")) {
      if (!o->allow_unix_sockets && !(o->allow_unix_sockets = calloc((size_t)argc, sizeof(char *)))) exit(70);
      if (value[0] != '/') {
        fprintf(stderr, "%s: --allow-unix-socket must be an absolute path (got '%s')\n", prog, value);
        exit(64);
      }
      o->allow_unix_sockets[o->allow_unix_socket_count++] = (char *)value;
    } else {
      fprintf(stderr, "%s: unknown option %s\n", prog, arg);
      usage(stderr);
      exit(64);
    }
  }
  if (!o->nft || !o->nft_rules || !o->redirector || !o->dns_forwarder || !o->gateway_channel || !o->dns_socket || !o->hide ||
      !o->redirect_port || !o->dns_port || o->uid < 0 || o->gid < 0 || o->control_fd < 0 || i >= argc ||
      (o->overlay_root_count > 0) != (o->overlay_layers != NULL)) {
    usage(stderr);
    exit(64);
  }
  o->command = argv + i;
}

int main(int argc, char **argv) {
  struct options o;
  parse_options(argc, argv, &o);
  if (fcntl(o.control_fd, F_SETFD, FD_CLOEXEC) < 0) die("--control-fd is not open");
  if (fcntl(o.gateway_channel, F_SETFD, FD_CLOEXEC) < 0) die("--gateway-channel is not open");
  signal(SIGPIPE, SIG_IGN);

  /* nft and the two helpers start at once and are waited for together (a few ms of every run's
   * start-up): the helpers only listen, and nothing runs in the jail before all three are done. */
  pid_t nft = start_network(&o);
  char channel_text[16];
  snprintf(channel_text, sizeof channel_text, "%d", o.gateway_channel);
  struct pending_helper redirector = start_helper(o.redirector, "--gateway-channel", channel_text, o.gateway_channel, o.redirect_port, "redirector");
  started_helpers[0] = redirector.pid;
  struct pending_helper forwarder = start_helper(o.dns_forwarder, "--gateway-socket", o.dns_socket, -1, o.dns_port, "DNS forwarder");
  started_helpers[1] = forwarder.pid;
  /* Only the redirector talks to the gateway over the channel. */
  close(o.gateway_channel);
  finish_network(&o, nft);
  await_helper(redirector);
  await_helper(forwarder);
  /* SECURITY: the command starts only once the gateway answers for its traffic — before that
   * the helpers would have nowhere to send it. */
  wait_for_gateway(o.control_fd);

  /* Signals are handled synchronously from here on: SIGCHLD through a self-pipe-free ppoll. */
  sigset_t blocked, during_wait;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGCHLD);
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++) sigaddset(&blocked, forwarded_signals[i]);
  sigprocmask(SIG_BLOCK, &blocked, &during_wait);

  int listener_handoff[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, listener_handoff) < 0) die("socketpair for the unix socket listener");
  o.listener_handoff = listener_handoff[1];
  /* clone, not unshare + fork: after unshare(CLONE_NEWPID) this process could no longer start
   * threads, and the unix socket supervisor is threads of it. */
  pid_t reaper = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0);
  if (reaper < 0) die("new PID namespace for the command");
  if (reaper == 0) {
    /* Still blocked: run_reaper unblocks them once it can forward them. */
    run_reaper(&o, &during_wait);
  }
  close(listener_handoff[1]);
  start_unix_socket_supervisor(&o, listener_handoff[0], reaper);

  /* Signals sent to this process (by bwrap's init or a user) go to the command too. */
  forwarded_to = reaper;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++) sigaction(forwarded_signals[i], &sa, NULL);
  /* A no-op handler makes SIGCHLD interrupt ppoll. */
  sa.sa_handler = wake_up;
  sigaction(SIGCHLD, &sa, NULL);
  sigdelset(&during_wait, SIGCHLD);

  int exit_code = -1;
  int control_open = 1;
  while (exit_code < 0) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == reaper) exit_code = status_to_exit_code(status);
      else if (pid == redirector.pid || pid == forwarder.pid) {
        /* Fail closed: nothing replaces it, so the command's connections now fail. */
        fprintf(stderr, "srt-gw: the jail's %s stopped; the command has no network from now on\n",
                pid == redirector.pid ? "redirector" : "DNS forwarder");
      }
    }
    if (exit_code >= 0) break;
    struct pollfd fds[1] = {{.fd = control_open ? o.control_fd : -1, .events = POLLIN}};
    int ready = ppoll(fds, 1, NULL, &during_wait);
    if (ready < 0) continue; /* EINTR: a signal was forwarded or a child exited */
    if (fds[0].revents) {
      unsigned char signals[64];
      ssize_t n = read(o.control_fd, signals, sizeof signals);
      if (n <= 0) {
        /* The parent is gone: so is the gateway, and so must the command be. */
        control_open = 0;
        kill(reaper, SIGKILL);
      }
      for (ssize_t i = 0; i < n; i++)
        if (signals[i] > 0 && signals[i] < 65) kill(reaper, signals[i]);
    }
  }
  stop_helpers();
  return exit_code;
}
