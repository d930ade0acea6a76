#!/usr/bin/perl
# demo.pl -- make demo: a throw-away PostgreSQL 15, pgslab in front of it,
# a pgbench load through it, and the admin console's view of what happened.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/perl";
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $secs    = $ENV{DEMO_SECONDS} // 10;
my $clients = $ENV{DEMO_CLIENTS} // 50;

sub show
{
	my ($proxy, $cmd, @want) = @_;
	my @rows = $proxy->admin_hash($cmd);
	print "\n== $cmd ==\n";
	my @w = map { my $c = $_; my $m = length $c;
		for (@rows) { my $l = length($_->{$c} // ''); $m = $l if $l > $m } $m } @want;
	print join(' | ', map { sprintf('%-*s', $w[$_], $want[$_]) } 0 .. $#want), "\n";
	print join('-+-', map { '-' x $_ } @w), "\n";
	for my $r (@rows) {
		print join(' | ', map { sprintf('%-*s', $w[$_], $r->{ $want[$_] } // '') } 0 .. $#want), "\n";
	}
}

print "== starting a throw-away PostgreSQL 15 ==\n";
my $node = PgSlab::Test::Cluster->new(name => 'demo', max_connections => 100);
$node->start;
$node->create_user('app', 'app_secret', method => 'scram-sha-256');
$node->safe_psql('postgres', 'GRANT ALL ON SCHEMA public TO app');
my ($rc, $out, $err) = $node->pgbench('-i', '-q', '-s', '2', 'postgres',
	{ env => { PGUSER => 'app', PGPASSWORD => 'app_secret' } });
die "pgbench -i failed: $err" if $rc;
printf "PostgreSQL on 127.0.0.1:%d, pgbench tables initialized (scale 2)\n", $node->port;

print "\n== starting pgslab (transaction pooling, pool of 10, SCRAM pass-through) ==\n";
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	settings => {
		pool_mode         => 'transaction',
		default_pool_size => 10,
		max_client_conn   => 1000,
		auth_type         => 'scram-sha-256',
		log_connections   => 0,
		log_disconnections => 0,
	},
	userlist => PgSlab::Test::Proxy::userlist_from_cluster($node, 'app'),
);
$proxy->start;
printf "pgslab pid %d listening on 127.0.0.1:%d (config %s)\n", $proxy->pid, $proxy->port,
	$proxy->ini_path;

sub sysalloc_calls
{
	my ($row) = grep { $_->{name} eq 'sysalloc_calls' } $proxy->admin_hash('SHOW MEM');
	return $row ? $row->{used} : 0;
}
my $alloc0 = sysalloc_calls();

print "\n== pgbench: $clients clients, ${secs}s, TPC-B-like, through pgslab ==\n";
{
	local $ENV{PGHOST} = $proxy->host;
	local $ENV{PGPORT} = $proxy->port;
	local $ENV{PGUSER} = 'app';
	local $ENV{PGPASSWORD} = 'app_secret';
	system('pgbench', '-n', '-P', '1', '-c', $clients, '-j', '2', '-T', $secs, 'postgres') == 0
		or die "pgbench through pgslab failed\n";
}

show($proxy, 'SHOW POOLS', qw(database user cl_active cl_waiting sv_active sv_idle sv_login
	pool_mode hits misses hit_rate));
show($proxy, 'SHOW STATS', qw(database total_xact_count total_query_count total_wait_time
	avg_xact_time avg_query_time));
show($proxy, 'SHOW SLABS', qw(name obj_size active_objs total_objs slabs hits misses hit_rate
	bytes));
my ($st) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS');
printf "\nsystem allocator calls during the run: %d, for %d transactions and %d logins\n",
	sysalloc_calls() - $alloc0, $st ? $st->{total_xact_count} : 0, $clients;
my $backends = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'");
print "PostgreSQL backends serving $clients pgbench clients: $backends\n";

print "\n== stopping pgslab and PostgreSQL ==\n";
$proxy->stop;
$node->stop;
print "done\n";
