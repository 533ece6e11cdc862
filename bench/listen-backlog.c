/*
 * LD_PRELOAD shim for the bench: raises the backlog a program passes to
 * listen(2) to at least $LISTEN_BACKLOG. OpenSMTPD 6.8 listens with a
 * backlog of 5; under 20 concurrent connects the accept queue overflows,
 * SYNs are dropped and each costs the client a 1 s retransmit, which would
 * measure that one constant instead of the server.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>

int listen(int fd, int backlog)
{
	static int (*next)(int, int);
	const char *min = getenv("LISTEN_BACKLOG");

	if (!next)
		next = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
	if (min && atoi(min) > backlog)
		backlog = atoi(min);
	return next(fd, backlog);
}
