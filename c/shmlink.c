/*
 * shmlink.c: the shmlink protocol, version 1, for Linux (see shmlink.h and
 * PROTOCOL.md, whose section numbers the comments cite).
 *
 * Everything the peer writes to shared memory is copied out before it is
 * used, and validated as the Go implementation does: indices, chunk headers,
 * message lengths. A peer that breaks a rule gets the link failed with
 * SHMLINK_CORRUPT, never a read outside the mapping or an allocation it
 * merely claimed.
 */
#define _GNU_SOURCE
#include "shmlink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shmlink segment is little-endian (PROTOCOL.md): this target is not"
#endif

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif

/* Layout (3, 4, 5). */
#define HDR_SIZE 4096
#define MIN_RING 4096ULL
#define MAX_RING (1ULL << 30)
#define CTL_OFF 1024
#define CTL_SIZE 512
#define DEF_RING (2ULL << 20) /* as Go's DefaultRingSize; docs/copy.md says why */
#define DEF_MAX (1ULL << 30)
#define MAX_SOCK 107 /* sun_path less its NUL */
#define MAX_NAME 64
#define MAX_REASON 200
#define PKT_MAX 256 /* every version's first packet fits (6) */
#define MAX_FDS 8   /* room for more descriptors than allowed, to see an excess */
#define FIRST_ALLOC (64U << 10)

enum { T_HELLO = 1, T_WELCOME, T_REJECT, T_BYE, T_PROBE, T_INFO };
enum { F_BEGIN = 1, F_END = 2, F_PAD = 4, F_ABORT = 8, F_DEFINED = 15 };
enum { R_VERSION = 1, R_PERMISSION = 2, R_BAD = 3, R_CLOSING = 4 };
enum { ST_OPEN, ST_CLOSED, ST_LOST, ST_FAILED }; /* how a session stands */

/* ---- errors ---------------------------------------------------------- */

static __thread char last_err[256];

static int fail(int code, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err, sizeof last_err, fmt, ap);
	va_end(ap);
	errno = e;
	return code;
}

static int sysfail(const char *what)
{
	char b[128];
	return fail(SHMLINK_SYSTEM, "%s: %s", what, strerror_r(errno, b, sizeof b));
}

const char *shmlink_last_error(void) { return last_err; }

const char *shmlink_strerror(int r)
{
	switch (r) {
	case SHMLINK_OK: return "ok";
	case SHMLINK_EOF: return "end of stream: the peer closed the link";
	case SHMLINK_PEER_CLOSED: return "peer closed the link";
	case SHMLINK_PEER_LOST: return "peer lost";
	case SHMLINK_AGAIN: return "nothing to do now";
	case SHMLINK_TIMEOUT: return "timed out";
	case SHMLINK_CORRUPT: return "corrupt shared memory";
	case SHMLINK_HANDSHAKE: return "handshake failed";
	case SHMLINK_NO_SERVER: return "no server listening";
	case SHMLINK_IN_USE: return "name in use by a live server";
	case SHMLINK_PERMISSION: return "peer not permitted";
	case SHMLINK_TOO_LARGE: return "message too large";
	case SHMLINK_SHORT_BUFFER: return "short buffer";
	case SHMLINK_INVALID: return "invalid argument";
	case SHMLINK_SYSTEM: return "system call failed";
	}
	return "unknown result";
}

/* ---- time: deadlines are -1 (none), 0 (do not wait) or monotonic ns --- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t deadline_of(int ms)
{
	return ms < 0 ? -1 : ms == 0 ? 0 : now_ns() + (int64_t)ms * 1000000;
}

static int poll_ms(int64_t dl)
{
	int64_t left;
	if (dl <= 0)
		return (int)dl;
	left = (dl - now_ns() + 999999) / 1000000;
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* poll one descriptor until readable or dl: 1 readable, 0 not, -1 error. */
static int wait_readable(int fd, int64_t dl)
{
	struct pollfd p;
	int n;
	do {
		p.fd = fd;
		p.events = POLLIN;
		n = poll(&p, 1, poll_ms(dl));
	} while (n < 0 && errno == EINTR);
	return n;
}

/* ---- little-endian fields --------------------------------------------- */

static uint16_t get16(const unsigned char *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t get32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get64(const unsigned char *b) { return get32(b) | (uint64_t)get32(b + 4) << 32; }
static void put16(unsigned char *b, uint16_t v) { b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *b, uint32_t v)
{
	put16(b, (uint16_t)v);
	put16(b + 2, (uint16_t)(v >> 16));
}
static void put64(unsigned char *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b + 4, (uint32_t)(v >> 32));
}
static uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }
static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- names (2) --------------------------------------------------------- */

/* Lexical clean of p into out (cap > strlen(p) + 1), as Go's path.Clean:
 * no "//", ".", inner ".." or trailing "/". */
static void clean_path(const char *p, char *out)
{
	size_t n = strlen(p), r = 0, w = 0, dotdot = 0;
	int rooted = n > 0 && p[0] == '/';
	if (rooted)
		out[w++] = '/', r = 1, dotdot = 1;
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			while (r < n && p[r] != '/')
				out[w++] = p[r++];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = 0;
}

/* The directory of plain names, created 0700 if missing and refused if
 * another user owns it or others may enter it. */
static int runtime_dir(char *out, size_t cap)
{
	char raw[PATH_MAX];
	const char *e = getenv("SHMLINK_DIR");
	struct stat st;
	int n;
	if (e && *e) {
		n = snprintf(raw, sizeof raw, "%s", e);
	} else if ((e = getenv("XDG_RUNTIME_DIR")) && e[0] == '/') {
		n = snprintf(raw, sizeof raw, "%s/shmlink", e);
	} else {
		const char *t = getenv("TMPDIR");
		n = snprintf(raw, sizeof raw, "%s/shmlink-%u", t && *t ? t : "/tmp", (unsigned)getuid());
	}
	if (n < 0 || (size_t)n + 2 > cap || (size_t)n + 2 > sizeof raw)
		return fail(SHMLINK_INVALID, "name directory path too long");
	/* $SHMLINK_DIR goes to the kernel as given, the others cleaned, as Go
	 * does; the socket path is cleaned in any case. */
	if (!(e = getenv("SHMLINK_DIR")) || !*e) {
		char c[sizeof raw];
		clean_path(raw, c);
		memcpy(raw, c, strlen(c) + 1);
	}
	if (mkdir(raw, 0700) < 0 && errno != EEXIST)
		return sysfail("create name directory");
	if (lstat(raw, &st) < 0)
		return sysfail("name directory");
	clean_path(raw, out);
	if (!S_ISDIR(st.st_mode))
		return fail(SHMLINK_INVALID, "name directory %s is not a directory", out);
	if (st.st_uid != getuid())
		return fail(SHMLINK_PERMISSION, "name directory %s is owned by uid %u", out, (unsigned)st.st_uid);
	if (st.st_mode & 077)
		return fail(SHMLINK_PERMISSION, "name directory %s has mode %o", out, (unsigned)(st.st_mode & 0777));
	return SHMLINK_OK;
}

static int valid_plain(const char *s)
{
	size_t i, n = strlen(s);
	if (n < 1 || n > MAX_NAME || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      strchr("._+@:-", ch)))
			return 0;
	}
	return 1;
}

int shmlink_path(const char *name, char *buf, size_t cap)
{
	char dir[PATH_MAX], joined[PATH_MAX + MAX_NAME + 8], clean[sizeof joined];
	int r;
	if (!name || !buf)
		return fail(SHMLINK_INVALID, "no name");
	if (name[0] == '/') {
		if (strlen(name) > MAX_SOCK)
			return fail(SHMLINK_INVALID, "%s: a path must be at most %d bytes", name, MAX_SOCK);
		clean_path(name, clean);
		if (strcmp(clean, name) != 0)
			return fail(SHMLINK_INVALID, "%s: a path must be clean", name);
	} else {
		if (!valid_plain(name))
			return fail(SHMLINK_INVALID, "invalid link name \"%s\"", name);
		if ((r = runtime_dir(dir, sizeof dir)) != SHMLINK_OK)
			return r;
		snprintf(joined, sizeof joined, "%s/%s.sock", dir, name);
		clean_path(joined, clean);
		if (strlen(clean) > MAX_SOCK)
			return fail(SHMLINK_INVALID, "socket path %s exceeds %d bytes", clean, MAX_SOCK);
	}
	if (strlen(clean) >= cap)
		return fail(SHMLINK_INVALID, "buffer too small for the path");
	memcpy(buf, clean, strlen(clean) + 1);
	return SHMLINK_OK;
}

static void dir_of(const char *path, char *out)
{
	char *slash;
	strcpy(out, path);
	slash = strrchr(out, '/');
	if (slash == out)
		out[1] = 0;
	else if (slash)
		*slash = 0;
	else
		strcpy(out, ".");
}

/* An exclusive flock on the directory of path; the kernel drops it if the
 * process dies. Returns the descriptor to close, or -1. */
static int lock_dir(const char *path)
{
	char dir[MAX_SOCK + 2];
	int fd;
	dir_of(path, dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, path, strlen(path) + 1);
}

/* ---- control packets (5) ------------------------------------------------ */

struct pkt {
	unsigned char b[PKT_MAX];
	size_t n;
	int fds[MAX_FDS];
	int nfds;
	int trunc; /* the packet or its descriptors did not fit */
};

static size_t pkt_header(unsigned char *b, int type)
{
	memcpy(b, "SHLK", 4);
	b[4] = (unsigned char)type;
	b[5] = 0;
	put16(b + 6, SHMLINK_PROTOCOL_VERSION);
	return 8;
}

static size_t pkt_hello(unsigned char *b, int type, uint64_t max_message)
{
	pkt_header(b, type);
	put32(b + 8, (uint32_t)getpid());
	put32(b + 12, 0);
	put64(b + 16, max_message);
	return 24;
}

static void pkt_close_fds(struct pkt *p)
{
	int i;
	for (i = 0; i < p->nfds; i++)
		close(p->fds[i]);
	p->nfds = 0;
}

static int send_pkt(int s, const unsigned char *b, size_t n, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 3)];
	} u;
	struct iovec iov;
	struct msghdr m;
	ssize_t r;
	memset(&m, 0, sizeof m);
	iov.iov_base = (void *)b;
	iov.iov_len = n;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof u);
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		r = sendmsg(s, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

/* Read one packet without waiting: its length, or -1 (errno). */
static ssize_t recv_pkt(int s, struct pkt *p)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
	} u;
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	ssize_t r;
	memset(&m, 0, sizeof m);
	iov.iov_base = p->b;
	iov.iov_len = sizeof p->b;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof u.buf;
	p->nfds = 0;
	p->n = 0;
	do
		r = recvmsg(s, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		size_t i, k;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k && p->nfds < MAX_FDS; i++)
			memcpy(&p->fds[p->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	p->trunc = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
	p->n = (size_t)r;
	return r;
}

/* The header of a packet: 0 and its type and version, or -1. */
static int pkt_head(const struct pkt *p, int *type, int *version)
{
	if (p->n < 8 || memcmp(p->b, "SHLK", 4) != 0)
		return -1;
	*type = p->b[4]; /* b[5] is reserved: ignored */
	*version = get16(p->b + 6);
	return 0;
}

/* Whether a version-1 packet has exactly the length and descriptors its
 * type says, and a non-zero message limit. */
static int pkt_valid(const struct pkt *p, int type)
{
	size_t want;
	int fds = 0;
	switch (type) {
	case T_HELLO: want = 24, fds = 3; break;
	case T_WELCOME: want = 24, fds = 2; break;
	case T_REJECT:
		if (p->n < 12 || get16(p->b + 10) > MAX_REASON)
			return 0;
		want = 12 + (size_t)get16(p->b + 10);
		break;
	case T_BYE: case T_PROBE: want = 8; break;
	case T_INFO: want = 24; break;
	default: return 0;
	}
	if (p->n != want || p->nfds != fds || p->trunc)
		return 0;
	return !((type == T_HELLO || type == T_WELCOME) && get64(p->b + 16) == 0);
}

static int peer_uid(int s, struct ucred *cr)
{
	socklen_t len = sizeof *cr;
	return getsockopt(s, SOL_SOCKET, SO_PEERCRED, cr, &len);
}

/* ---- doorbells (4.2) ------------------------------------------------------ */

/* The ring watchdog. A peer shares the open file description of every
 * doorbell of a link: it can clear O_NONBLOCK on one and fill its counter,
 * and the next ring of it then blocks the ringing thread. Nothing makes
 * that one write non-blocking (pwritev2's RWF_NOWAIT is refused on an
 * eventfd, and one cannot be reopened), so a thread of the library's, alive
 * while any link is open, looks at the rings under way once a second. A
 * ring found under way at two looks, on an eventfd that is not writable,
 * is the peer's doing (an honest peer never fills a counter): the watchdog
 * marks the link hostile and empties the counter through a copy of the
 * descriptor, which lets the write through (if the peer fills it again at
 * once, a later look tries again). The ringer then fails the link, and so
 * does any later ring of the peer's doorbells, which is dropped. The
 * watchdog starts with the first link, and again at the next ring if it
 * could not (a child of fork, a failed pthread_create). */
struct ringing {
	int fd;
	int done;     /* atomic: the write has returned */
	int looked;   /* looks that found this ring under way; under watch_mu */
	int *hostile; /* the link's flag, set by the watchdog under watch_mu */
	struct ringing *next;
};

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ringing *under_way; /* under watch_mu, as the two below */
static int open_links, watchdog_up;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A child of fork has no watchdog and none of the parent's rings, and
 * watch_mu must not stay held by a thread the child does not have. */
static void watch_prepare(void) { pthread_mutex_lock(&watch_mu); }
static void watch_parent(void) { pthread_mutex_unlock(&watch_mu); }
static void watch_child(void)
{
	under_way = NULL;
	watchdog_up = 0;
	pthread_mutex_unlock(&watch_mu);
}
static void watch_atfork(void) { pthread_atfork(watch_prepare, watch_parent, watch_child); }

/* Whether a ring of fd would not block now; an error says nothing, so
 * counts as writable. */
static int writable(int fd)
{
	struct pollfd p = {fd, POLLOUT, 0};
	if (poll(&p, 1, 0) < 0)
		return 1;
	return (p.revents & POLLOUT) != 0;
}

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* Empty the counter behind a blocked ring, through dup, a copy of its
 * descriptor that the watchdog owns: the blocked write then goes through.
 * O_NONBLOCK is set again before each read, and the reads never wait
 * whatever the peer does to it (RWF_NOWAIT, which eventfd honours for
 * reads since Linux 5.12; before that, a peer that wins the race between
 * the two calls can make the watchdog wait). A peer that fills the counter
 * again at once only makes a later look try again. */
static void drain_stuck(int dup)
{
	uint64_t v;
	struct iovec io = {&v, sizeof v};
	ssize_t n;
	int i, fl;
	for (i = 0; i < 64; i++) {
		/* The flag set again serves our own waits; the read never
		 * waits, whatever the peer does to it. */
		if ((fl = fcntl(dup, F_GETFL)) >= 0 && !(fl & O_NONBLOCK))
			fcntl(dup, F_SETFL, fl | O_NONBLOCK);
		n = preadv2(dup, &io, 1, -1, RWF_NOWAIT);
		if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS))
			n = read(dup, &v, sizeof v);
		if (n < 0 && errno != EINTR)
			break; /* EAGAIN: empty, the write can go through */
		sched_yield(); /* let the ringer's write in before the next read */
	}
}

/* At most this many blocked rings are freed per look; more wait a second. */
#define DRAIN_MAX 32

static void *watchdog(void *arg)
{
	struct timespec second = {1, 0};
	struct ringing *r;
	int dups[DRAIN_MAX], n, i;
	(void)arg;
	pthread_mutex_lock(&watch_mu);
	while (open_links > 0) {
		pthread_mutex_unlock(&watch_mu);
		nanosleep(&second, NULL);
		pthread_mutex_lock(&watch_mu);
		/* r lives while watch_mu is held (its ringer takes it to leave);
		 * the drains are done without it, through copies of the
		 * descriptors, so that no other ring waits for them. */
		for (n = 0, r = under_way; r && n < DRAIN_MAX; r = r->next) {
			if (r->looked++ == 0 || __atomic_load_n(&r->done, __ATOMIC_SEQ_CST) || writable(r->fd))
				continue;
			__atomic_store_n(r->hostile, 1, __ATOMIC_SEQ_CST);
			if ((dups[n] = fcntl(r->fd, F_DUPFD_CLOEXEC, 3)) >= 0)
				n++;
		}
		if (n == 0)
			continue;
		pthread_mutex_unlock(&watch_mu);
		for (i = 0; i < n; i++) {
			drain_stuck(dups[i]);
			close(dups[i]);
		}
		pthread_mutex_lock(&watch_mu);
	}
	watchdog_up = 0;
	pthread_mutex_unlock(&watch_mu);
	return NULL;
}

/* Start the watchdog if a link is open and it is not running; with
 * watch_mu held. */
static void start_watchdog(void)
{
	pthread_t t;
	pthread_attr_t a;
	sigset_t all, old;
	if (open_links <= 0 || watchdog_up || pthread_attr_init(&a) != 0)
		return;
	/* No signal of the program's lands on our thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	watchdog_up = pthread_create(&t, &a, watchdog, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
}

/* A link opens (1) or closes (-1): the watchdog runs while any is open. */
static void watch_links(int delta)
{
	pthread_once(&atfork_once, watch_atfork);
	pthread_mutex_lock(&watch_mu);
	open_links += delta;
	start_watchdog();
	pthread_mutex_unlock(&watch_mu);
}

/* Ring fd, with the watchdog looking on. The write is a cancellation
 * point: a thread cancelled in it would leave r, on its stack, listed. */
static void ring_fd(int fd, int *hostile)
{
	uint64_t one = 1;
	ssize_t n;
	int cancel;
	struct ringing r = {fd, 0, 0, hostile, NULL}, **p;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&watch_mu);
	start_watchdog();
	r.next = under_way;
	under_way = &r;
	pthread_mutex_unlock(&watch_mu);
	n = write(fd, &one, sizeof one); /* EAGAIN: runnable anyway */
	(void)n;
	__atomic_store_n(&r.done, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&watch_mu);
	for (p = &under_way; *p != &r; p = &(*p)->next) {
	}
	*p = r.next;
	pthread_mutex_unlock(&watch_mu);
	pthread_setcancelstate(cancel, NULL);
}

static void drain_bell(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof v);
	(void)r;
}

static int is_eventfd(int fd);

/* What is wrong with a doorbell the peer handed over, or NULL. It must be
 * an eventfd (4.3), not full (an honest peer never fills one: the ring at
 * the session's start would block), and non-blocking, which is set here as
 * Go sets it (the watchdog frees a ring if the peer clears it later). */
static const char *bell_problem(int fd)
{
	int fl;
	if (!is_eventfd(fd))
		return "not an eventfd";
	if ((fl = fcntl(fd, F_GETFL)) >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (!writable(fd))
		return "its counter is full";
	return NULL;
}

static int is_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* ---- the link -------------------------------------------------------------- */

struct ring {
	unsigned char *ctl, *data;
	uint64_t size, mask;
};

#define TAILP(r) ((uint64_t *)(void *)((r)->ctl))
#define HEADP(r) ((uint64_t *)(void *)((r)->ctl + 128))
#define RSLEEP(r) ((uint32_t *)(void *)((r)->ctl + 256))
#define WSLEEP(r) ((uint32_t *)(void *)((r)->ctl + 384))

static uint64_t ld64(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void st64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static uint32_t ld32(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void st32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int ldint(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

/* A listener's count of open links, which outlives whichever of the
 * listener and its links goes last. */
struct counter {
	int refs, clients;
};

static void counter_drop(struct counter *k, int client)
{
	if (!k)
		return;
	if (client)
		__atomic_sub_fetch(&k->clients, 1, __ATOMIC_SEQ_CST);
	if (__atomic_sub_fetch(&k->refs, 1, __ATOMIC_SEQ_CST) == 0)
		free(k);
}

struct chunk {
	uint64_t len, total, hlen;
	int flags;
};

struct shmlink_conn {
	int client, keep;
	char path[MAX_SOCK + 1];
	uint64_t max_recv, max_send; /* ours, and the peer's */
	int64_t spin_ns;
	int handshake_ms;
	int peer_pid;

	unsigned char *mem;
	size_t mem_size;
	int memfd;                 /* kept by a client, to hand on again */
	int data_fd, space_fd;     /* ours: the peer rings them */
	int peer_data, peer_space; /* the peer's */
	int ctl, epfd;
	int state; /* ST_*, atomic: the reader and the writer both update it */
	int failing, fail_code;
	int hostile; /* atomic: the peer made a ring of ours block (ring_bell) */
	char fail_msg[160];
	struct counter *count;

	/* the ring this side produces */
	struct ring tx;
	uint64_t tail, seen_head;
	int pending_abort, w_armed;

	/* the ring this side consumes, and the message being read */
	struct ring rx;
	uint64_t head, seen_tail;
	int r_armed, in_msg, syncing, skipping;
	uint64_t total, got;  /* the message in progress, and the bytes of it taken */
	uint64_t need;        /* the length a SHMLINK_SHORT_BUFFER asks for */
	unsigned char *pend;  /* those bytes, between calls */
	size_t pend_cap;
};

static void set_ring(struct ring *r, unsigned char *mem, uint64_t s0, uint64_t s1, int dir)
{
	r->ctl = mem + CTL_OFF + dir * CTL_SIZE;
	r->data = mem + HDR_SIZE + (dir ? s0 : 0);
	r->size = dir ? s1 : s0;
	r->mask = r->size - 1;
}

static int fail_link(shmlink_conn *c, int code, const char *fmt, ...);

/* Ring one of our doorbells (peers 0) or of the peer's (peers 1), which
 * no longer get rung once the peer has made a ring block. */
static void ring_bell(shmlink_conn *c, int fd, int peers)
{
	if (fd < 0)
		return;
	if (!peers || !__atomic_load_n(&c->hostile, __ATOMIC_SEQ_CST))
		ring_fd(fd, &c->hostile);
	if (__atomic_load_n(&c->hostile, __ATOMIC_SEQ_CST))
		fail_link(c, SHMLINK_CORRUPT, "the peer made a doorbell block (cleared O_NONBLOCK and filled its counter)");
}

static void wake_self(shmlink_conn *c)
{
	ring_bell(c, c->data_fd, 0);
	ring_bell(c, c->space_fd, 0);
}

/* The session leaves ST_OPEN, once, for s. */
static void set_state(shmlink_conn *c, int s)
{
	int open = ST_OPEN;
	if (__atomic_compare_exchange_n(&c->state, &open, s, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		wake_self(c);
}

/* The peer broke the protocol: stop trusting it. It sees us as lost. */
static int fail_link(shmlink_conn *c, int code, const char *fmt, ...)
{
	va_list ap;
	if (__atomic_exchange_n(&c->failing, 1, __ATOMIC_SEQ_CST) == 0) {
		va_start(ap, fmt);
		vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
		va_end(ap);
		c->fail_code = code;
		__atomic_store_n(&c->state, ST_FAILED, __ATOMIC_SEQ_CST);
		if (c->ctl >= 0)
			shutdown(c->ctl, SHUT_RDWR); /* also wakes our pollers of it: a peer can steal a doorbell's ring, not this */
		wake_self(c);
	}
	while (ldint(&c->state) != ST_FAILED) /* the other thread is failing it */
		sched_yield();
	return fail(c->fail_code, "%s", c->fail_msg);
}

#define corrupt(c, ...) fail_link((c), SHMLINK_CORRUPT, "corrupt shared memory: " __VA_ARGS__)

/* Read what the control socket holds, without waiting: after the handshake
 * only BYE may come, then end of file (7). */
static void read_control(shmlink_conn *c)
{
	struct pkt p;
	int type, version;
	if (c->ctl < 0)
		return;
	for (;;) {
		ssize_t n = recv_pkt(c->ctl, &p);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				set_state(c, ST_LOST); /* ECONNRESET and the like */
			return;
		}
		if (p.nfds > 0) {
			pkt_close_fds(&p);
			fail_link(c, SHMLINK_HANDSHAKE, "descriptors after the handshake");
			return;
		}
		if (n == 0 && !p.trunc) {
			set_state(c, ST_LOST); /* end of file: no change after a BYE */
			return;
		}
		if (pkt_head(&p, &type, &version) < 0 || version != SHMLINK_PROTOCOL_VERSION || type != T_BYE ||
		    !pkt_valid(&p, T_BYE)) {
			fail_link(c, SHMLINK_HANDSHAKE, "unexpected control packet after the handshake");
			return;
		}
		set_state(c, ST_CLOSED);
	}
}

/* ---- producing (4.1, 4.2) ------------------------------------------------ */

static uint64_t free_lb(const shmlink_conn *c) { return c->tx.size - (c->tail - c->seen_head); }

/* Re-read the consumer's index: it may only move forward, up to ours. */
static int prod_free(shmlink_conn *c, uint64_t *f)
{
	uint64_t h = ld64(HEADP(&c->tx));
	if (h < c->seen_head || h > c->tail || h % 8)
		return corrupt(c, "consumer index %llu outside [%llu, %llu]", (unsigned long long)h,
		               (unsigned long long)c->seen_head, (unsigned long long)c->tail);
	c->seen_head = h;
	*f = free_lb(c);
	return SHMLINK_OK;
}

static void publish(shmlink_conn *c)
{
	st64(TAILP(&c->tx), c->tail);
	if (ld32(RSLEEP(&c->tx)) && __atomic_exchange_n(RSLEEP(&c->tx), 0, __ATOMIC_SEQ_CST)) {
		ring_bell(c, c->peer_data, 1);
		read_control(c); /* a system call anyway: see whether the peer is still there */
	}
}

static void put_chunk(unsigned char *b, uint64_t len, int flags, uint64_t total)
{
	put32(b, (uint32_t)len);
	b[4] = (unsigned char)flags;
	b[5] = b[6] = b[7] = 0;
	if (flags == F_BEGIN)
		put64(b + 8, total);
}

static int ready(shmlink_conn *c, int write, uint64_t need)
{
	if (write)
		return c->tx.size - (c->tail - ld64(HEADP(&c->tx))) >= need;
	return ld64(TAILP(&c->rx)) != c->head;
}

static int spin(shmlink_conn *c, int write, uint64_t need)
{
	int64_t start = 0;
	unsigned i;
	for (i = 1;; i++) {
		if (ready(c, write, need))
			return 1;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ __volatile__("yield");
#endif
		if ((i & 63) == 0) {
			int64_t t = now_ns();
			if (!start)
				start = t;
			else if (t - start > c->spin_ns)
				return 0;
		}
	}
}

/* Why a waiter must stop waiting, or 0. A reader whose peer has gone still
 * gets what the ring holds. */
static int stop_reason(shmlink_conn *c, int write)
{
	int st;
	read_control(c);
	st = ldint(&c->state);
	if (st == ST_FAILED)
		return fail(c->fail_code, "%s", c->fail_msg);
	if (st == ST_OPEN || (!write && ready(c, 0, 0)))
		return 0;
	if (write)
		return st == ST_CLOSED ? fail(SHMLINK_PEER_CLOSED, "peer closed the link")
		                       : fail(SHMLINK_PEER_LOST, "peer lost");
	return st == ST_CLOSED ? fail(SHMLINK_EOF, "end of stream") : fail(SHMLINK_PEER_LOST, "peer lost");
}

/* The descriptor of shmlink_fd watches a doorbell only while a call that
 * returned SHMLINK_AGAIN waits on it, so that a direction the program
 * leaves alone does not keep it readable. */
static void watch(shmlink_conn *c, int fd, int on)
{
	struct epoll_event ev;
	if (c->epfd < 0 || fd < 0)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	epoll_ctl(c->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

static void disarm(shmlink_conn *c, int write)
{
	int bell = write ? c->space_fd : c->data_fd;
	drain_bell(bell);
	st32(write ? WSLEEP(&c->tx) : RSLEEP(&c->rx), 0);
	*(write ? &c->w_armed : &c->r_armed) = 0;
	watch(c, bell, 0);
}

/* Wait until the condition may hold (SHMLINK_OK: the caller re-checks), by
 * the sleep protocol of 4.2: spin, announce, re-check, sleep on our doorbell
 * and the control socket, which rings nothing when the peer goes. */
static int wait_for(shmlink_conn *c, int write, uint64_t need, int64_t dl)
{
	uint32_t *flag = write ? WSLEEP(&c->tx) : RSLEEP(&c->rx);
	struct pollfd p[2];
	int n, r;
	if (dl != 0 && c->spin_ns > 0 && spin(c, write, need))
		return SHMLINK_OK;
	st32(flag, 1);
	if ((r = stop_reason(c, write)) != 0 || ready(c, write, need)) {
		st32(flag, 0);
		return r;
	}
	if (dl == 0) {
		*(write ? &c->w_armed : &c->r_armed) = 1; /* the flag stays: the peer rings */
		watch(c, write ? c->space_fd : c->data_fd, 1);
		return fail(SHMLINK_AGAIN, "nothing to do now");
	}
	p[0].fd = write ? c->space_fd : c->data_fd;
	p[1].fd = c->ctl; /* -1 between sessions: ignored */
	p[0].events = p[1].events = POLLIN;
	n = poll(p, 2, poll_ms(dl));
	if (n > 0 && p[0].revents)
		drain_bell(p[0].fd);
	st32(flag, 0);
	if (n == 0 && now_ns() >= dl && !ready(c, write, need))
		return fail(SHMLINK_TIMEOUT, "timed out");
	return SHMLINK_OK; /* rung, or the socket stirred: the next round says */
}

static int ensure(shmlink_conn *c, uint64_t need, int64_t dl)
{
	uint64_t f = 0;
	int r;
	if (free_lb(c) >= need)
		return SHMLINK_OK;
	for (;;) {
		if ((r = prod_free(c, &f)) != SHMLINK_OK || f >= need)
			return r;
		if ((r = wait_for(c, 1, need, dl)) != SHMLINK_OK)
			return r;
	}
}

static void pad(shmlink_conn *c, uint64_t n)
{
	put_chunk(c->tx.data + (c->tail & c->tx.mask), n - 8, F_PAD, 0);
	c->tail += n;
}

/* Tell the reader that the message in progress, if any, is abandoned. */
static void put_abort(shmlink_conn *c)
{
	put_chunk(c->tx.data + (c->tail & c->tx.mask), 0, F_ABORT, 0);
	c->tail += 8;
	publish(c);
	c->pending_abort = 0;
}

/* A message whose chunk fits half the ring goes whole, after a pad if the
 * end of the data area is near; a longer one streams in chunks of at most
 * a quarter of the ring, header included. */
static int write_message(shmlink_conn *c, const unsigned char *m, uint64_t n, int64_t dl)
{
	uint64_t full = 8 + align8(n), quarter = c->tx.size / 4, sent = 0;
	int r;
	if (c->pending_abort) {
		if ((r = ensure(c, 8, dl)) != SHMLINK_OK)
			return r;
		put_abort(c);
	}
	if (full <= c->tx.size / 2) {
		uint64_t to_end = c->tx.size - (c->tail & c->tx.mask);
		unsigned char *b;
		if ((r = ensure(c, full + (to_end < full ? to_end : 0), dl)) != SHMLINK_OK)
			return r;
		if (to_end < full)
			pad(c, to_end);
		b = c->tx.data + (c->tail & c->tx.mask);
		put_chunk(b, n, F_BEGIN | F_END, 0);
		if (n)
			memcpy(b + 8, m, n);
		c->tail += full;
		publish(c);
		return SHMLINK_OK;
	}
	while (sent < n) {
		uint64_t rem = n - sent, hl = sent ? 8 : 16, to_end = c->tx.size - (c->tail & c->tx.mask);
		uint64_t want = min64(hl + align8(rem), quarter), room, len;
		int flags = sent ? 0 : F_BEGIN;
		unsigned char *b;
		if (to_end < want && to_end < hl + 64) {
			if ((r = ensure(c, to_end, dl)) != SHMLINK_OK)
				goto cut;
			pad(c, to_end);
			continue;
		}
		if ((r = ensure(c, min64(want, to_end), dl)) != SHMLINK_OK)
			goto cut;
		room = min64(min64(free_lb(c), to_end), quarter);
		len = min64(rem, room - hl);
		if (len == rem)
			flags |= F_END;
		b = c->tx.data + (c->tail & c->tx.mask);
		put_chunk(b, len, flags, n);
		hl = flags == F_BEGIN ? 16 : 8;
		memcpy(b + hl, m + sent, len);
		c->tail += hl + align8(len);
		publish(c);
		sent += len;
	}
	return SHMLINK_OK;
cut:
	c->pending_abort = sent > 0; /* the next message tells the reader */
	return r;
}

/* ---- consuming (4, 4.1) ------------------------------------------------------ */

static int refresh(shmlink_conn *c)
{
	uint64_t t = ld64(TAILP(&c->rx));
	if (t < c->seen_tail || t - c->head > c->rx.size || t % 8)
		return corrupt(c, "producer index %llu outside [%llu, %llu]", (unsigned long long)t,
		               (unsigned long long)c->seen_tail, (unsigned long long)(c->head + c->rx.size));
	c->seen_tail = t;
	return SHMLINK_OK;
}

/* Decode the chunk at our index: 1 and the chunk, 0 if the ring is empty,
 * or an error. The header is copied once out of shared memory; every
 * decision is taken on the copy. */
static int peek(shmlink_conn *c, struct chunk *h)
{
	unsigned char raw[16];
	uint64_t off, avail;
	int r;
	if (c->seen_tail == c->head) {
		if ((r = refresh(c)) != SHMLINK_OK)
			return r;
		if (c->seen_tail == c->head)
			return 0;
	}
	off = c->head & c->rx.mask;
	avail = min64(c->seen_tail - c->head, c->rx.size - off);
	if (avail < 8)
		return corrupt(c, "chunk header cut short: %llu bytes", (unsigned long long)avail);
	memcpy(raw, c->rx.data + off, avail < 16 ? 8 : 16);
	h->len = get32(raw);
	h->flags = raw[4] & F_DEFINED; /* other bits, and bytes 5-7, are reserved */
	h->hlen = 8;
	h->total = h->len;
	switch (h->flags) {
	case F_BEGIN | F_END: case 0: case F_END: case F_PAD:
		break;
	case F_BEGIN:
		if (avail < 16)
			return corrupt(c, "long chunk header cut short: %llu bytes", (unsigned long long)avail);
		h->hlen = 16;
		h->total = get64(raw + 8);
		if (h->total <= h->len)
			return corrupt(c, "first chunk of %llu bytes claims a message of %llu",
			               (unsigned long long)h->len, (unsigned long long)h->total);
		break;
	case F_ABORT:
		if (h->len != 0)
			return corrupt(c, "abort chunk with %llu bytes of payload", (unsigned long long)h->len);
		break;
	default:
		return corrupt(c, "invalid chunk flags %#x", h->flags);
	}
	if (h->hlen + align8(h->len) > avail)
		return corrupt(c, "chunk of %llu bytes overruns the %llu readable bytes",
		               (unsigned long long)(h->hlen + align8(h->len)), (unsigned long long)avail);
	return 1;
}

static const unsigned char *payload(const shmlink_conn *c, const struct chunk *h)
{
	return c->rx.data + (c->head & c->rx.mask) + h->hlen;
}

static void release(shmlink_conn *c, const struct chunk *h)
{
	c->head += h->hlen + align8(h->len);
	st64(HEADP(&c->rx), c->head);
	if (ld32(WSLEEP(&c->rx)) && __atomic_exchange_n(WSLEEP(&c->rx), 0, __ATOMIC_SEQ_CST))
		ring_bell(c, c->peer_space, 1);
}

static int grow_pend(shmlink_conn *c, uint64_t need)
{
	size_t cap;
	unsigned char *b;
	if (c->pend_cap >= need)
		return SHMLINK_OK;
	cap = c->pend_cap ? c->pend_cap * 2 : FIRST_ALLOC;
	if (cap < need)
		cap = (size_t)need;
	if (cap > c->total)
		cap = (size_t)c->total;
	if (!(b = realloc(c->pend, cap)))
		return sysfail("allocate message");
	c->pend = b;
	c->pend_cap = cap;
	return SHMLINK_OK;
}

static int short_buffer(shmlink_conn *c, uint64_t need)
{
	c->need = need;
	return fail(SHMLINK_SHORT_BUFFER, "next message needs %llu bytes", (unsigned long long)need);
}

/* The next message, into buf (cap bytes) or, if alloc, into pend. A message
 * begun by an earlier call that was cut off waits in pend. */
static int read_message(shmlink_conn *c, unsigned char *buf, size_t cap, int alloc, int64_t dl)
{
	struct chunk h = {0, 0, 0, 0};
	uint64_t end;
	int r;
	if (ldint(&c->state) == ST_FAILED)
		return fail(c->fail_code, "%s", c->fail_msg);
	if (c->r_armed)
		disarm(c, 0);
	if (!alloc && c->in_msg && !c->skipping) {
		if (c->total > cap)
			return short_buffer(c, c->total);
		if (c->got)
			memcpy(buf, c->pend, (size_t)c->got);
	}
	for (;;) {
		if ((r = peek(c, &h)) < 0)
			return r;
		if (r == 0) {
			if ((r = wait_for(c, 0, 0, dl)) == SHMLINK_OK)
				continue;
			if (!alloc && c->in_msg && !c->skipping && c->got) {
				int g = grow_pend(c, c->got); /* keep what was taken */
				if (g != SHMLINK_OK)
					return fail_link(c, g, "%s", last_err);
				memcpy(c->pend, buf, (size_t)c->got);
			}
			return r;
		}
		if (h.flags == F_PAD || h.flags == F_ABORT) {
			release(c, &h);
			if (h.flags == F_ABORT)
				c->in_msg = c->skipping = 0;
			continue;
		}
		if (h.flags & F_BEGIN) {
			if (c->in_msg && !c->syncing)
				return corrupt(c, "message begins inside another (%llu of %llu bytes read)",
				               (unsigned long long)c->got, (unsigned long long)c->total);
			if (h.total > c->max_recv) {
				c->syncing = 0;
				c->total = h.total;
				c->got = h.len;
				c->in_msg = c->skipping = !(h.flags & F_END);
				release(c, &h);
				return fail(SHMLINK_TOO_LARGE, "message of %llu bytes over the limit of %llu; skipped",
				            (unsigned long long)h.total, (unsigned long long)c->max_recv);
			}
			if (!alloc && h.total > cap)
				return short_buffer(c, h.total);
			c->syncing = 0;
			c->total = h.total;
			c->got = 0;
			c->in_msg = 1;
		} else if (!c->in_msg) {
			if (c->syncing) { /* attached mid-message: skip to the next BEGIN (7.1) */
				release(c, &h);
				continue;
			}
			return corrupt(c, "continuation chunk outside a message");
		}
		end = c->got + h.len;
		if (end > c->total || ((h.flags & F_END) && end != c->total))
			return corrupt(c, "chunk of %llu bytes at %llu does not fit a message of %llu",
			               (unsigned long long)h.len, (unsigned long long)c->got, (unsigned long long)c->total);
		if (!c->skipping && h.len) {
			if (alloc && (r = grow_pend(c, end)) != SHMLINK_OK)
				return fail_link(c, r, "%s", last_err);
			memcpy((alloc ? c->pend : buf) + c->got, payload(c, &h), (size_t)h.len);
		}
		c->got = end;
		release(c, &h);
		if (!(h.flags & F_END))
			continue;
		c->in_msg = 0;
		if (c->skipping) {
			c->skipping = 0;
			continue;
		}
		return SHMLINK_OK;
	}
}

int shmlink_recv(shmlink_conn *c, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	int r;
	if (!c || !len || (!buf && cap))
		return fail(SHMLINK_INVALID, "recv: bad arguments");
	r = read_message(c, buf, cap, 0, deadline_of(timeout_ms));
	if (r == SHMLINK_OK)
		*len = (size_t)c->got;
	else if (r == SHMLINK_SHORT_BUFFER)
		*len = c->need > SIZE_MAX ? SIZE_MAX : (size_t)c->need;
	return r;
}

int shmlink_recv_alloc(shmlink_conn *c, void **msg, size_t *len, int timeout_ms)
{
	int r;
	if (!c || !msg || !len)
		return fail(SHMLINK_INVALID, "recv: bad arguments");
	r = read_message(c, NULL, 0, 1, deadline_of(timeout_ms));
	if (r != SHMLINK_OK)
		return r;
	*len = (size_t)c->got;
	*msg = c->pend ? (void *)c->pend : malloc(1);
	c->pend = NULL;
	c->pend_cap = 0;
	return *msg ? SHMLINK_OK : sysfail("allocate message");
}

int shmlink_send(shmlink_conn *c, const void *msg, size_t len, int timeout_ms)
{
	int st;
	if (!c || (!msg && len))
		return fail(SHMLINK_INVALID, "send: bad arguments");
	if (c->w_armed)
		disarm(c, 1);
	st = ldint(&c->state);
	if (st == ST_FAILED)
		return fail(c->fail_code, "%s", c->fail_msg);
	if (st != ST_OPEN && !c->keep)
		return st == ST_CLOSED ? fail(SHMLINK_PEER_CLOSED, "peer closed the link")
		                       : fail(SHMLINK_PEER_LOST, "peer lost");
	if ((uint64_t)len > c->max_send)
		return fail(SHMLINK_TOO_LARGE, "%zu bytes, peer accepts at most %llu", len,
		            (unsigned long long)c->max_send);
	return write_message(c, msg, (uint64_t)len, deadline_of(timeout_ms));
}

/* ---- setting a link up (3, 6) ---------------------------------------------- */

static shmlink_conn *conn_new(const struct shmlink_config *cfg, int client)
{
	shmlink_conn *c = calloc(1, sizeof *c);
	if (!c) {
		sysfail("allocate link");
		return NULL;
	}
	watch_links(1); /* shmlink_close undoes it */
	c->client = client;
	c->keep = client && cfg && cfg->keep;
	c->max_recv = cfg && cfg->max_message ? cfg->max_message : DEF_MAX;
	c->max_send = DEF_MAX;
	c->spin_ns = (int64_t)(cfg && cfg->spin_us ? cfg->spin_us : 100) * 1000;
	c->handshake_ms = cfg && cfg->handshake_ms > 0 ? cfg->handshake_ms : 5000;
	c->memfd = c->data_fd = c->space_fd = c->peer_data = c->peer_space = c->ctl = c->epfd = -1;
	c->state = ST_LOST; /* no session yet */
	if ((c->data_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (c->space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		sysfail("eventfd");
		shmlink_close(c);
		return NULL;
	}
	return c;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void end_session(shmlink_conn *c)
{
	close_fd(&c->ctl);
	close_fd(&c->peer_data);
	close_fd(&c->peer_space);
}

/* The session is up: ring the peer once, for wake-ups dropped while there
 * was no session, and watch the new socket. */
static void start_session(shmlink_conn *c, int s, int bell_data, int bell_space)
{
	c->ctl = s;
	c->peer_data = bell_data;
	c->peer_space = bell_space;
	__atomic_store_n(&c->hostile, 0, __ATOMIC_SEQ_CST); /* a new peer */
	__atomic_store_n(&c->state, ST_OPEN, __ATOMIC_SEQ_CST);
	ring_bell(c, c->peer_data, 1);
	ring_bell(c, c->peer_space, 1);
	watch(c, s, 1);
}

void shmlink_close(shmlink_conn *c)
{
	if (!c)
		return;
	if (c->ctl >= 0 && ldint(&c->state) == ST_OPEN) {
		unsigned char b[8];
		send_pkt(c->ctl, b, pkt_header(b, T_BYE), NULL, 0); /* after the last chunk */
	}
	end_session(c);
	close_fd(&c->data_fd);
	close_fd(&c->space_fd);
	close_fd(&c->epfd);
	close_fd(&c->memfd);
	if (c->mem)
		munmap(c->mem, c->mem_size);
	counter_drop(c->count, 1);
	free(c->pend);
	free(c);
	watch_links(-1);
}

static int client_segment(shmlink_conn *c, uint64_t ring)
{
	uint64_t size = HDR_SIZE + 2 * ring;
	if (ring < MIN_RING || ring > MAX_RING || (ring & (ring - 1)))
		return fail(SHMLINK_INVALID, "ring size %llu is not a power of two in [4096, 2^30]",
		            (unsigned long long)ring);
	c->memfd = (int)syscall(SYS_memfd_create, "shmlink", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->memfd < 0)
		return sysfail("memfd_create");
	if (ftruncate(c->memfd, (off_t)size) < 0)
		return sysfail("ftruncate segment");
	if (fcntl(c->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return sysfail("seal segment");
	c->mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return sysfail("mmap segment");
	}
	c->mem_size = (size_t)size;
	memcpy(c->mem, "SHMLINK\0", 8);
	put32(c->mem + 8, SHMLINK_PROTOCOL_VERSION);
	put32(c->mem + 12, HDR_SIZE);
	put64(c->mem + 16, size);
	put64(c->mem + 24, ring);
	put64(c->mem + 32, ring);
	set_ring(&c->tx, c->mem, ring, ring, 0);
	set_ring(&c->rx, c->mem, ring, ring, 1);
	return SHMLINK_OK;
}

static int rejected(const struct pkt *p)
{
	int code = get16(p->b + 8), n = get16(p->b + 10);
	int r = code == R_PERMISSION ? SHMLINK_PERMISSION : code == R_CLOSING ? SHMLINK_NO_SERVER : SHMLINK_HANDSHAKE;
	return fail(r, "server rejected (code %d): %.*s", code, n, (const char *)p->b + 12);
}

/* Connect to the socket at path: the descriptor, or a negative result. */
static int connect_path(const char *path)
{
	struct sockaddr_un a;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return sysfail("socket");
	unix_addr(&a, path);
	if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
		return s;
	close(s);
	if (errno == ENOENT || errno == ECONNREFUSED)
		return fail(SHMLINK_NO_SERVER, "no server listening on %s", path);
	if (errno == EACCES || errno == EPERM)
		return fail(SHMLINK_PERMISSION, "connect %s: %s", path, strerror(errno));
	return sysfail("connect");
}

/* Connect and check who answers: a server of our own user. */
static int connect_server(const char *path)
{
	struct ucred cr;
	int s = connect_path(path);
	if (s < 0)
		return s;
	if (peer_uid(s, &cr) < 0) {
		close(s);
		return sysfail("SO_PEERCRED");
	}
	if (cr.uid != getuid()) {
		close(s);
		return fail(SHMLINK_PERMISSION, "server runs as uid %u", (unsigned)cr.uid);
	}
	return s;
}

/* Wait up to ms for the answer to a packet sent on s. */
static int recv_answer(int s, struct pkt *p, int ms)
{
	int n = wait_readable(s, deadline_of(ms));
	if (n < 0)
		return sysfail("poll");
	if (n == 0)
		return fail(SHMLINK_TIMEOUT, "no answer within %d ms", ms);
	if (recv_pkt(s, p) < 0) {
		if (errno == ECONNRESET)
			return fail(SHMLINK_NO_SERVER, "server closed during the handshake");
		return sysfail("recvmsg");
	}
	if (p->n == 0 && p->nfds == 0 && !p->trunc)
		return fail(SHMLINK_NO_SERVER, "server closed during the handshake");
	return SHMLINK_OK;
}

static int handshake_client(shmlink_conn *c)
{
	unsigned char b[24];
	int fds[3], s, r, type, version;
	const char *why = NULL;
	struct pkt p;
	if ((s = connect_server(c->path)) < 0)
		return s;
	fds[0] = c->memfd, fds[1] = c->data_fd, fds[2] = c->space_fd;
	if (send_pkt(s, b, pkt_hello(b, T_HELLO, c->max_recv), fds, 3) < 0) {
		r = errno == EPIPE || errno == ECONNRESET ? fail(SHMLINK_NO_SERVER, "server closed during the handshake")
		                                          : sysfail("send hello");
		close(s);
		return r;
	}
	if ((r = recv_answer(s, &p, c->handshake_ms)) != SHMLINK_OK) {
		close(s);
		return r;
	}
	if (pkt_head(&p, &type, &version) < 0)
		r = fail(SHMLINK_HANDSHAKE, "malformed answer to hello");
	else if (version != SHMLINK_PROTOCOL_VERSION)
		r = fail(SHMLINK_HANDSHAKE, "server speaks version %d", version);
	else if (type == T_REJECT && pkt_valid(&p, T_REJECT))
		r = rejected(&p);
	else if (type != T_WELCOME || !pkt_valid(&p, T_WELCOME))
		r = fail(SHMLINK_HANDSHAKE, "malformed welcome (type %d, %zu bytes, %d descriptors)", type, p.n, p.nfds);
	else if ((why = bell_problem(p.fds[0])) || (why = bell_problem(p.fds[1])))
		r = fail(SHMLINK_HANDSHAKE, "a doorbell of the server's: %s", why);
	if (r != SHMLINK_OK) {
		pkt_close_fds(&p);
		close(s);
		return r;
	}
	c->max_send = get64(p.b + 16);
	c->peer_pid = (int)get32(p.b + 8);
	start_session(c, s, p.fds[0], p.fds[1]);
	return SHMLINK_OK;
}

/* Hand the link to the server on c->path, waiting up to wait_ms for one to
 * appear: each change in its directory triggers a retry, and a timer that
 * backs off to 100 ms covers a server seen between its bind and listen. */
static int connect_loop(shmlink_conn *c, int wait_ms)
{
	int64_t dl = deadline_of(wait_ms);
	char dir[MAX_SOCK + 2];
	int ino, r, backoff = 1;
	if (wait_ms == 0)
		return handshake_client(c);
	dir_of(c->path, dir);
	if ((ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		return sysfail("inotify_init1");
	if (inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
		r = sysfail("inotify_add_watch");
		close(ino);
		return r;
	}
	/* Watch first, then dial: a server that appears in between is seen. */
	while ((r = handshake_client(c)) == SHMLINK_NO_SERVER) {
		int t = poll_ms(dl), n;
		if (dl > 0 && t == 0) {
			r = fail(SHMLINK_NO_SERVER, "no server on %s within %d ms", c->path, wait_ms);
			break;
		}
		n = wait_readable(ino, t >= 0 && t < backoff ? dl : now_ns() + (int64_t)backoff * 1000000);
		if (n > 0) {
			char ev[4096];
			while (read(ino, ev, sizeof ev) > 0) {
			}
			backoff = 1;
		} else if (backoff < 100) {
			backoff *= 2;
		}
	}
	close(ino);
	return r;
}

int shmlink_dial(const char *name, const struct shmlink_config *cfg, int wait_ms, shmlink_conn **out)
{
	shmlink_conn *c;
	int r;
	if (!out)
		return fail(SHMLINK_INVALID, "dial: no result pointer");
	*out = NULL;
	if (!(c = conn_new(cfg, 1)))
		return SHMLINK_SYSTEM;
	if ((r = shmlink_path(name, c->path, sizeof c->path)) != SHMLINK_OK ||
	    (r = client_segment(c, cfg && cfg->ring_size ? cfg->ring_size : DEF_RING)) != SHMLINK_OK ||
	    (r = connect_loop(c, wait_ms)) != SHMLINK_OK) {
		shmlink_close(c);
		return r;
	}
	*out = c;
	return SHMLINK_OK;
}

int shmlink_redial(shmlink_conn *c, int wait_ms)
{
	int st;
	if (!c || !c->keep)
		return fail(SHMLINK_INVALID, "redial: a client with keep set only");
	read_control(c);
	st = ldint(&c->state);
	if (st == ST_FAILED)
		return fail(c->fail_code, "%s", c->fail_msg);
	if (st == ST_OPEN)
		return fail(SHMLINK_INVALID, "redial: the server is still there");
	end_session(c);
	return connect_loop(c, wait_ms);
}

/* ---- the server side ---------------------------------------------------------- */

struct shmlink_listener {
	int fd;
	char path[MAX_SOCK + 1];
	dev_t dev;
	ino_t ino;
	int64_t since_ns;
	struct shmlink_config cfg;
	struct counter *count;
};

/* A socket file at path is taken over only if it refuses connections: a
 * stale name of a dead server (2). */
static int remove_stale(const char *path)
{
	struct stat st;
	int s;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? SHMLINK_OK : sysfail("lstat socket");
	if (!S_ISSOCK(st.st_mode))
		return fail(SHMLINK_IN_USE, "%s exists and is not a socket", path);
	s = connect_path(path);
	if (s >= 0) {
		close(s);
		return fail(SHMLINK_IN_USE, "a live server listens on %s", path);
	}
	if (s != SHMLINK_NO_SERVER)
		return s; /* refused for another reason: leave the file */
	if (errno == ECONNREFUSED && unlink(path) < 0 && errno != ENOENT)
		return sysfail("remove stale socket");
	return SHMLINK_OK;
}

int shmlink_listen(const char *name, const struct shmlink_config *cfg, shmlink_listener **out)
{
	shmlink_listener *l;
	struct sockaddr_un a;
	struct stat st;
	struct timespec ts;
	int r, lock;
	if (!out)
		return fail(SHMLINK_INVALID, "listen: no result pointer");
	*out = NULL;
	if (!(l = calloc(1, sizeof *l)))
		return sysfail("allocate listener");
	l->fd = -1;
	if (cfg)
		l->cfg = *cfg;
	if ((r = shmlink_path(name, l->path, sizeof l->path)) != SHMLINK_OK)
		goto out;
	if ((lock = lock_dir(l->path)) < 0) {
		r = sysfail("lock name directory");
		goto out;
	}
	if ((r = remove_stale(l->path)) == SHMLINK_OK) {
		unix_addr(&a, l->path);
		l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&a, sizeof a) < 0)
			r = sysfail("bind");
		else if (listen(l->fd, 128) < 0 || lstat(l->path, &st) < 0)
			r = sysfail("listen");
		else
			l->dev = st.st_dev, l->ino = st.st_ino;
	}
	close(lock);
	if (r != SHMLINK_OK)
		goto out;
	if (!(l->count = calloc(1, sizeof *l->count))) {
		r = sysfail("allocate listener");
		goto out;
	}
	l->count->refs = 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->since_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	*out = l;
	return SHMLINK_OK;
out:
	if (l->fd >= 0) {
		close(l->fd);
		if (l->dev || l->ino)
			unlink(l->path);
	}
	free(l);
	return r;
}

int shmlink_listener_fd(const shmlink_listener *l) { return l ? l->fd : -1; }

void shmlink_listener_close(shmlink_listener *l)
{
	struct stat st;
	int lock;
	if (!l)
		return;
	/* Remove the file while still listening, under the lock, and only if it
	 * is still ours: a successor may have replaced it (2). */
	lock = lock_dir(l->path);
	if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	if (lock >= 0)
		close(lock);
	close(l->fd);
	counter_drop(l->count, 0);
	free(l);
}

static int reject(int s, struct pkt *p, int code, const char *fmt, ...)
{
	unsigned char b[12 + MAX_REASON + 1];
	char why[MAX_REASON + 1];
	size_t n;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	n = strlen(why);
	pkt_header(b, T_REJECT);
	put16(b + 8, (uint16_t)code);
	put16(b + 10, (uint16_t)n);
	memcpy(b + 12, why, n);
	send_pkt(s, b, 12 + n, NULL, 0);
	pkt_close_fds(p);
	close(s);
	return 0;
}

/* Check and map the segment a client sent (3, 3.1, 4): NULL, or why not. */
static const char *attach(shmlink_conn *c, int memfd)
{
	static const char *bad[] = {"segment is not a memfd", "segment lacks the shrink, grow and seal seals",
	                            "segment is not a regular memfd", "segment size out of range",
	                            "segment cannot be mapped read-write", "bad segment header",
	                            "ring indices do not fit their rings"};
	unsigned char h[40];
	struct stat st;
	uint64_t s0, s1;
	int seals = fcntl(memfd, F_GET_SEALS), need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, i;
	if (seals < 0)
		return bad[0];
	if ((seals & need) != need)
		return bad[1];
	if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode))
		return bad[2];
	if (st.st_size < HDR_SIZE || (uint64_t)st.st_size > HDR_SIZE + 2 * MAX_RING)
		return bad[3];
	c->mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return bad[4];
	}
	c->mem_size = (size_t)st.st_size;
	memcpy(h, c->mem, sizeof h); /* once: the client may keep writing */
	s0 = get64(h + 24);
	s1 = get64(h + 32);
	if (memcmp(h, "SHMLINK\0", 8) || get32(h + 8) != SHMLINK_PROTOCOL_VERSION || get32(h + 12) != HDR_SIZE ||
	    s0 < MIN_RING || s0 > MAX_RING || (s0 & (s0 - 1)) || s1 < MIN_RING || s1 > MAX_RING || (s1 & (s1 - 1)) ||
	    get64(h + 16) != HDR_SIZE + s0 + s1 || get64(h + 16) != (uint64_t)st.st_size)
		return bad[5];
	set_ring(&c->rx, c->mem, s0, s1, 0);
	set_ring(&c->tx, c->mem, s0, s1, 1);
	for (i = 0; i < 2; i++) {
		struct ring *r = i ? &c->tx : &c->rx;
		uint64_t head = ld64(HEADP(r)), tail = ld64(TAILP(r));
		if (head > tail || tail - head > r->size || head % 8 || tail % 8)
			return bad[6];
		if (i)
			c->tail = tail, c->seen_head = head;
		else
			c->head = head, c->seen_tail = tail;
	}
	/* Resuming after a predecessor (7.1): skip the rest of a message it was
	 * reading, abandon one it may have been writing. */
	c->syncing = c->head > 0;
	if (c->tail > 0) {
		c->pending_abort = 1;
		if (free_lb(c) >= 8)
			put_abort(c);
	}
	return NULL;
}

/* Run the handshake on an accepted connection (6): 1 and a link, or 0 if
 * the connection was answered and closed (a probe, a refusal, nothing). */
static int serve(shmlink_listener *l, int s, shmlink_conn **out)
{
	struct ucred cr;
	struct pkt p;
	int type, version, n;
	shmlink_conn *c;
	const char *why;
	unsigned char b[24];
	memset(&p, 0, sizeof p);
	if (peer_uid(s, &cr) < 0 ||
	    (n = wait_readable(s, deadline_of(l->cfg.handshake_ms > 0 ? l->cfg.handshake_ms : 5000))) <= 0 ||
	    recv_pkt(s, &p) < 0 || (p.n == 0 && p.nfds == 0 && !p.trunc)) {
		close(s); /* gone, silent or empty: a liveness check, say */
		return 0;
	}
	if (p.trunc || p.nfds > 3)
		return reject(s, &p, R_BAD, "packet truncated or with too many descriptors");
	if (pkt_head(&p, &type, &version) < 0)
		return reject(s, &p, R_BAD, "malformed control packet");
	if (version != SHMLINK_PROTOCOL_VERSION)
		return reject(s, &p, R_VERSION, "version %d not supported, server speaks %d", version,
		              SHMLINK_PROTOCOL_VERSION);
	if (!pkt_valid(&p, type))
		return reject(s, &p, R_BAD, "malformed packet of type %d: %zu bytes, %d descriptors", type, p.n, p.nfds);
	if (cr.uid != getuid())
		return reject(s, &p, R_PERMISSION, "uid %u not allowed", (unsigned)cr.uid);
	if (type == T_PROBE) {
		pkt_header(b, T_INFO);
		put32(b + 8, (uint32_t)getpid());
		put32(b + 12, (uint32_t)ldint(&l->count->clients));
		put64(b + 16, (uint64_t)l->since_ns);
		send_pkt(s, b, 24, NULL, 0);
		close(s);
		return 0;
	}
	if (type != T_HELLO)
		return reject(s, &p, R_BAD, "expected hello, got type %d", type);
	if (!(c = conn_new(&l->cfg, 0)))
		return reject(s, &p, R_BAD, "server out of resources");
	why = attach(c, p.fds[0]);
	if (!why && (bell_problem(p.fds[1]) || bell_problem(p.fds[2])))
		why = "doorbells are not eventfds, or full";
	if (why) {
		shmlink_close(c);
		return reject(s, &p, R_BAD, "%s", why);
	}
	close(p.fds[0]); /* the mapping keeps the memory */
	c->max_send = get64(p.b + 16);
	c->peer_pid = (int)get32(p.b + 8);
	memcpy(c->path, l->path, sizeof c->path);
	{
		int fds[2];
		fds[0] = c->data_fd, fds[1] = c->space_fd;
		if (send_pkt(s, b, pkt_hello(b, T_WELCOME, c->max_recv), fds, 2) < 0) {
			close(p.fds[1]);
			close(p.fds[2]);
			close(s);
			shmlink_close(c);
			return 0;
		}
	}
	c->count = l->count;
	__atomic_add_fetch(&l->count->refs, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&l->count->clients, 1, __ATOMIC_SEQ_CST);
	start_session(c, s, p.fds[1], p.fds[2]);
	*out = c;
	return 1;
}

int shmlink_accept(shmlink_listener *l, int timeout_ms, shmlink_conn **out)
{
	int64_t dl = deadline_of(timeout_ms);
	if (!l || !out)
		return fail(SHMLINK_INVALID, "accept: bad arguments");
	*out = NULL;
	for (;;) {
		int s, n = wait_readable(l->fd, dl);
		if (n < 0)
			return sysfail("poll");
		if (n == 0 && dl >= 0)
			return dl == 0 ? fail(SHMLINK_AGAIN, "no client now") : fail(SHMLINK_TIMEOUT, "no client in time");
		s = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (s < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
				continue;
			return sysfail("accept");
		}
		if (serve(l, s, out))
			return SHMLINK_OK;
	}
}

/* ---- the rest ------------------------------------------------------------------ */

int shmlink_fd(shmlink_conn *c)
{
	if (!c)
		return -1;
	if (c->epfd < 0) {
		if ((c->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
			return sysfail("epoll_create1"), -1;
		watch(c, c->ctl, 1);
		if (c->r_armed)
			watch(c, c->data_fd, 1);
		if (c->w_armed)
			watch(c, c->space_fd, 1);
	}
	return c->epfd;
}

int shmlink_status(shmlink_conn *c)
{
	if (!c)
		return SHMLINK_INVALID;
	read_control(c);
	switch (ldint(&c->state)) {
	case ST_OPEN: return SHMLINK_OK;
	case ST_CLOSED: return SHMLINK_PEER_CLOSED;
	case ST_LOST: return SHMLINK_PEER_LOST;
	}
	return c->fail_code;
}

int shmlink_peer_pid(const shmlink_conn *c) { return c ? c->peer_pid : -1; }

int shmlink_probe(const char *name, int timeout_ms, struct shmlink_info *info)
{
	char path[MAX_SOCK + 1];
	unsigned char b[8];
	struct pkt p;
	int s, r, type, version;
	if (!info)
		return fail(SHMLINK_INVALID, "probe: no result pointer");
	if ((r = shmlink_path(name, path, sizeof path)) != SHMLINK_OK)
		return r;
	if ((s = connect_server(path)) < 0)
		return s;
	if (send_pkt(s, b, pkt_header(b, T_PROBE), NULL, 0) < 0)
		r = sysfail("send probe");
	else
		r = recv_answer(s, &p, timeout_ms < 0 ? INT_MAX : timeout_ms);
	close(s);
	if (r != SHMLINK_OK)
		return r;
	if (pkt_head(&p, &type, &version) < 0 || version != SHMLINK_PROTOCOL_VERSION)
		r = fail(SHMLINK_HANDSHAKE, "malformed answer to probe");
	else if (type == T_REJECT && pkt_valid(&p, T_REJECT))
		r = rejected(&p);
	else if (type != T_INFO || !pkt_valid(&p, T_INFO))
		r = fail(SHMLINK_HANDSHAKE, "expected info, got type %d", type);
	pkt_close_fds(&p);
	if (r == SHMLINK_OK) {
		info->pid = (int)get32(p.b + 8);
		info->clients = (int)get32(p.b + 12);
		info->since_ns = (int64_t)get64(p.b + 16);
	}
	return r;
}
