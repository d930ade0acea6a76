# 070_differential.pl -- issue 10: randomized differential protocol test.  Random but
# valid client sequences (simple and extended protocol, pipelines, Flush, errors
# mid-pipeline, COPY both ways, cursors, SET/RESET, early leaving) run directly
# against PostgreSQL and through pgslab in transaction mode with a small pool; the
# reply streams must be equal, and after every round the pool is idle, no
# abandoned row is visible and no slab cache grows.  SEED=n reproduces a run;
# DIF_SECONDS / DIF_ROUNDS / DIF_CLIENTS change the bounds.  Longer runs:
# make fuzz-protocol (test/fuzz_protocol.pl).

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Differential;

my $seed = $ENV{SEED} // (time() ^ ($$ << 8)) % 1000000000;
my $seconds = $ENV{DIF_SECONDS} // 60;
my $max_rounds = $ENV{DIF_ROUNDS} // 150;
my $clients = $ENV{DIF_CLIENTS} // 12;
diag("seed $seed");

# Rounds alternate between a pool of 2 without a reset between clients and a
# pool of 3 that runs DISCARD ALL on every release.
my ($node, $proxies) = PgSlab::Test::Differential->start_servers(name => '070');

my $d = PgSlab::Test::Differential->new(cluster => $node, proxies => $proxies,
	clients => $clients, seed => $seed, diag => sub { diag($_[0]) });
$d->setup;
my $s = $d->run(seconds => $seconds, rounds => $max_rounds);

diag(sprintf('%d sequences in %d rounds (seed %d); %.1f s running, %.1f s checking',
	$s->{sequences}, $s->{rounds}, $seed, $s->{time_run} // 0, $s->{time_check} // 0));
diag("slabs (baseline/last round) $_") for @{ $s->{slabs} };
diag('kinds: ' . join(' ', map { "$_=$s->{kinds}{$_}" } sort keys %{ $s->{kinds} }));
cmp_ok($s->{sequences}, '>=', ($max_rounds < 5 ? $max_rounds : 5) * $clients,
	"ran $s->{sequences} sequences ($s->{rounds} rounds)");
is($s->{mismatches}, 0, "mismatches=0 (seed $seed)");
is($s->{invariant_failures}, 0, "invariant failures=0 (seed $seed)");
if (@{ $s->{problems} }) {
	diag(scalar(@{ $s->{problems} }) . ' problems; first: ' . (split /\n/, $s->{problems}[0])[0]);
}
for my $p (@$proxies) {
	ok($p->is_running, $p->{name} . ' is still running');
	is(PgSlab::Test::Differential->sanitizer_report($p), undef,
		$p->{name} . ': no sanitizer report in the log');
}

done_testing();
