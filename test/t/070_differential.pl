# 070_differential.pl -- issue 10: randomized differential protocol test.  Random but
# valid client sequences (simple and extended protocol, pipelines, Flush, errors
# mid-pipeline, COPY both ways, cursors, SET/RESET, early leaving) run directly
# against PostgreSQL and through pgslab in transaction mode with a small pool; the
# reply streams must be equal, and after every round the pool is idle, no
# abandoned row is visible and no slab cache grows.  SEED=n reproduces a run;
# DIF_SECONDS / DIF_ROUNDS / DIF_CLIENTS change the bounds.

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

my $node = PgSlab::Test::Cluster->new(name => 'c070');
$node->start;
$node->create_user('dif', 'dif_pw');

# Two proxies, rounds alternate: a pool of 2 without a reset between clients,
# and a pool of 3 that runs DISCARD ALL on every release.
my @proxies;
for my $p ([ 'p070a', 2, 0 ], [ 'p070b', 3, 1 ]) {
	my $proxy = PgSlab::Test::Proxy->new(
		cluster  => $node,
		name     => $p->[0],
		settings => {
			pool_mode                 => 'transaction',
			default_pool_size         => $p->[1],
			server_reset_query_always => $p->[2],
			max_client_conn           => 200,
			query_wait_timeout        => 60,
		},
		userlist => userlist_from_cluster($node, 'dif'));
	$proxy->start;
	push @proxies, $proxy;
}

my $d = PgSlab::Test::Differential->new(cluster => $node, proxies => \@proxies,
	clients => $clients, seed => $seed, diag => sub { diag($_[0]) });
$d->setup;
my $s = $d->run(seconds => $seconds, rounds => $max_rounds);

diag(sprintf('%d sequences in %d rounds (seed %d)', $s->{sequences}, $s->{rounds}, $seed));
diag('kinds: ' . join(' ', map { "$_=$s->{kinds}{$_}" } sort keys %{ $s->{kinds} }));
cmp_ok($s->{sequences}, '>=', ($max_rounds < 5 ? $max_rounds : 5) * $clients, "ran $s->{sequences} sequences ($s->{rounds} rounds)");
is($s->{mismatches}, 0, "mismatches=0 (seed $seed)");
is($s->{invariant_failures}, 0, "invariant failures=0 (seed $seed)");
if (@{ $s->{problems} }) {
	diag(scalar(@{ $s->{problems} }) . ' problems; first: ' . (split /\n/, $s->{problems}[0])[0]);
}
for my $p (@proxies) {
	ok($p->is_running, $p->{name} . ' is still running');
	unlike($p->log_content, qr/ERROR: AddressSanitizer|runtime error:|LeakSanitizer/,
		$p->{name} . ': no sanitizer report in the log');
}

done_testing();
