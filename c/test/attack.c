/*
 * attack.c: a hostile peer built on the library's own internals (it
 * includes shmlink.c): a correct handshake, then one breach of the
 * protocol, for c/interop's TestCAttacksGo.
 *
 *   attack client|server PATH SCENARIO
 *
 * It prints "ready" once the damage is done and holds the link until stdin
 * ends.
 */
#include "../shmlink.c"

static void damage(shmlink_conn *c, const char *what)
{
	struct ring *r = &c->tx; /* the ring this side produces */
	unsigned char b[8];
	int fd;
	if (strcmp(what, "tail-beyond") == 0) {
		st64(TAILP(r), 1ULL << 40);
	} else if (strcmp(what, "tail-unaligned") == 0) {
		st64(TAILP(r), 5);
	} else if (strcmp(what, "garbage") == 0) {
		memset(r->data, 0xFF, 64);
		st64(TAILP(r), 64);
	} else if (strcmp(what, "claim") == 0) {
		put_chunk(r->data, 8, F_BEGIN, 1ULL << 40);
		st64(TAILP(r), 24);
	} else if (strcmp(what, "junk-packet") == 0) {
		send_pkt(c->ctl, b, pkt_header(b, T_PROBE), NULL, 0);
	} else if (strcmp(what, "fds-packet") == 0) {
		fd = eventfd(0, EFD_CLOEXEC);
		send_pkt(c->ctl, b, pkt_header(b, T_BYE), &fd, 1);
		close(fd);
	} else {
		fprintf(stderr, "unknown scenario %s\n", what);
		exit(2);
	}
	ring_bell(c, c->peer_data, 1);
}

int main(int argc, char **argv)
{
	struct shmlink_config cfg;
	shmlink_listener *l = NULL;
	shmlink_conn *c;
	char line[64];
	int r;
	if (argc != 4) {
		fprintf(stderr, "usage: attack client|server PATH SCENARIO\n");
		return 2;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.ring_size = 4096;
	if (strcmp(argv[1], "client") == 0) {
		r = shmlink_dial(argv[2], &cfg, 10000, &c);
	} else if ((r = shmlink_listen(argv[2], NULL, &l)) == SHMLINK_OK) {
		printf("listening\n");
		fflush(stdout);
		r = shmlink_accept(l, 30000, &c);
	}
	if (r) {
		fprintf(stderr, "setup: %s\n", shmlink_last_error());
		return 1;
	}
	damage(c, argv[3]);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
	}
	shmlink_close(c);
	shmlink_listener_close(l);
	return 0;
}
