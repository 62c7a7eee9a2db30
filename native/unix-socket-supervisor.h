/*
 * The jail's unix socket supervisor: keeps the command off pathname unix sockets it did not
 * create (a docker socket, an ssh or gpg agent, /dev/log) unless the policy lists them
 * (jail.allowUnixSockets). See unix-socket-supervisor.c for how and why.
 */
#ifndef SRT_GW_UNIX_SOCKET_SUPERVISOR_H
#define SRT_GW_UNIX_SOCKET_SUPERVISOR_H

/*
 * Installs, in the calling process (inherited by every child it forks from then on), a seccomp
 * filter that hands connect, sendto with a destination, sendmsg and sendmmsg to the supervisor.
 * Returns the filter's listener descriptor, or -1 with a message in `error` (size 256).
 */
int unix_socket_filter_install(char *error);

/*
 * Starts the supervisor threads in the calling process; they answer `listener`'s notifications
 * until the process exits. `allowed` is a NULL-terminated list of socket paths (in the caller's
 * filesystem view) the command may connect to besides the sockets bound inside the jail.
 * Returns 0, or -1 with errno set.
 */
int unix_socket_supervisor_start(int listener, char *const *allowed);

/* Prints what the supervisor needs and whether this kernel has it (for `srt-gw doctor`);
 * returns 0 when the supervisor can run. */
int unix_socket_supervisor_probe(void);

#endif
