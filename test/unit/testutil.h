/* testutil.h -- helpers shared by the C unit tests (header only, next to tap.h). */
#ifndef PGSLAB_TESTUTIL_H
#define PGSLAB_TESTUTIL_H

/*
 * Everything here is a macro or a static inline function, so a test that
 * includes this header but uses only part of it compiles without warnings,
 * and no test needs an extra object file.  Nothing here keeps state: the
 * PRNG state belongs to the caller.
 */

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

/* T_ASAN is defined when AddressSanitizer instruments this build (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

#define MiB ((size_t)1 << 20)

/* ok() that the string <got> is non-NULL and equal to <want> (not NULL);
 * on failure diag() shows both.  A macro, like is_int(), so that a failure
 * names the caller's line. */
#define is_str(got, want, name)                                                                    \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		if (!ok(g_ && strcmp(g_, w_) == 0, "%s", name))                                    \
			diag("got \"%s\", expected \"%s\"", g_ ? g_ : "(null)", w_);               \
	} while (0)

/* xorshift64* (Vigna): advances *<state>, which must not be 0, and returns
 * the next pseudo-random value.  Same seed, same sequence, on every host. */
static inline uint64_t xorshift64star(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Runs <fn>(<arg>) in a forked child with stderr sent to /dev/null (so an
 * expected abort or sanitizer report stays out of the TAP stream); the
 * child exits 0 if <fn> returns.  Returns the child's wait status, or -1
 * if fork or waitpid failed. */
static inline int run_in_child(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(3);
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* Does <fn>(<arg>) kill a forked child with SIGABRT? */
static inline int dies_with_abort(void (*fn)(void *), void *arg)
{
	int status = run_in_child(fn, arg);

	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

#endif
