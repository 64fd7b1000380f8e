/*
 * peer.c: the C side of the interop tests (the tests in c/ and the root
 * package's hostile tests). One program, one mode per test role:
 *
 *   peer MODE ARGS...
 *
 * It prints what happens on stdout, one line per event ("ready" once set
 * up), and exits 0 when the mode's checks passed; anything wrong goes to
 * stderr with exit status 1.
 */
#define _GNU_SOURCE
#include "../shmlink.h"

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *rname(int r)
{
	static const char *names[] = {"ok",       "eof",         "peer-closed", "peer-lost", "again",
	                              "timeout",  "corrupt",     "handshake",   "no-server", "in-use",
	                              "permission", "too-large", "short-buffer", "invalid",  "system"};
	return r <= 0 && -r < (int)(sizeof names / sizeof names[0]) ? names[-r] : "?";
}

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "%s: %s (%s)\n", what, rname(r), shmlink_last_error());
	exit(1);
}

static unsigned long long num(const char *s) { return strtoull(s, NULL, 0); }

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("malloc", SHMLINK_SYSTEM);
	return p;
}

/* The test message: byte i is i*31 + seq*7 + writer, and one of 8 bytes or
 * more starts with writer and seq (little-endian). c/interop_test.go builds
 * the same. */
static void gen(unsigned char *b, uint32_t writer, uint32_t seq, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 31 + seq * 7 + writer);
	if (n >= 8) {
		for (i = 0; i < 4; i++) {
			b[i] = (unsigned char)(writer >> (8 * i));
			b[4 + i] = (unsigned char)(seq >> (8 * i));
		}
	}
}

static int check(const unsigned char *m, size_t n, uint32_t writer, uint32_t seq, size_t want)
{
	unsigned char *e;
	int ok;
	if (n != want) {
		fprintf(stderr, "message %u: %zu bytes, want %zu\n", seq, n, want);
		return 0;
	}
	e = xmalloc(want);
	gen(e, writer, seq, want);
	ok = memcmp(e, m, n) == 0;
	if (!ok)
		fprintf(stderr, "message %u of %zu bytes: content differs\n", seq, n);
	free(e);
	return ok;
}

/* The size of message seq in the duplex test (the Go side has the same). */
static size_t size_of(uint32_t seq, uint64_t ring, uint64_t max)
{
	uint64_t classes[] = {0, 1, 7, 8, 9, ring / 2 - 16, ring / 2 - 8, ring / 2, ring - 1, ring, ring + 1, 3 * ring + 5};
	uint64_t n;
	if (seq % 3 == 0)
		n = classes[(seq / 3) % 12];
	else
		n = (uint32_t)(seq * 2654435761u) % (uint32_t)(max + 1);
	return (size_t)(n > max ? max : n);
}

static struct shmlink_config cfg_of(const char *ring)
{
	struct shmlink_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.ring_size = num(ring);
	return cfg;
}

static shmlink_conn *dial(const char *path, struct shmlink_config *cfg)
{
	shmlink_conn *c;
	int r = shmlink_dial(path, cfg, 10000, &c);
	if (r)
		die("dial", r);
	return c;
}

/* Listen on name, say ready, accept one client within 30 s. */
static shmlink_conn *accept_one(const char *name, shmlink_listener **l)
{
	shmlink_conn *c;
	int r;
	if ((r = shmlink_listen(name, NULL, l)))
		die("listen", r);
	say("ready");
	if ((r = shmlink_accept(*l, 30000, &c)))
		die("accept", r);
	return c;
}

/* Echo every message until the peer goes; the result that ended it. */
static int echo(shmlink_conn *c)
{
	for (;;) {
		void *m;
		size_t n;
		int r = shmlink_recv_alloc(c, &m, &n, -1);
		if (r == SHMLINK_TOO_LARGE) {
			say("too-large");
			continue;
		}
		if (r)
			return r;
		r = shmlink_send(c, m, n, -1);
		free(m);
		if (r)
			return r;
	}
}

static int echo_server(int argc, char **argv)
{
	shmlink_listener *l;
	struct shmlink_config cfg;
	long i, n = argc > 3 ? (long)num(argv[3]) : 0;
	int r;
	memset(&cfg, 0, sizeof cfg);
	if (argc > 4)
		cfg.max_message = num(argv[4]);
	if ((r = shmlink_listen(argv[2], &cfg, &l)))
		die("listen", r);
	say("ready");
	for (i = 0; n == 0 || i < n; i++) {
		shmlink_conn *c;
		if ((r = shmlink_accept(l, -1, &c)))
			die("accept", r);
		r = echo(c);
		say("client %ld: %s", i, rname(r));
		shmlink_close(c);
	}
	shmlink_listener_close(l);
	return 0;
}

static int echo_client(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argc > 3 ? argv[3] : "0");
	shmlink_conn *c = dial(argv[2], &cfg);
	int r;
	say("ready");
	r = echo(c);
	say("done: %s", rname(r));
	shmlink_close(c);
	return r == SHMLINK_EOF ? 0 : 1;
}

/* Send each size given, check its echo. */
static int sizes(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c = dial(argv[2], &cfg);
	int i, r;
	for (i = 4; i < argc; i++) {
		size_t n = (size_t)num(argv[i]), got;
		unsigned char *b = xmalloc(n), *m = NULL;
		gen(b, 1, (uint32_t)i, n);
		if ((r = shmlink_send(c, b, n, 30000)))
			die("send", r);
		/* Both receive calls, by turns. */
		if (i % 2) {
			m = xmalloc(n);
			r = shmlink_recv(c, m, n, &got, 30000);
		} else {
			r = shmlink_recv_alloc(c, (void **)&m, &got, 30000);
		}
		if (r)
			die("recv", r);
		if (!check(m, got, 1, (uint32_t)i, n))
			return 1;
		free(b);
		free(m);
	}
	say("ok %d sizes", argc - 4);
	shmlink_close(c);
	return 0;
}

struct duplex {
	shmlink_conn *c;
	uint32_t n;
	uint64_t ring, max;
	int failed;
};

static void *duplex_writer(void *arg)
{
	struct duplex *d = arg;
	unsigned char *b = xmalloc((size_t)d->max);
	uint32_t seq;
	for (seq = 0; seq < d->n; seq++) {
		size_t n = size_of(seq, d->ring, d->max);
		int r;
		gen(b, 2, seq, n);
		if ((r = shmlink_send(d->c, b, n, 60000))) {
			fprintf(stderr, "send %u: %s (%s)\n", seq, rname(r), shmlink_last_error());
			d->failed = 1;
			break;
		}
	}
	free(b);
	return NULL;
}

/* Both directions at once: a thread sends n messages while this one checks
 * the n the peer sends. */
static int duplex(shmlink_conn *c, char **argv)
{
	struct duplex d;
	pthread_t w;
	uint32_t seq;
	d.c = c;
	d.ring = num(argv[3]);
	d.n = (uint32_t)num(argv[4]);
	d.max = num(argv[5]);
	d.failed = 0;
	if (pthread_create(&w, NULL, duplex_writer, &d))
		die("pthread_create", SHMLINK_SYSTEM);
	for (seq = 0; seq < d.n; seq++) {
		void *m;
		size_t n;
		int r = shmlink_recv_alloc(c, &m, &n, 60000);
		if (r)
			die("recv", r);
		if (!check(m, n, 1, seq, size_of(seq, d.ring, d.max)))
			exit(1);
		free(m);
	}
	pthread_join(w, NULL);
	if (d.failed)
		return 1;
	say("duplex ok %u", d.n);
	shmlink_close(c);
	return 0;
}

static int duplex_client(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	(void)argc;
	return duplex(dial(argv[2], &cfg), argv);
}

static int duplex_server(int argc, char **argv)
{
	shmlink_listener *l;
	shmlink_conn *c = accept_one(argv[2], &l);
	(void)argc;
	shmlink_listener_close(l);
	return duplex(c, argv);
}

/* Wait in recv until the link ends; say how. */
static int recv_forever(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argc > 3 ? argv[3] : "0");
	shmlink_conn *c = dial(argv[2], &cfg);
	int r;
	say("ready");
	do {
		void *m;
		size_t n;
		if ((r = shmlink_recv_alloc(c, &m, &n, -1)) == SHMLINK_OK)
			free(m);
	} while (r == SHMLINK_OK);
	say("%s", rname(r));
	shmlink_close(c);
	return 0;
}

/* Send "first", then one message of argv[4] bytes (the test kills us while
 * it streams), or fill the ring and block in a send (argv[4] "fill"). */
static int write_big(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c = dial(argv[2], &cfg);
	unsigned char small[4096];
	int r;
	(void)argc;
	memset(small, 'x', sizeof small);
	if (strcmp(argv[4], "fill") == 0) {
		while ((r = shmlink_send(c, small, sizeof small, 0)) == SHMLINK_OK) {
		}
		if (r != SHMLINK_AGAIN)
			die("send", r);
		say("full");
		r = shmlink_send(c, small, sizeof small, -1);
	} else {
		size_t n = (size_t)num(argv[4]);
		unsigned char *big = xmalloc(n);
		memset(big, 'y', n);
		if ((r = shmlink_send(c, "first", 5, -1)))
			die("send", r);
		say("ready");
		r = shmlink_send(c, big, n, -1);
		free(big);
	}
	say("%s", rname(r));
	shmlink_close(c);
	return 0;
}

static void recv_seq(shmlink_conn *c, uint32_t writer, uint32_t from, uint32_t n, size_t size)
{
	uint32_t i;
	for (i = 0; i < n; i++) {
		void *m;
		size_t got;
		int r = shmlink_recv_alloc(c, &m, &got, 20000);
		if (r)
			die("recv", r);
		if (!check(m, got, writer, from + i, size))
			exit(1);
		free(m);
	}
}

static void send_seq(shmlink_conn *c, uint32_t writer, uint32_t from, uint32_t n, size_t size)
{
	unsigned char *b = xmalloc(size);
	uint32_t i;
	for (i = 0; i < n; i++) {
		int r;
		gen(b, writer, from + i, size);
		if ((r = shmlink_send(c, b, size, 20000)))
			die("send", r);
	}
	free(b);
}

static int expect(shmlink_conn *c, int want)
{
	void *m;
	size_t n;
	int r = shmlink_recv_alloc(c, &m, &n, 20000);
	if (r == SHMLINK_OK)
		free(m);
	if (r != want) {
		fprintf(stderr, "recv: %s (%s), want %s\n", rname(r), shmlink_last_error(), rname(want));
		exit(1);
	}
	return r;
}

/* A client that keeps its memory across server restarts (7.1): the test
 * stops and starts the server at each line this prints. */
static int keep_client(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c;
	int r;
	(void)argc;
	cfg.keep = 1;
	c = dial(argv[2], &cfg);
	say("ready");
	send_seq(c, 1, 0, 50, 200);
	recv_seq(c, 1, 0, 50, 200);
	say("round 1");
	expect(c, SHMLINK_PEER_LOST); /* killed */
	send_seq(c, 1, 50, 50, 200);  /* no server: into the ring */
	say("queued");
	if ((r = shmlink_redial(c, 20000)))
		die("redial", r);
	recv_seq(c, 1, 50, 50, 200);
	say("round 2");
	expect(c, SHMLINK_EOF); /* stopped cleanly */
	send_seq(c, 1, 100, 1, 200);
	say("queued");
	if ((r = shmlink_redial(c, 20000)))
		die("redial", r);
	recv_seq(c, 1, 100, 1, 200);
	say("round 3");
	shmlink_close(c);
	return 0;
}

/* Everything a server committed before it died reaches a keeping client. */
static int keep_burst(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c;
	uint32_t n = (uint32_t)num(argv[4]);
	(void)argc;
	cfg.keep = 1;
	c = dial(argv[2], &cfg);
	recv_seq(c, 9, 0, n, 100);
	expect(c, SHMLINK_PEER_LOST);
	say("got %u then lost", n);
	shmlink_close(c);
	return 0;
}

/* Send one message of argv[3] bytes; say how it went. */
static int send_size(int argc, char **argv)
{
	shmlink_conn *c = dial(argv[2], NULL);
	size_t n = (size_t)num(argv[3]);
	unsigned char *b = xmalloc(n);
	(void)argc;
	memset(b, 's', n);
	say("%s", rname(shmlink_send(c, b, n, 10000)));
	free(b);
	shmlink_close(c);
	return 0;
}

static int probe(int argc, char **argv)
{
	struct shmlink_info info;
	int r = shmlink_probe(argv[2], 5000, &info);
	(void)argc;
	if (r)
		say("probe: %s", rname(r));
	else
		say("pid %d clients %d since %lld", info.pid, info.clients, (long long)info.since_ns);
	return 0;
}

/* The socket path of each name, or why it has none: one line each. */
static int path(int argc, char **argv)
{
	char p[256];
	int i;
	for (i = 2; i < argc; i++) {
		int r = shmlink_path(argv[i], p, sizeof p);
		say("%s", r ? rname(r) : p);
	}
	return 0;
}

/* The benchmark's peer: echo messages that start with 'E', count the
 * others, answer "?" with the count (8 bytes) and 'S' count size with that
 * many messages of that size. */
static int bench_server(int argc, char **argv)
{
	shmlink_listener *l;
	shmlink_conn *c = accept_one(argv[2], &l);
	size_t cap = 8 << 20, n;
	unsigned char *b = xmalloc(cap);
	uint64_t count = 0;
	int r;
	(void)argc;
	while ((r = shmlink_recv(c, b, cap, &n, -1)) == SHMLINK_OK) {
		if (n > 0 && b[0] == 'E') {
			r = shmlink_send(c, b, n, -1);
		} else if (n == 1 && b[0] == '?') {
			unsigned char a[8];
			int i;
			for (i = 0; i < 8; i++)
				a[i] = (unsigned char)(count >> (8 * i));
			count = 0;
			r = shmlink_send(c, a, 8, -1);
		} else if (n == 17 && b[0] == 'S') {
			uint64_t k = 0, size = 0, j;
			int i;
			for (i = 7; i >= 0; i--) {
				k = k << 8 | b[1 + i];
				size = size << 8 | b[9 + i];
			}
			for (j = 0; j < k && r == SHMLINK_OK && size <= cap; j++)
				r = shmlink_send(c, b, (size_t)size, -1);
		} else {
			count++;
		}
		if (r)
			break;
	}
	shmlink_close(c);
	shmlink_listener_close(l);
	free(b);
	return r == SHMLINK_EOF ? 0 : 1;
}

/* The victim of a hostile client: report each receive, until the link
 * fails or ends. */
static int victim_server(int argc, char **argv)
{
	shmlink_listener *l;
	shmlink_conn *c = accept_one(argv[2], &l);
	int into = argc > 3 && strcmp(argv[3], "into") == 0, r;
	unsigned char buf[64];
	if (argc > 3 && strcmp(argv[3], "send") == 0) {
		/* Send one message when told, once the peer has done its damage:
		 * a publish that may ring a doorbell the peer made blocking. */
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			die("no go-ahead to send", SHMLINK_INVALID);
		say("%s", rname(shmlink_send(c, "rung", 4, 10000)));
	}
	for (;;) {
		void *m = buf;
		size_t n;
		r = into ? shmlink_recv(c, buf, sizeof buf, &n, 300) : shmlink_recv_alloc(c, &m, &n, 300);
		if (r == SHMLINK_OK) {
			say("msg %zu %.*s", n, (int)(n < 32 ? n : 32), (char *)m);
			if (!into)
				free(m);
			continue;
		}
		say("%s", rname(r));
		if (r != SHMLINK_TIMEOUT && r != SHMLINK_TOO_LARGE && r != SHMLINK_SHORT_BUFFER)
			break;
	}
	if (shmlink_send(c, "x", 1, 0) == SHMLINK_OK && (r == SHMLINK_CORRUPT || r == SHMLINK_HANDSHAKE))
		die("send on a failed link succeeded", r);
	shmlink_close(c);
	shmlink_listener_close(l);
	return 0;
}

/* The victim of a hostile server: dial, then read (or write) until the
 * damage shows. */
static int victim_client(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c;
	unsigned char b[1000];
	int r, i;
	(void)argc;
	if ((r = shmlink_dial(argv[2], &cfg, 0, &c))) {
		say("dial %s", rname(r));
		return 0;
	}
	say("dialed");
	memset(b, 'v', sizeof b);
	if (strcmp(argv[4], "write") == 0) {
		for (i = 0; i < 10000 && (r = shmlink_send(c, b, sizeof b, 10000)) == SHMLINK_OK; i++) {
		}
	} else {
		void *m;
		size_t n;
		if ((r = shmlink_recv_alloc(c, &m, &n, 10000)) == SHMLINK_OK)
			free(m);
	}
	say("%s", rname(r));
	if (r == SHMLINK_CORRUPT && shmlink_status(c) != SHMLINK_CORRUPT)
		die("status after corruption", shmlink_status(c));
	shmlink_close(c);
	return 0;
}

/* Accept one client and hold it without reading, until stdin ends; go on
 * answering probes meanwhile, from poll on the listener's descriptor. */
static int hold_server(int argc, char **argv)
{
	shmlink_listener *l;
	shmlink_conn *c = accept_one(argv[2], &l), *other;
	struct pollfd p[2];
	char line[64];
	int r;
	(void)argc;
	p[0].fd = 0;
	p[1].fd = shmlink_listener_fd(l);
	p[0].events = p[1].events = POLLIN;
	while (poll(p, 2, -1) > 0) {
		if (p[1].revents) {
			r = shmlink_accept(l, 0, &other);
			if (r == SHMLINK_OK)
				shmlink_close(other);
			else if (r != SHMLINK_AGAIN)
				die("accept", r);
		}
		if (p[0].revents && !fgets(line, sizeof line, stdin))
			break;
	}
	shmlink_close(c);
	shmlink_listener_close(l);
	return 0;
}

/* Listen and say how it went; hold the name until stdin ends. */
static int listen_only(int argc, char **argv)
{
	shmlink_listener *l;
	char line[64];
	int r = shmlink_listen(argv[2], NULL, &l);
	(void)argc;
	say("%s", rname(r));
	if (r)
		return 0;
	while (fgets(line, sizeof line, stdin)) {
	}
	shmlink_listener_close(l);
	say("closed");
	return 0;
}

/* Echo from an event loop: one thread, poll on shmlink_fd, never a
 * blocking call; a message the ring has no room for waits for the next
 * readiness. */
static int poll_echo_client(int argc, char **argv)
{
	struct shmlink_config cfg = cfg_of(argv[3]);
	shmlink_conn *c = dial(argv[2], &cfg);
	struct pollfd p;
	void *out = NULL;
	size_t out_len = 0;
	long polls = 0, echoed = 0;
	int r = SHMLINK_OK;
	(void)argc;
	p.fd = shmlink_fd(c);
	p.events = POLLIN;
	say("ready");
	for (;;) {
		if (out) {
			if ((r = shmlink_send(c, out, out_len, 0)) == SHMLINK_OK) {
				free(out);
				out = NULL;
				echoed++;
			} else if (r != SHMLINK_AGAIN) {
				break;
			}
		}
		if (!out) {
			r = shmlink_recv_alloc(c, &out, &out_len, 0);
			if (r == SHMLINK_OK)
				continue;
			out = NULL;
			if (r != SHMLINK_AGAIN)
				break;
		}
		if (poll(&p, 1, 20000) != 1) {
			fprintf(stderr, "poll: nothing within 20s\n");
			return 1;
		}
		polls++;
	}
	free(out);
	say("done: %s after %ld messages, %ld polls", rname(r), echoed, polls);
	shmlink_close(c);
	return r == SHMLINK_EOF ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int args;
		int (*run)(int, char **);
	} modes[] = {
	    {"echo-server", 1, echo_server},   {"echo-client", 1, echo_client},   {"sizes", 2, sizes},
	    {"duplex-client", 4, duplex_client}, {"duplex-server", 4, duplex_server},
	    {"recv-forever", 1, recv_forever}, {"write-big", 3, write_big},       {"keep-client", 2, keep_client},
	    {"keep-burst", 3, keep_burst},     {"probe", 1, probe},               {"path", 1, path},
	    {"bench-server", 1, bench_server}, {"victim-server", 1, victim_server},
	    {"victim-client", 3, victim_client}, {"hold-server", 1, hold_server},
	    {"listen", 1, listen_only},        {"poll-echo-client", 2, poll_echo_client},
	    {"send-size", 2, send_size},
	};
	size_t i;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++)
		if (strcmp(argv[1], modes[i].name) == 0) {
			if (argc < 2 + modes[i].args) {
				fprintf(stderr, "%s: want at least %d arguments\n", argv[1], modes[i].args);
				return 2;
			}
			return modes[i].run(argc, argv);
		}
	fprintf(stderr, "usage: peer MODE ARGS... (unknown mode %s)\n", argc > 1 ? argv[1] : "none");
	return 2;
}
