/*
 * The jail's unix socket supervisor. bubblewrap's mounts do not keep the command off host unix
 * sockets: home, the working tree's parent and other host paths are visible, and a read-only
 * bind mount does not stop connect() to a socket file there (a docker socket, an ssh or gpg
 * agent, /dev/log). Landlock could (LANDLOCK_ACCESS_FS_RESOLVE_UNIX) but not on the kernels
 * this runs on, so a seccomp filter hands every connect, sendto with a destination, sendmsg and
 * sendmmsg of the command to this supervisor (SECCOMP_RET_USER_NOTIF), which runs as threads
 * of srt-gw-jail-init, outside the command's PID, mount and user namespaces.
 *
 * For each call the supervisor reads the destination from the command's memory. A pathname
 * unix address is resolved as the command would (its cwd, its root), pinned with an O_PATH
 * descriptor and allowed only when that inode is bound right now by a socket of the jail's own
 * network namespace (so created inside the jail, wherever: its working tree, /tmp), or is the
 * inode of a path listed in jail.allowUnixSockets. Anything else is refused with EACCES and a
 * line on stderr. Abstract unix addresses need no check: they live in the network namespace,
 * and the jail has its own.
 *
 * SECURITY: the supervisor never lets the kernel re-run the command's call
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE): the kernel would read the address and the descriptor
 * again, and another thread of the command (or a process sharing its memory or descriptor
 * table) can change either between the check and the re-read — a checked TCP address swapped
 * for a host socket path, or the checked TCP socket swapped for a unix one with dup2. Instead
 * the supervisor makes the call itself, on a duplicate of the command's socket
 * (pidfd_getfd), with the bytes it checked, and a pathname destination becomes
 * /proc/self/fd/N of the pinned inode, so a rename or symlink swap after the check cannot
 * redirect it. Every call, TCP connects included, therefore crosses the supervisor.
 * test/e2e/jail-unix-sockets.test.ts.
 *
 * Fail closed: if the supervisor is gone (srt-gw-jail-init died), the kernel answers every
 * notified call with ENOSYS; nothing is let through unchecked.
 */
#define _GNU_SOURCE
#include "unix-socket-supervisor.h"

#include <linux/seccomp.h> /* before seccomp.h, which defines the notification structs otherwise */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Calls that may block (a connect to a listener whose backlog is full, a send to a full
 * receiver) each hold one worker; a new worker starts whenever none is idle, up to this cap. */
#define MAX_WORKERS 64
/* Bytes one send may carry through the supervisor: a stream send past it is sent in part (as a
 * send may be), a datagram past it is refused with EMSGSIZE. */
#define MAX_DATA (4u << 20)
#define MAX_CONTROL 65536
#define MAX_IOV 1024
#define MAX_MMSG 1024
/* Refusals reported on stderr, so a command that retries in a loop does not flood it. */
#define MAX_REPORTED 20

static int listener_fd = -1;
static char *const *allowed_paths;
static atomic_int idle_workers, total_workers, reported;
static size_t request_size, response_size;

/* A notified call whose target process is gone: no answer is possible or needed. */
#define TARGET_GONE (-100000)

/* ------------------------------------------------------------ the command's memory and fds */

struct call {
  const struct seccomp_notif *req;
  pid_t pid;
  int pidfd;  /* opened by pid; trusted only once `validated` */
  int socket; /* the command's socket, duplicated; -1 until fetched */
  int validated;
};

static int read_memory(pid_t pid, uint64_t address, void *buffer, size_t size) {
  if (size == 0) return 0;
  struct iovec local = {buffer, size}, remote = {(void *)(uintptr_t)address, size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)size ? 0 : -EFAULT;
}

/*
 * SECURITY: the reads above go by pid, which a new process could have taken if the command
 * died. The notification stays valid only while the command waits in its call, so still being
 * valid after the reads proves they read the command (and that the pidfd is its). Called after
 * the reads and before anything is done on the command's behalf. test/e2e/jail-unix-sockets.test.ts.
 */
static int validate(struct call *c) {
  uint64_t id = c->req->id;
  if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) return TARGET_GONE;
  c->validated = 1;
  return 0;
}

static int fetch_fd(struct call *c, int number) {
  if (!c->validated) return -EPERM; /* never happens: a programming error fails closed */
  int fd = (int)syscall(SYS_pidfd_getfd, c->pidfd, number, 0);
  return fd < 0 ? -errno : fd;
}

static int command_socket(struct call *c) {
  if (c->socket < 0) c->socket = fetch_fd(c, (int)c->req->data.args[0]);
  return c->socket;
}

/* ------------------------------------------------------------ the decision ---------------- */

/* Whether a socket of this (the jail's) network namespace is bound to the inode (dev, ino):
 * the kernel's unix socket diagnostics list every bound socket's inode. */
static int bound_in_jail(dev_t dev, ino_t ino) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return 0;
  struct {
    struct nlmsghdr nh;
    struct unix_diag_req req;
  } request = {
      .nh = {.nlmsg_len = sizeof request, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
      .req = {.sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_show = UDIAG_SHOW_VFS},
  };
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int found = 0;
  if (sendto(nl, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) goto done;
  static _Thread_local char buffer[32768] __attribute__((aligned(8)));
  for (;;) {
    ssize_t n = recv(nl, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) goto done;
    size_t left = (size_t)n;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buffer; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) goto done;
      if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg))) continue;
      int attributes_left = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(struct unix_diag_msg)));
      struct rtattr *attribute = (struct rtattr *)((char *)NLMSG_DATA(nh) + NLMSG_ALIGN(sizeof(struct unix_diag_msg)));
      for (; RTA_OK(attribute, attributes_left); attribute = RTA_NEXT(attribute, attributes_left)) {
        if (attribute->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(attribute) < sizeof(struct unix_diag_vfs)) continue;
        const struct unix_diag_vfs *vfs = RTA_DATA(attribute);
        /* The kernel reports its own dev_t (major << 20 | minor) and a 32-bit inode number. */
        if (vfs->udiag_vfs_ino == (uint32_t)ino && vfs->udiag_vfs_dev >> 20 == major(dev) && (vfs->udiag_vfs_dev & 0xfffff) == minor(dev))
          found = 1;
      }
    }
  }
done:
  close(nl);
  return found;
}

static int listed_in_policy(dev_t dev, ino_t ino) {
  for (char *const *path = allowed_paths; path && *path; path++) {
    struct stat st;
    if (stat(*path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino) return 1;
  }
  return 0;
}

/* Opens `path` as the command's connect() would find it: relative to its cwd, inside its root,
 * following symlinks (but never /proc magic links, which would resolve in the supervisor). */
static int open_as_command(pid_t pid, const char *path, char *resolved, size_t resolved_size) {
  if (path[0] == '/') {
    snprintf(resolved, resolved_size, "%s", path);
  } else {
    char link[64], cwd[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(link, cwd, sizeof cwd - 1);
    if (n < 0) return -errno;
    cwd[n] = '\0';
    if (cwd[0] != '/') return -ENOENT;
    if ((size_t)snprintf(resolved, resolved_size, "%s/%s", cwd, path) >= resolved_size) return -ENAMETOOLONG;
  }
  char root_link[64];
  snprintf(root_link, sizeof root_link, "/proc/%d/root", (int)pid);
  int root = open(root_link, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return -errno;
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd;
  int tries = 0;
  /* EAGAIN: a rename raced a ".." walk; the kernel asks to retry. */
  do fd = (int)syscall(SYS_openat2, root, resolved, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN && ++tries < 8);
  int error = errno;
  close(root);
  return fd < 0 ? -error : fd;
}

static void report_refusal(const char *path) {
  int n = atomic_fetch_add(&reported, 1);
  if (n < MAX_REPORTED)
    fprintf(stderr,
            "srt-gw: refused a connection to the unix socket %s: it was not created inside the jail "
            "(list it in the policy's jail.allowUnixSockets to allow it)\n",
            path);
  else if (n == MAX_REPORTED)
    fprintf(stderr, "srt-gw: further refused unix socket connections are not reported\n");
}

/*
 * Decides the destination `address` (`*size` bytes, as read from the command). Returns 0 to go
 * ahead with `address`, rewritten for a pathname unix socket to /proc/self/fd/N of the checked
 * inode (N in *pinned, closed by the caller), or -errno to answer instead.
 * SECURITY: host unix sockets stay out of reach — test/e2e/jail-unix-sockets.test.ts.
 */
static int check_destination(pid_t pid, struct sockaddr_storage *address, socklen_t *size, int *pinned) {
  *pinned = -1;
  struct sockaddr_un *unix_address = (struct sockaddr_un *)address;
  const size_t path_offset = offsetof(struct sockaddr_un, sun_path);
  if (*size <= path_offset || unix_address->sun_family != AF_UNIX) return 0; /* not a unix path: nothing to check */
  if (unix_address->sun_path[0] == '\0') return 0; /* abstract: private to the jail's network namespace */
  if (*size > sizeof(struct sockaddr_un)) return -EINVAL; /* as the kernel answers */
  char path[sizeof unix_address->sun_path + 1];
  size_t length = *size - path_offset;
  memcpy(path, unix_address->sun_path, length);
  path[length] = '\0';

  char resolved[PATH_MAX * 2];
  int fd = open_as_command(pid, path, resolved, sizeof resolved);
  if (fd < 0) return fd;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    close(fd);
    return -ECONNREFUSED; /* what connect() says of a path that is not a socket */
  }
  if (!bound_in_jail(st.st_dev, st.st_ino) && !listed_in_policy(st.st_dev, st.st_ino)) {
    close(fd);
    report_refusal(resolved);
    return -EACCES;
  }
  memset(unix_address->sun_path, 0, sizeof unix_address->sun_path);
  int written = snprintf(unix_address->sun_path, sizeof unix_address->sun_path, "/proc/self/fd/%d", fd);
  *size = (socklen_t)(path_offset + (size_t)written + 1);
  *pinned = fd;
  return 0;
}

/* Reads a destination address of `size` bytes (the kernel's limit: a sockaddr_storage). */
static int read_address(pid_t pid, uint64_t pointer, long long size, struct sockaddr_storage *address, socklen_t *read_size) {
  memset(address, 0, sizeof *address);
  if (size < 0 || size > (long long)sizeof *address) return -EINVAL;
  *read_size = (socklen_t)size;
  return read_memory(pid, pointer, address, (size_t)size);
}

/* ------------------------------------------------------------ the calls ------------------- */

static long serve_connect(struct call *c) {
  const __u64 *args = c->req->data.args;
  struct sockaddr_storage address;
  socklen_t size;
  int pinned = -1;
  long result = read_address(c->pid, args[1], (int)args[2], &address, &size);
  if (result == 0) result = check_destination(c->pid, &address, &size, &pinned);
  if (result == 0) result = validate(c);
  if (result == 0) result = command_socket(c);
  if (result >= 0) result = connect(c->socket, (struct sockaddr *)&address, size) < 0 ? -errno : 0;
  if (pinned >= 0) close(pinned);
  return result;
}

/* The message the command asked to send, as read from its memory. */
struct message {
  struct sockaddr_storage address;
  socklen_t address_size;
  int has_address;
  int pinned;
  char *data;
  size_t size;      /* bytes copied into data */
  size_t requested; /* bytes the command asked to send */
  char *control;
  size_t control_size;
  int passed_fds[253]; /* SCM_MAX_FD: the kernel's limit per message */
  size_t passed_count;
};

static void message_free(struct message *m) {
  if (m->pinned >= 0) close(m->pinned);
  for (size_t i = 0; i < m->passed_count; i++) close(m->passed_fds[i]);
  free(m->data);
  free(m->control);
}

/* Copies the command's buffers (iov) into one, up to MAX_DATA bytes. */
static long read_data(pid_t pid, const struct iovec *iov, size_t count, struct message *m) {
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    if (iov[i].iov_len > SSIZE_MAX - total) return -EINVAL;
    total += iov[i].iov_len;
  }
  m->requested = total;
  m->size = total < MAX_DATA ? total : MAX_DATA;
  m->data = malloc(m->size ? m->size : 1);
  if (!m->data) return -ENOMEM;
  size_t at = 0;
  for (size_t i = 0; i < count && at < m->size; i++) {
    size_t take = iov[i].iov_len < m->size - at ? iov[i].iov_len : m->size - at;
    if (read_memory(pid, (uint64_t)(uintptr_t)iov[i].iov_base, m->data + at, take) < 0) return -EFAULT;
    at += take;
  }
  return 0;
}

/*
 * SECURITY: descriptors passed with SCM_RIGHTS are numbers in the command's table; sent as they
 * are, the kernel would take them from the supervisor's (the jail's control channel). Each one is
 * replaced by a duplicate of the command's own, walking the control messages exactly as the
 * kernel does (__scm_send), so no SCM_RIGHTS entry is left untranslated.
 * test/e2e/jail-unix-sockets.test.ts.
 */
static long translate_passed_fds(struct call *c, struct message *m) {
  if (m->control_size < sizeof(struct cmsghdr)) return 0;
  char *end = m->control + m->control_size;
  for (struct cmsghdr *h = (struct cmsghdr *)m->control; h;) {
    size_t left = (size_t)(end - (char *)h);
    if (h->cmsg_len < sizeof(struct cmsghdr) || h->cmsg_len > left) return -EINVAL;
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
      size_t count = (h->cmsg_len - sizeof(struct cmsghdr)) / sizeof(int);
      int *fds = (int *)((char *)h + sizeof(struct cmsghdr));
      for (size_t i = 0; i < count; i++) {
        if (m->passed_count == sizeof m->passed_fds / sizeof m->passed_fds[0]) return -EINVAL; /* as the kernel answers */
        int fd = fetch_fd(c, fds[i]);
        if (fd < 0) return fd;
        m->passed_fds[m->passed_count++] = fd;
        fds[i] = fd;
      }
    }
    char *next = (char *)h + CMSG_ALIGN(h->cmsg_len);
    h = next + sizeof(struct cmsghdr) > end ? NULL : (struct cmsghdr *)next;
  }
  return 0;
}

/* Reads the msghdr at `pointer` and everything it points to; checks its destination. */
static long read_message(struct call *c, uint64_t pointer, struct message *m) {
  struct msghdr header;
  if (read_memory(c->pid, pointer, &header, sizeof header) < 0) return -EFAULT;
  if (header.msg_name != NULL) {
    /* sendmsg clamps an oversized name length instead of refusing it. */
    long long size = (int)header.msg_namelen;
    if (size < 0) return -EINVAL;
    if (size > (long long)sizeof m->address) size = sizeof m->address;
    long result = read_address(c->pid, (uint64_t)(uintptr_t)header.msg_name, size, &m->address, &m->address_size);
    if (result < 0) return result;
    m->has_address = 1;
    result = check_destination(c->pid, &m->address, &m->address_size, &m->pinned);
    if (result < 0) return result;
  }
  if (header.msg_iovlen > MAX_IOV) return -EMSGSIZE;
  struct iovec iov[MAX_IOV];
  if (header.msg_iovlen && read_memory(c->pid, (uint64_t)(uintptr_t)header.msg_iov, iov, header.msg_iovlen * sizeof *iov) < 0) return -EFAULT;
  long result = read_data(c->pid, iov, header.msg_iovlen, m);
  if (result < 0) return result;
  if (header.msg_controllen > MAX_CONTROL) return -ENOBUFS;
  if (header.msg_controllen > 0) {
    m->control_size = header.msg_controllen;
    m->control = malloc(m->control_size);
    if (!m->control) return -ENOMEM;
    if (read_memory(c->pid, (uint64_t)(uintptr_t)header.msg_control, m->control, m->control_size) < 0) return -EFAULT;
  }
  return 0;
}

/* Sends `m` on the command's socket; the bytes sent, or -errno. */
static long send_message(struct call *c, struct message *m, int flags) {
  long result = command_socket(c);
  if (result < 0) return result;
  if (m->requested > m->size) {
    int type = 0;
    socklen_t size = sizeof type;
    if (getsockopt(c->socket, SOL_SOCKET, SO_TYPE, &type, &size) < 0) return -errno;
    if (type != SOCK_STREAM) return -EMSGSIZE;
  }
  result = translate_passed_fds(c, m);
  if (result < 0) return result;
  struct iovec iov = {m->data, m->size};
  struct msghdr header = {
      .msg_name = m->has_address ? &m->address : NULL,
      .msg_namelen = m->has_address ? m->address_size : 0,
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = m->control,
      .msg_controllen = m->control_size,
  };
  ssize_t sent = sendmsg(c->socket, &header, flags);
  return sent < 0 ? -errno : sent;
}

static long serve_sendto(struct call *c) {
  const __u64 *args = c->req->data.args;
  struct message m = {.pinned = -1};
  long result = read_address(c->pid, args[4], (int)args[5], &m.address, &m.address_size);
  m.has_address = 1;
  if (result == 0) result = check_destination(c->pid, &m.address, &m.address_size, &m.pinned);
  struct iovec iov = {(void *)(uintptr_t)args[1], (size_t)args[2]};
  if (result == 0) result = read_data(c->pid, &iov, 1, &m);
  if (result == 0) result = validate(c);
  if (result == 0) result = send_message(c, &m, (int)args[3]);
  message_free(&m);
  return result;
}

static long serve_sendmsg(struct call *c) {
  struct message m = {.pinned = -1};
  long result = read_message(c, c->req->data.args[1], &m);
  if (result == 0) result = validate(c);
  if (result == 0) result = send_message(c, &m, (int)c->req->data.args[2]);
  message_free(&m);
  return result;
}

/* sendmmsg: each message as sendmsg; the count sent, or the first message's error. */
static long serve_sendmmsg(struct call *c) {
  const __u64 *args = c->req->data.args;
  unsigned count = (unsigned)args[2] > MAX_MMSG ? MAX_MMSG : (unsigned)args[2];
  /* msg_len is written back through /proc/PID/mem: once validated, the open file is the
   * command's memory even if its pid were reused. */
  char mem_path[64];
  snprintf(mem_path, sizeof mem_path, "/proc/%d/mem", (int)c->pid);
  int mem = open(mem_path, O_RDWR | O_CLOEXEC);
  if (mem < 0) return -EFAULT;
  long result = 0;
  unsigned sent = 0;
  for (; sent < count; sent++) {
    uint64_t entry = args[1] + (uint64_t)sent * sizeof(struct mmsghdr);
    struct message m = {.pinned = -1};
    result = read_message(c, entry, &m);
    if (result == 0) result = validate(c);
    if (result == 0) result = send_message(c, &m, (int)args[3]);
    message_free(&m);
    if (result < 0) break;
    unsigned length = (unsigned)result;
    if (pwrite(mem, &length, sizeof length, (off_t)(entry + offsetof(struct mmsghdr, msg_len))) != sizeof length) {
      result = -EFAULT;
      break;
    }
  }
  close(mem);
  if (result == TARGET_GONE) return TARGET_GONE;
  return sent > 0 ? (long)sent : result;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/* A pidfd for the calling thread `tid`: its own (Linux 6.9, so its descriptor table even if it
 * unshared it), else its process's. */
static int open_pidfd(pid_t tid) {
  int fd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
  if (fd >= 0 || errno != EINVAL) return fd;
  fd = (int)syscall(SYS_pidfd_open, tid, 0);
  if (fd >= 0 || errno != EINVAL) return fd;
  /* EINVAL: not a thread group leader, on a kernel without PIDFD_THREAD. */
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
  FILE *status = fopen(path, "re");
  if (!status) return -1;
  long tgid = -1;
  while (fgets(line, sizeof line, status))
    if (sscanf(line, "Tgid: %ld", &tgid) == 1) break;
  fclose(status);
  if (tgid <= 0) return -1;
  return (int)syscall(SYS_pidfd_open, (pid_t)tgid, 0);
}

static void answer(const struct seccomp_notif *req, struct seccomp_notif_resp *resp) {
  struct call c = {.req = req, .pid = (pid_t)req->pid, .pidfd = -1, .socket = -1};
  long result;
  c.pidfd = open_pidfd(c.pid);
  if (c.pidfd < 0) {
    result = -ESRCH;
  } else {
    int nr = req->data.nr;
    if (nr == SYS_connect) result = serve_connect(&c);
    else if (nr == SYS_sendto) result = serve_sendto(&c);
    else if (nr == SYS_sendmsg) result = serve_sendmsg(&c);
    else if (nr == SYS_sendmmsg) result = serve_sendmmsg(&c);
    else result = -ENOSYS;
    close(c.pidfd);
  }
  if (c.socket >= 0) close(c.socket);
  /* Every notification gets an answer, even one whose command seems gone: an unanswered call
   * would wait forever. To a command that is really gone the kernel says ENOENT. */
  if (result == TARGET_GONE) result = -ESRCH;
  memset(resp, 0, response_size);
  resp->id = req->id;
  if (result < 0) resp->error = (int)result;
  else resp->val = result;
  /* ENOENT: a signal interrupted the command's call; it restarts or fails with EINTR. */
  ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
}

/* ------------------------------------------------------------ workers --------------------- */

static int start_worker(void);

/* SECURITY: a worker makes calls for the command, so it holds none of the init's capabilities
 * (binding ports below 1024, socket marks): the command gets nothing through it that it could
 * not do itself. Capabilities are per thread; the init's main thread keeps its own. Reading the
 * command's memory needs none: the init owns the command's user namespace.
 * test/e2e/jail-unix-sockets.test.ts. */
static int drop_thread_capabilities(void) {
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  return (int)syscall(SYS_capset, &header, data);
}

static void *worker(void *unused) {
  (void)unused;
  if (drop_thread_capabilities() < 0) {
    fprintf(stderr, "srt-gw: the unix socket supervisor cannot drop its capabilities: %s; stopping the jail\n", strerror(errno));
    _exit(125);
  }
  struct seccomp_notif *req = calloc(1, request_size);
  struct seccomp_notif_resp *resp = calloc(1, response_size);
  if (!req || !resp) {
    fprintf(stderr, "srt-gw: the unix socket supervisor is out of memory; stopping the jail\n");
    _exit(125);
  }
  for (;;) {
    memset(req, 0, request_size);
    if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
      /* ENOENT: the command's call ended (a signal, or it died) before it was received. */
      if (errno == EINTR || errno == ENOENT) continue;
      fprintf(stderr, "srt-gw: the unix socket supervisor stopped: %s; stopping the jail\n", strerror(errno));
      _exit(125);
    }
    /* The last idle worker took this call: start another, so a call that blocks never holds up
     * the next one. */
    if (atomic_fetch_sub(&idle_workers, 1) == 1) start_worker();
    answer(req, resp);
    atomic_fetch_add(&idle_workers, 1);
  }
  return NULL;
}

static int start_worker(void) {
  if (atomic_fetch_add(&total_workers, 1) >= MAX_WORKERS) {
    atomic_fetch_sub(&total_workers, 1);
    return 0;
  }
  atomic_fetch_add(&idle_workers, 1);
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attributes, 256 * 1024);
  /* Workers inherit the creator's signal mask: every signal stays with the init's main thread. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_t thread;
  int error = pthread_create(&thread, &attributes, worker, NULL);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  pthread_attr_destroy(&attributes);
  if (error) {
    atomic_fetch_sub(&idle_workers, 1);
    atomic_fetch_sub(&total_workers, 1);
    errno = error;
    return -1;
  }
  return 0;
}

int unix_socket_supervisor_start(int listener, char *const *allowed) {
  struct seccomp_notif_sizes sizes;
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -1;
  /* The kernel writes its own struct size, which may be larger than this build's. */
  request_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
  response_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? sizes.seccomp_notif_resp : sizeof(struct seccomp_notif_resp);
  listener_fd = listener;
  allowed_paths = allowed;
  return start_worker();
}

/* ------------------------------------------------------------ the filter ------------------ */

int unix_socket_filter_install(char *error) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL) {
    snprintf(error, 256, "seccomp_init failed");
    return -1;
  }
  /* sendto without a destination (send(), write-like) is the data path of every connected
   * socket and cannot reach a new peer: it stays in the kernel. */
  if (seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(connect), 0) < 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendto), 1, SCMP_A4(SCMP_CMP_NE, 0)) < 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendmsg), 0) < 0 ||
      seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendmmsg), 0) < 0) {
    snprintf(error, 256, "a seccomp notification rule was refused (libseccomp older than 2.5?)");
    seccomp_release(ctx);
    return -1;
  }
  int rc = seccomp_load(ctx);
  if (rc < 0) {
    snprintf(error, 256, "loading the unix socket filter failed: %s (needs Linux 5.0 or later)", strerror(-rc));
    seccomp_release(ctx);
    return -1;
  }
  int fd = seccomp_notify_fd(ctx);
  seccomp_release(ctx);
  if (fd < 0) {
    snprintf(error, 256, "the unix socket filter has no listener descriptor");
    return -1;
  }
  return fd;
}

/* ------------------------------------------------------------ probe (doctor) -------------- */

int unix_socket_supervisor_probe(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 0) printf("landlock-abi none\n");
  else printf("landlock-abi %ld\n", abi);
  const char *missing = NULL;
  if (syscall(SYS_pidfd_getfd, -1, 0, 0) < 0 && errno == ENOSYS) missing = "pidfd_getfd (Linux 5.6)";
  else if (syscall(SYS_openat2, -1, "", NULL, 0) < 0 && errno == ENOSYS) missing = "openat2 (Linux 5.6)";
  if (!missing) {
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) missing = "sock_diag netlink sockets";
    else close(nl);
  }
  if (!missing) {
    /* A listener is made in a child, which then exits: the filter must not stay on this process. */
    pid_t child = fork();
    if (child == 0) {
      char error[256];
      int fd = unix_socket_filter_install(error);
      if (fd < 0) fprintf(stderr, "%s\n", error);
      _exit(fd < 0);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      missing = "seccomp user notification (Linux 5.0, libseccomp 2.5)";
  }
  if (missing) {
    printf("unix-sockets unavailable: this kernel lacks %s\n", missing);
    return 1;
  }
  printf("unix-sockets seccomp-user-notification\n");
  return 0;
}
