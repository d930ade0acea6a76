#!/usr/bin/perl
# soak.pl -- long runs of the fault-injection ledger test (PgSlab::Test::Ledger;
# the bounded run is test/t/075_ledger.pl).
#
#   make soak SECONDS=1800 [SEED=n] [PGSLAB=$PWD/pgslab-asan] [WRITERS=n] [VALGRIND=1]
#   perl -I test/perl test/soak.pl --seconds 1800 [--seed n] [--writers n] [--valgrind]
#
# --valgrind runs pgslab under valgrind memcheck (slower: use fewer writers
# and a shorter run) and adds three checks once pgslab has been stopped: no
# memcheck error, nothing definitely or indirectly lost, and valgrind's exit
# status is not its error code.
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
GetOptions(\%o, 'seconds=i', 'seed=i', 'writers=i', 'loaders=i', 'valgrind') or die "bad options\n";
my $vg = delete $o{valgrind};
if ($vg) {
	$o{wrapper} = [ '/usr/bin/valgrind', '--error-exitcode=99', '--leak-check=full',
		'--show-leak-kinds=definite,indirect', '--errors-for-leak-kinds=definite,indirect',
		'--num-callers=30', '--log-file=%p.vg.log' ];
	$o{timeout} = 60; # a writer's wait for a reply
}
print '# pgslab ' . ($ENV{PGSLAB} // './pgslab') . ($vg ? ' under valgrind' : '')
    . ", $o{writers} writers, $o{loaders} pgbench loaders, $o{seconds} s\n";

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
# under ASan, whose quarantine holds freed memory on purpose, nor valgrind).
my ($b, $f) = ($l->{base}{rss_kb}, $l->{final}{rss_kb});
if (!$vg && ($ENV{PGSLAB} // '') !~ /asan/ && defined $b && defined $f && $b > 0) {
	my $ok = $f <= $b * 1.10;
	print(($ok ? 'ok' : 'not ok') . " - pgslab's RSS back within 10% of the baseline ($b kB -> $f kB)\n");
	$fail++ unless $ok;
}
if ($vg) {
	my $p = $l->{proxy};
	my $pid = $p->pid;
	my $st = $p->stop(timeout => 120);
	my $log = PgSlab::Test::Cluster::_slurp($p->basedir . "/$pid.vg.log") // '';
	my @checks = (
		[ defined $st && ($st >> 8) != 99, 'valgrind did not exit with its error code (wait status '
		    . ($st // 'none') . ')' ],
		[ $log =~ /ERROR SUMMARY: 0 errors/, 'memcheck: 0 errors' ],
		[ $log =~ /definitely lost: 0 bytes|All heap blocks were freed|no leaks are possible/
		    && $log !~ /(?:definitely|indirectly) lost: [1-9]/, 'memcheck: nothing definitely or indirectly lost' ],
	);
	for my $c (@checks) {
		print(($c->[0] ? 'ok' : 'not ok') . " - $c->[1]\n");
		$fail++ unless $c->[0];
	}
	print "# valgrind: $_\n" for grep { /ERROR SUMMARY|definitely lost|indirectly lost|in use at exit/ } split /\n/, $log;
	my @lines = split /\n/, $log;
	print "#   $_\n" for grep { /==\d+== (?:Invalid|Conditional|Use of|Mismatched|Syscall|\s+at|\s+by)/ }
	    @lines[0 .. ($#lines < 300 ? $#lines : 300)];
}
print "# $_\n" for $l->report;
print 'soak: ' . ($fail ? "FAILED ($fail checks)" : 'passed') . ' seed=' . $l->seed . "\n";
exit($fail ? 1 : 0);
