#!/usr/bin/perl
# fuzz_protocol.pl -- long runs of the randomized differential protocol test
# (PgSlab::Test::Differential; the bounded run is test/t/070_differential.pl).
#
#   make fuzz-protocol SECONDS=600 [SEED=n] [PGSLAB=path] [CLIENTS=n]
#   perl -I test/perl test/fuzz_protocol.pl --seconds 600 [--seed n] [--clients n]
#
# pgslab is $PGSLAB (default ./pgslab); it works with the ASan build
# (make asan; PGSLAB=$PWD/pgslab-asan).  Prints the seed first, every
# problem as it is found (with the sequence and both reply streams), and at
# the end "sequences=N mismatches=M seed=S"; exits 1 if anything failed:
# a mismatch, a broken invariant, a sanitizer report in pgslab's log, or
# pgslab no longer running.

use strict;
use warnings;

use Getopt::Long;
use PgSlab::Test::Differential;

$| = 1;
my %o = (seconds => 300, clients => 12, rounds => 1e9);
GetOptions(\%o, 'seconds=i', 'seed=i', 'clients=i', 'rounds=i') or die "bad options\n";
my $seed = $o{seed} // (time() ^ ($$ << 8)) % 1000000000;
print "# seed $seed\n";
print '# pgslab ' . ($ENV{PGSLAB} // './pgslab') . ", $o{clients} clients a round, $o{seconds} s\n";

my ($node, $proxies) = PgSlab::Test::Differential->start_servers(name => 'fuzz');
my $d = PgSlab::Test::Differential->new(cluster => $node, proxies => $proxies,
	clients => $o{clients}, seed => $seed, max_diag => 10,
	diag => sub { print "# $_[0]\n" });
$d->setup;

# Rounds in slices, so progress shows and a dead pgslab stops the run early.
my $end = time + $o{seconds};
my $round = 0;
my $dead = 0;
while (time < $end && $round < $o{rounds}) {
	my $slice = time + 30 < $end ? time + 30 : $end;
	while (time < $slice && $round < $o{rounds}) {
		$d->run_round($round++);
	}
	my $s = $d->summary;
	printf "# %d s left: sequences=%d mismatches=%d invariant_failures=%d\n",
		$end - time > 0 ? $end - time : 0, $s->{sequences}, $s->{mismatches},
		$s->{invariant_failures};
	if (grep { !$_->is_running } @$proxies) {
		$dead = 1;
		last;
	}
}

my $s = $d->summary;
my $fail = $s->{mismatches} + $s->{invariant_failures};
for my $p (@$proxies) {
	if (!$p->is_running) {
		print "# FAIL: $p->{name} is not running (wait status " . ($p->exit_status // '?') . ")\n";
		$fail++;
	}
	if (my $r = PgSlab::Test::Differential->sanitizer_report($p)) {
		print "# FAIL: sanitizer report in $p->{name}'s log:\n";
		print "# $_\n" for split /\n/, $r;
		$fail++;
	}
}
print "# slabs (baseline/last round) $_\n" for @{ $s->{slabs} };
print '# kinds: ' . join(' ', map { "$_=$s->{kinds}{$_}" } sort keys %{ $s->{kinds} }) . "\n";
print "# problems: " . scalar(@{ $s->{problems} }) . "\n";
print "sequences=$s->{sequences} mismatches=$s->{mismatches} seed=$seed\n";
exit($fail ? 1 : 0);
