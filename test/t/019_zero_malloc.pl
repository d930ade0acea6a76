# 019_zero_malloc.pl -- steady state makes no system-allocator calls per transaction (SHOW MEM sysalloc_calls).

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

use constant POOL => 10;

my $node = PgSlab::Test::Cluster->new(name => 'c019');
$node->start;
my ($rc, $out, $err) = $node->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i directly on the cluster') or diag($err);
my $cport = $node->port;
my $dbs = {
	postgres => "host=127.0.0.1 port=$cport dbname=postgres",
	other    => "host=127.0.0.1 port=$cport dbname=postgres",
};
# min_pool_size = pool size: every server connection is opened up front,
# so the measured runs never log in to the server.
my %settings = (pool_mode => 'transaction', default_pool_size => POOL,
	min_pool_size => POOL, max_client_conn => 100);

sub sysalloc_calls
{
	my ($proxy) = @_;
	my ($row) = grep { $_->{name} eq 'sysalloc_calls' } $proxy->admin_hash('SHOW MEM');
	return $row ? $row->{used} : undef;
}

sub bench_ok
{
	my ($proxy, $name, @args) = @_;
	my ($brc, $bout, $berr) = $proxy->pgbench('-n', '-S', '-c', POOL, '-j', '2', @args,
		{ timeout => 60 });
	ok($brc == 0 && $bout =~ /number of failed transactions: 0 /, "$name: pgbench -S @args ok")
	    or diag("$berr\n$bout");
}

sub wait_servers
{
	my ($proxy) = @_;
	for (1 .. 100) {
		my ($p) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW POOLS');
		return $p->{sv_idle} + $p->{sv_used} if $p && $p->{sv_idle} + $p->{sv_used} >= POOL;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# --- trust: not one allocation per transaction, nor per login -------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p019_trust',
		databases => $dbs,
		settings  => { %settings, auth_type => 'trust' },
		userlist  => [ [ $node->superuser, $node->superuser_password ] ]);
	$proxy->start;
	bench_ok($proxy, 'trust warm-up', '-t', '500');
	is(wait_servers($proxy), POOL, 'trust: the pool holds its 10 server connections');
	bench_ok($proxy, 'trust warm-up 2', '-t', '200');
	my $c0 = sysalloc_calls($proxy);
	my $c1 = sysalloc_calls($proxy);
	ok($c0 > 0, "trust: sysalloc_calls is counting ($c0 so far)");
	is($c1 - $c0, 0, 'trust: an admin console login + SHOW MEM makes no allocator call');
	bench_ok($proxy, 'trust measured', '-t', '2000');
	my $c2 = sysalloc_calls($proxy);
	is($c2 - $c1, 0, 'trust: 20000 transactions and 11 client logins made 0 system-allocator calls')
	    or diag("sysalloc_calls $c1 -> $c2");

	# The counter is live: a new pool (server logins) does allocate.
	my ($r, $o, $e) = $proxy->psql('other', 'SELECT 1');
	my $c3 = sysalloc_calls($proxy);
	ok($c3 > $c2, "trust: a new pool with server logins does call the allocator ($c2 -> $c3)");
	is($proxy->stop, 0, 'trust proxy exits cleanly');
}

# --- scram: allocations per login only, not per transaction ---------------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p019_scram',
		databases => $dbs,
		settings  => { %settings, auth_type => 'scram-sha-256' });
	$proxy->start;
	bench_ok($proxy, 'scram warm-up', '-t', '500');
	is(wait_servers($proxy), POOL, 'scram: the pool holds its 10 server connections');
	bench_ok($proxy, 'scram warm-up 2', '-t', '200');
	my $c0 = sysalloc_calls($proxy);
	bench_ok($proxy, 'scram short', '-t', '200');
	my $c1 = sysalloc_calls($proxy);
	bench_ok($proxy, 'scram long', '-t', '2000');
	my $c2 = sysalloc_calls($proxy);
	my ($d1, $d2) = ($c1 - $c0, $c2 - $c1);
	diag("scram: sysalloc_calls per run (11 SCRAM logins + 1 console login): -t 200: $d1, -t 2000: $d2");
	is($d2, $d1, 'scram: a 10x longer run makes exactly as many allocator calls (per login, not per transaction)');
	is($proxy->stop, 0, 'scram proxy exits cleanly');
}

# --- prepared statements (-M prepared, twice as many clients as backends) ----------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p019_prep',
		databases => $dbs,
		settings  => { %settings, auth_type => 'trust' },
		userlist  => [ [ $node->superuser, $node->superuser_password ] ]);
	$proxy->start;
	my @prep = ('-M', 'prepared', '-c', 2 * POOL, '-j', '2');
	my ($brc, $bout, $berr) = $proxy->pgbench('-n', '-S', @prep, '-t', '500', { timeout => 60 });
	ok($brc == 0 && $bout =~ /number of failed transactions: 0 /, 'prepared warm-up') or diag("$berr\n$bout");
	is(wait_servers($proxy), POOL, 'prepared: the pool holds its 10 server connections');
	($brc, $bout, $berr) = $proxy->pgbench('-n', '-S', @prep, '-t', '200', { timeout => 60 });
	my $c1 = sysalloc_calls($proxy);
	($brc, $bout, $berr) = $proxy->pgbench('-n', '-S', @prep, '-t', '1000', { timeout => 60 });
	ok($brc == 0 && $bout =~ /number of failed transactions: 0 /, 'prepared measured') or diag("$berr\n$bout");
	my $c2 = sysalloc_calls($proxy);
	is($c2 - $c1, 0, 'prepared: 20000 prepared transactions (20 clients, 10 backends) made 0 system-allocator calls')
	    or diag("sysalloc_calls $c1 -> $c2");
	my ($st) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS');
	ok($st->{total_bind_count} >= 20000, "prepared: the statements were bound by name ($st->{total_bind_count} binds)");
	is($proxy->stop, 0, 'prepared proxy exits cleanly');
}

done_testing();
