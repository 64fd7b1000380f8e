/*
 * shmlink.h: the shmlink protocol, version 1 (PROTOCOL.md), in C99 for
 * Linux, with no dependency beyond libc.
 *
 * A link joins a client and a server on one machine: two rings in shared
 * memory, one per direction, carry whole messages of any size; a unix
 * socket carries the handshake and tells each side when the other is gone.
 * This library speaks the protocol with the Go package
 * github.com/shmlink/shmlink, either side with either side.
 *
 * Every call returns SHMLINK_OK (0) or a negative shmlink_result;
 * shmlink_last_error() says more about the last failure of the calling
 * thread. Timeouts are in milliseconds: negative waits forever, 0 does not
 * wait at all (SHMLINK_AGAIN: then wait for shmlink_fd to be readable).
 *
 * Threads: one thread may send while another receives on the same link;
 * two senders, or two receivers, need a lock of the caller's. Close and
 * redial a link while no other call on it runs. While any link is open the
 * library runs one thread of its own (all signals blocked), which frees a
 * doorbell ring that a hostile peer made block (PROTOCOL.md, 4.3); with a
 * glibc older than 2.34, link with -pthread.
 */
#ifndef SHMLINK_H
#define SHMLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMLINK_PROTOCOL_VERSION 1

enum shmlink_result {
	SHMLINK_OK = 0,
	SHMLINK_EOF = -1,          /* recv: the peer closed cleanly, all it sent is read */
	SHMLINK_PEER_CLOSED = -2,  /* send: the peer closed the link cleanly */
	SHMLINK_PEER_LOST = -3,    /* the peer vanished without closing (it died) */
	SHMLINK_AGAIN = -4,        /* timeout 0 and nothing to do now */
	SHMLINK_TIMEOUT = -5,      /* the timeout passed */
	SHMLINK_CORRUPT = -6,      /* the peer broke the protocol: the link is failed */
	SHMLINK_HANDSHAKE = -7,    /* the handshake failed, or a bad control packet */
	SHMLINK_NO_SERVER = -8,    /* nobody listens on the name */
	SHMLINK_IN_USE = -9,       /* listen: a live server has the name */
	SHMLINK_PERMISSION = -10,  /* the peer runs as another user, or access denied */
	SHMLINK_TOO_LARGE = -11,   /* send: over the peer's limit, nothing sent;
	                              recv: over ours, the message is skipped */
	SHMLINK_SHORT_BUFFER = -12,/* recv: *len is the size needed; nothing consumed */
	SHMLINK_INVALID = -13,     /* a bad name, configuration or call */
	SHMLINK_SYSTEM = -14       /* a system call failed; errno says why */
};

/* A constant description of a result. */
const char *shmlink_strerror(int result);
/* Details of the calling thread's last failure (never NULL). */
const char *shmlink_last_error(void);

/* Zero fields take their defaults. A NULL configuration is all defaults. */
struct shmlink_config {
	uint64_t ring_size;   /* client: bytes per ring, a power of two in
	                         [4096, 2^30]; default 2 MiB */
	uint64_t max_message; /* the largest message this side accepts
	                         (announced to the peer); default 1 GiB */
	int spin_us;          /* how long a waiter polls before it sleeps;
	                         default 100; negative: never spin */
	int handshake_ms;     /* bound on a handshake (both sides); default 5000 */
	int keep;             /* client: keep the link's memory when the server
	                         goes, for shmlink_redial */
};

typedef struct shmlink_listener shmlink_listener;
typedef struct shmlink_conn shmlink_conn;

/*
 * Names: a plain name ([A-Za-z0-9._+@:-], 1 to 64 bytes, not starting with
 * '.') lives in $SHMLINK_DIR, else $XDG_RUNTIME_DIR/shmlink, else
 * $TMPDIR/shmlink-UID (/tmp if TMPDIR is unset), created with mode 0700; a
 * name that starts with '/' is the socket path itself.
 */

/* Listen on name. A stale name left by a dead server is taken over. */
int shmlink_listen(const char *name, const struct shmlink_config *cfg,
                   shmlink_listener **out);
/* Accept the next link. Probes are answered, refused clients rejected and
 * connections that end before their first packet dropped, all inside, one
 * handshake at a time: a client that stalls holds up the next one for up
 * to handshake_ms. Only clients of this process's own user are admitted. */
int shmlink_accept(shmlink_listener *l, int timeout_ms, shmlink_conn **out);
/* Readable when a client is connecting. */
int shmlink_listener_fd(const shmlink_listener *l);
/* Stop listening and remove the socket file, if it is still ours. Links
 * already accepted stay up. */
void shmlink_listener_close(shmlink_listener *l);

/* Open a link to the server on name. wait_ms bounds the wait for a server
 * to appear (inotify on its directory): 0 fails at once with
 * SHMLINK_NO_SERVER. The handshake itself is bounded by handshake_ms. */
int shmlink_dial(const char *name, const struct shmlink_config *cfg,
                 int wait_ms, shmlink_conn **out);
/* A client with keep set, whose server has gone (closed or lost), hands
 * the same memory to the next server on the name: nothing committed to the
 * rings is lost (PROTOCOL.md, 7.1). Sends while no server is up go into
 * the ring as long as it has room. */
int shmlink_redial(shmlink_conn *c, int wait_ms);

/* Send one whole message, waiting for room in the ring up to timeout_ms. A
 * message cut off by the timeout is abandoned: the peer never sees it. */
int shmlink_send(shmlink_conn *c, const void *msg, size_t len, int timeout_ms);
/* Receive the next message into buf. If it does not fit, returns
 * SHMLINK_SHORT_BUFFER with *len set to its length, consuming nothing. */
int shmlink_recv(shmlink_conn *c, void *buf, size_t cap, size_t *len,
                 int timeout_ms);
/* Receive the next message in a buffer from malloc (free it), which grows
 * with the bytes received, not with the length the peer claims. */
int shmlink_recv_alloc(shmlink_conn *c, void **msg, size_t *len,
                       int timeout_ms);

/* A descriptor for poll/epoll, readable when a call that returned
 * SHMLINK_AGAIN may get further, or the peer has gone: then retry that
 * call (recv until it returns SHMLINK_AGAIN again). Only one thread may use
 * a link through it. */
int shmlink_fd(shmlink_conn *c);
/* SHMLINK_OK while the peer is there, else why not: SHMLINK_PEER_CLOSED,
 * SHMLINK_PEER_LOST, SHMLINK_CORRUPT or SHMLINK_HANDSHAKE. It reads the
 * control socket first, so it is current. */
int shmlink_status(shmlink_conn *c);
/* The peer's process id, as it announced it. */
int shmlink_peer_pid(const shmlink_conn *c);
/* Say goodbye after the last message sent, and free everything. */
void shmlink_close(shmlink_conn *c);

struct shmlink_info {
	int pid;          /* the server's process id */
	int clients;      /* links it has accepted and not closed */
	int64_t since_ns; /* when it started listening, Unix nanoseconds */
};
/* Ask the server on name who it is; it does not count as a client. */
int shmlink_probe(const char *name, int timeout_ms, struct shmlink_info *info);

/* The socket path of name (creating the name directory if needed). */
int shmlink_path(const char *name, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
