# 075_ledger.pl -- issue 16: fault-injection ledger test.  Writers run transfers
# through pgslab (transaction mode) and journal what they saw of each COMMIT,
# pgbench adds load, and a chaos driver drawn from the seed terminates backends,
# restarts PostgreSQL, kills and stalls writers, pauses, kills and reconnects the
# pool, reloads (also with a new default_pool_size) and sends hostile clients
# that leave mid-message.  Afterwards: every COMMIT seen is in the ledger, no
# failed or aborted transaction is, the balances add up, pgslab serves, its
# counters agree with PostgreSQL, and slabs and fds are back at the baseline.
# SEED=n replays a schedule (with the same LEDGER_SECONDS); LEDGER_WRITERS.
# Long runs: make soak SECONDS=... (test/soak.pl).

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Ledger;

my $l = PgSlab::Test::Ledger->new(
	seed    => $ENV{SEED},
	seconds => $ENV{LEDGER_SECONDS} // 35,
	writers => $ENV{LEDGER_WRITERS} // 6,
	diag    => sub { diag($_[0]) });
$l->start_servers;
$l->setup;
$l->baseline;
$l->run;
my @checks = $l->check;
for my $c (@checks) {
	ok($c->{ok}, $c->{name}) or diag("$c->{detail} (seed " . $l->seed . ')');
}
diag($_) for $l->report;
my $n = $l->{counts}{C} // 0;
cmp_ok($n, '>=', 50, "enough transactions committed under chaos ($n)");

done_testing();
