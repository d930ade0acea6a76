/* fuzz_config.c -- the ini reader: pgslab.ini with %include, [databases], [users], [pgbouncer].
 *
 * Input: up to three files separated by the byte 0xfe (never part of UTF-8
 * text): a.ini, which is loaded, and b.ini and c.ini, which it may
 * %include (and which may include each other, up to the depth limit).  The
 * files live in a private temporary directory that is also the working
 * directory, and every '/' in the input becomes '_', so an %include can
 * reach nothing outside it.
 *
 * On success: every [databases] and [users] entry is found by name, SHOW
 * CONFIG's walk visits config_setting_count() settings, and each setting
 * that SET may change takes its own printed value back (SET key = <SHOW
 * value> succeeds and prints the same value).  On failure: an error
 * message is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char dir[64];
static char main_path[96];

static void cleanup(void)
{
	static const char *const names[] = { "a.ini", "b.ini", "c.ini" };
	char p[128];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pgslab-fuzz-config.XXXXXX");
	if (mkdtemp(dir) == NULL || chdir(dir) != 0)
		abort();
	snprintf(main_path, sizeof(main_path), "%s/a.ini", dir);
	atexit(cleanup);
}

static void put(const char *name, const uint8_t *p, size_t n)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint8_t buf[4096];
	size_t off = 0;

	if (fd < 0)
		abort();
	while (off < n) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf), i;

		for (i = 0; i < k; i++)
			buf[i] = p[off + i] == '/' ? '_' : p[off + i];
		if (write(fd, buf, k) != (ssize_t)k)
			abort();
		off += k;
	}
	close(fd);
}

#define MAX_SETTINGS 256

struct walk {
	int n;
	char *key[MAX_SETTINGS], *value[MAX_SETTINGS];
};

/* SHOW CONFIG's walk: note what SET may change (set afterwards, not while
 * the walk reads the config). */
static void setting(const char *key, const char *value, const char *dflt, bool changeable,
		void *arg)
{
	struct walk *w = arg;

	FUZZ_ASSERT(key && value && dflt);
	FUZZ_ASSERT(w->n < MAX_SETTINGS);
	w->key[w->n] = changeable ? fuzz_strndup((const uint8_t *)key, strlen(key)) : NULL;
	w->value[w->n] = changeable ? fuzz_strndup((const uint8_t *)value, strlen(value)) : NULL;
	w->n++;
}

static void set_back(struct config *cfg, const char *key, const char *value)
{
	char err[256], buf[256];
	const char *now;
	int rc;

	err[0] = 0;
	rc = config_set(cfg, key, value, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "SET %s = '%s': %d %s\n", key, value, rc, err);
	FUZZ_ASSERT(rc == 0);
	now = config_setting_get(cfg, key, buf, sizeof(buf));
	FUZZ_ASSERT(now != NULL && strcmp(now, value) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[3];
	struct config *cfg;
	struct walk w;
	char err[512];
	int i;

	if (dir[0] == 0)
		setup();
	fuzz_split(data, size, 0xfe, part, 3);
	put("a.ini", part[0].p, part[0].len);
	put("b.ini", part[1].p, part[1].len);
	put("c.ini", part[2].p, part[2].len);
	err[0] = 0;
	cfg = config_load(main_path, err, sizeof(err));
	if (cfg == NULL) {
		FUZZ_ASSERT(err[0] != 0 && memchr(err, 0, sizeof(err)));
		return 0;
	}
	for (i = 0; i < cfg->n_dbs; i++)
		FUZZ_ASSERT(config_find_db(cfg, cfg->dbs[i].name) == &cfg->dbs[i]);
	for (i = 0; i < cfg->n_users; i++)
		FUZZ_ASSERT(config_find_user(cfg, cfg->users[i].name) == &cfg->users[i]);
	w.n = 0;
	config_foreach_setting(cfg, setting, &w);
	FUZZ_ASSERT(w.n == config_setting_count());
	for (i = 0; i < w.n; i++) {
		if (w.key[i])
			set_back(cfg, w.key[i], w.value[i]);
		free(w.key[i]);
		free(w.value[i]);
	}
	config_free(cfg);
	return 0;
}
