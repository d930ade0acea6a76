#!/usr/bin/perl
# soak.pl -- long runs of the fault-injection ledger test (PgSlab::Test::Ledger;
# the bounded run is test/t/075_ledger.pl).
#
#   make soak SECONDS=1800 [SEED=n] [PGSLAB=$PWD/pgslab-asan] [WRITERS=n]
#   perl -I test/perl test/soak.pl --seconds 1800 [--seed n] [--writers n]
#
# pgslab is $PGSLAB (default ./pgslab).  Prints the seed and the chaos
# schedule first, then every check as "ok"/"not ok" and the figures:
# transactions by outcome, unknowns found committed, pgbench transactions,
# chaos events by kind, slab caches, fds and pgslab's RSS (VmRSS) at the
# baseline, at its peak under load (sampled once a second), when the chaos
# phase ends and at the end, once the load is over and every server closed.
# Exits 1 if a check failed.

use strict;
use warnings;

use Getopt::Long;
use PgSlab::Test::Ledger;

$| = 1;
my %o = (seconds => 600, writers => 8, loaders => 3);
GetOptions(\%o, 'seconds=i', 'seed=i', 'writers=i', 'loaders=i') or die "bad options\n";
print '# pgslab ' . ($ENV{PGSLAB} // './pgslab') . ", $o{writers} writers, $o{loaders} pgbench loaders, $o{seconds} s\n";

my $l = PgSlab::Test::Ledger->new(%o, diag => sub { print "# $_[0]\n" });
$l->start_servers;
$l->setup;
$l->baseline;
$l->run;
my $fail = 0;
for my $c ($l->check) {
	print(($c->{ok} ? 'ok' : 'not ok') . " - $c->{name}\n");
	next if $c->{ok};
	$fail++;
	print "#   $_\n" for split /\n/, $c->{detail};
}
# After the load pgslab's RSS comes back to within 10% of the baseline's (not
# under ASan, whose quarantine holds freed memory on purpose).
my ($b, $f) = ($l->{base}{rss_kb}, $l->{final}{rss_kb});
if (($ENV{PGSLAB} // '') !~ /asan/ && defined $b && defined $f && $b > 0) {
	my $ok = $f <= $b * 1.10;
	print(($ok ? 'ok' : 'not ok') . " - pgslab's RSS back within 10% of the baseline ($b kB -> $f kB)\n");
	$fail++ unless $ok;
}
print "# $_\n" for $l->report;
print 'soak: ' . ($fail ? "FAILED ($fail checks)" : 'passed') . ' seed=' . $l->seed . "\n";
exit($fail ? 1 : 0);
