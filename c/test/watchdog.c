/*
 * watchdog.c: the C library's ring watchdog (PROTOCOL.md, 4.3) against a
 * hostile peer, built on the library's internals (it includes shmlink.c),
 * for c/interop's TestCWatchdog. Each scenario prints "ok", or what went
 * wrong and exits 1.
 *
 *   watchdog race|many|fork|handshake|drop|cancel
 *
 * A blocked ring is a write to an eventfd whose counter is full and whose
 * O_NONBLOCK the peer cleared; the watchdog must free it within a few of
 * its once-a-second looks.
 */
#include "../shmlink.c"

#include <dirent.h>
#include <sys/wait.h>

#define FULL 0xfffffffffffffffeULL

static void bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(1);
}

/* A full, blocking eventfd. */
static int blocked_bell(void)
{
	uint64_t v = FULL;
	int fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || write(fd, &v, sizeof v) != sizeof v)
		bad("eventfd: %s", strerror(errno));
	return fd;
}

struct ringer {
	pthread_t t;
	int fd, hostile, done;
};

static void *ring_it(void *arg)
{
	struct ringer *r = arg;
	ring_fd(r->fd, &r->hostile);
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void start_ring(struct ringer *r, int fd)
{
	r->fd = fd;
	r->hostile = r->done = 0;
	if (pthread_create(&r->t, NULL, ring_it, r) != 0)
		bad("pthread_create");
}

/* Wait for a ring to be freed, at most secs seconds. */
static void freed_within(struct ringer *r, int secs, const char *what)
{
	int64_t end = now_ns() + (int64_t)secs * 1000000000;
	struct pollfd none = {-1, 0, 0};
	while (!__atomic_load_n(&r->done, __ATOMIC_SEQ_CST)) {
		if (now_ns() > end)
			bad("%s: a blocked ring not freed within %d s", what, secs);
		poll(&none, 1, 10); /* a wait with a deadline, not a sleep: the ringer says when */
	}
	pthread_join(r->t, NULL);
	if (!r->hostile)
		bad("%s: freed, but the link not marked hostile", what);
}

static volatile int racing_fd;

static void *clear_nonblock(void *arg)
{
	(void)arg;
	for (;;)
		fcntl(racing_fd, F_SETFL, 0);
	return NULL;
}

/* The peer races the drain: one thread of the peer's keeps clearing
 * O_NONBLOCK, and once a drain has emptied the counter another keeps it at
 * zero, so that a read of the watchdog's that waited on an empty eventfd
 * would wait for good. Several such peers in a row, then a ring with no
 * peer at all: the watchdog must still be there to free it. */
static void race(void)
{
	struct ringer a, b;
	int round;
	for (round = 0; round < 5; round++) {
		int fd = blocked_bell();
		pid_t pid = fork();
		if (pid == 0) {
			struct pollfd p = {fd, POLLOUT, 0};
			pthread_t t;
			uint64_t v;
			racing_fd = fd;
			pthread_create(&t, NULL, clear_nonblock, NULL);
			poll(&p, 1, 10000); /* drained: writable */
			for (;;)
				if (read(fd, &v, sizeof v) < 0) {
				}
		}
		start_ring(&a, fd);
		freed_within(&a, 8, "a ring whose peer then races the drain");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(fd);
	}
	start_ring(&b, blocked_bell());
	freed_within(&b, 8, "a ring after five peers raced the drain");
}

/* Several rings blocked at once are freed together, at one look, not one
 * per look. */
static void many(void)
{
	struct ringer r[5];
	int64_t first = 0, last = 0, t;
	int i, left = 5;
	struct pollfd none = {-1, 0, 0};
	for (i = 0; i < 5; i++)
		start_ring(&r[i], blocked_bell());
	t = now_ns();
	while (left > 0) {
		if (now_ns() - t > 8000000000LL)
			bad("five blocked rings: %d not freed within 8 s", left);
		for (i = 0, left = 0; i < 5; i++)
			left += !__atomic_load_n(&r[i].done, __ATOMIC_SEQ_CST);
		if (left < 5 && !first)
			first = now_ns();
		poll(&none, 1, 5);
	}
	last = now_ns();
	if (last - first > 900000000)
		bad("five blocked rings freed over %.1f s: one look each", (double)(last - first) / 1e9);
	for (i = 0; i < 5; i++)
		freed_within(&r[i], 1, "one of five rings");
}

/* Whether a thread of ours other than the caller sleeps in nanosleep or
 * clock_nanosleep (the watchdog between looks), from /proc. */
static int watchdog_sleeping(void)
{
	char path[300];
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long nr;
	int found = 0;
	FILE *f;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == (int)syscall(SYS_gettid))
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%ld", &nr) == 1 && (nr == SYS_nanosleep || nr == SYS_clock_nanosleep))
				found = 1;
			fclose(f);
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* A child of fork inherits open links but not the watchdog thread: its
 * first ring starts one. The fork waits until the parent's watchdog has
 * started and sleeps: a thread still starting at fork may hold a lock of
 * the sanitizer's runtime, which the child would inherit held. */
static void forked(void)
{
	int st;
	int64_t end = now_ns() + 5000000000LL;
	struct pollfd none = {-1, 0, 0};
	pid_t pid;
	while (!watchdog_sleeping()) {
		if (now_ns() > end)
			bad("the watchdog thread did not start");
		poll(&none, 1, 5);
	}
	pid = fork();
	if (pid == 0) {
		struct ringer r;
		start_ring(&r, blocked_bell());
		freed_within(&r, 8, "a ring in a child of fork");
		_exit(0);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		exit(1); /* the child said why */
}

/* A client hands over doorbells that are full and blocking: the server
 * refuses them at once instead of blocking on its first ring. */
static void handshake(void)
{
	char name[64];
	shmlink_listener *l;
	shmlink_conn *s = NULL;
	int64_t t0;
	int r, st;
	pid_t pid;
	snprintf(name, sizeof name, "watchdog-handshake-%d", (int)getpid());
	if (shmlink_listen(name, NULL, &l) != SHMLINK_OK)
		bad("listen: %s", shmlink_last_error());
	pid = fork();
	if (pid == 0) {
		shmlink_conn *c = conn_new(NULL, 1);
		uint64_t v = FULL;
		if (!c || shmlink_path(name, c->path, sizeof c->path) != SHMLINK_OK ||
		    client_segment(c, DEF_RING) != SHMLINK_OK)
			_exit(2);
		fcntl(c->data_fd, F_SETFL, 0);
		fcntl(c->space_fd, F_SETFL, 0);
		if (write(c->data_fd, &v, 8) != 8 || write(c->space_fd, &v, 8) != 8)
			_exit(2);
		_exit(connect_loop(c, 2000) == SHMLINK_OK ? 1 : 0);
	}
	t0 = now_ns();
	r = shmlink_accept(l, 500, &s);
	if (r == SHMLINK_OK)
		bad("accepted a client whose doorbells are full, after %.2f s", (double)(now_ns() - t0) / 1e9);
	if (now_ns() - t0 > 3000000000LL)
		bad("accept took %.2f s", (double)(now_ns() - t0) / 1e9);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bad("the client was not refused (exit %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	shmlink_listener_close(l);
}

/* Once the peer has made a ring block, a later ring of its doorbells is
 * dropped, and fails the link, whichever thread makes it. */
static void drop(void)
{
	shmlink_conn *c = conn_new(NULL, 1);
	uint64_t v;
	if (!c)
		bad("conn_new: %s", shmlink_last_error());
	c->peer_data = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	__atomic_store_n(&c->state, ST_OPEN, __ATOMIC_SEQ_CST);
	__atomic_store_n(&c->hostile, 1, __ATOMIC_SEQ_CST);
	ring_bell(c, c->peer_data, 1);
	if (read(c->peer_data, &v, sizeof v) >= 0)
		bad("a ring of a hostile peer's doorbell went through");
	if (shmlink_status(c) != SHMLINK_CORRUPT)
		bad("status %d after a dropped ring, want SHMLINK_CORRUPT", shmlink_status(c));
	shmlink_close(c);
}

/* A thread cancelled while its ring is blocked leaves nothing of its stack
 * listed: the cancellation waits for the ring to end. */
static void cancelled(void)
{
	struct ringer r;
	int64_t end = now_ns() + 8000000000LL;
	struct pollfd none = {-1, 0, 0};
	struct ringing *left;
	start_ring(&r, blocked_bell());
	while (!watchdog_sleeping() || !under_way) { /* the ring is under way */
		if (now_ns() > end)
			bad("the ring did not start");
		poll(&none, 1, 5);
	}
	pthread_cancel(r.t);
	pthread_join(r.t, NULL);
	pthread_mutex_lock(&watch_mu);
	left = under_way;
	pthread_mutex_unlock(&watch_mu);
	if (left)
		bad("a cancelled ringer left its ring listed");
}

int main(int argc, char **argv)
{
	if (argc != 2)
		bad("usage: watchdog race|many|fork|handshake|drop|cancel");
	if (strcmp(argv[1], "handshake") != 0 && strcmp(argv[1], "drop") != 0)
		watch_links(1); /* a link is open, as far as the watchdog knows */
	if (strcmp(argv[1], "race") == 0)
		race();
	else if (strcmp(argv[1], "many") == 0)
		many();
	else if (strcmp(argv[1], "fork") == 0)
		forked();
	else if (strcmp(argv[1], "handshake") == 0)
		handshake();
	else if (strcmp(argv[1], "drop") == 0)
		drop();
	else if (strcmp(argv[1], "cancel") == 0)
		cancelled();
	else
		bad("unknown scenario %s", argv[1]);
	printf("ok\n");
	return 0;
}
