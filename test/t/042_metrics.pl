# 042_metrics.pl -- the Prometheus endpoint: exposition checked by promtool, agreement with SHOW STATS, HTTP errors, hostile scrapers.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use IO::Socket::INET;
use PgSlab::Test::Cluster qw(get_free_port);
use PgSlab::Test::Proxy;

my $promtool = (grep { -x "$_/promtool" } split /:/, $ENV{PATH})[0];
ok($promtool, 'promtool is installed (Debian package prometheus)')
	or BAIL_OUT('promtool missing: apt-get install prometheus');
$promtool .= '/promtool';

my $node = PgSlab::Test::Cluster->new(name => 'c042');
$node->start;
$node->create_user('app', 'app_pw');
$node->pgbench('-i', '-s', '1', '-q');
$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app');

my $mport = get_free_port();
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	settings => { pool_mode => 'transaction', metrics_listen => "127.0.0.1:$mport" },
	userlist => userlist_from_cluster($node, 'app', 'pgsuper'));
$proxy->start;
# Interim: until main() starts the endpoint at startup, the first console
# query does (see admin.c).
$proxy->admin('SHOW VERSION');

# One HTTP exchange: returns (status, headers text, body).
sub http
{
	my ($req, %o) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport,
		Timeout => 5) or die "connect: $!";
	print $s $req;
	local $/;
	my $resp = <$s> // '';
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $resp, 2;
	my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d{3})};
	return ($status // 0, $head // '', $body // '');
}

sub scrape { return http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") }

sub metric
{
	my ($body, $name, $labels) = @_;
	my $re = defined $labels ? qr/^\Q$name\E\{\Q$labels\E\} (\S+)$/m : qr/^\Q$name\E (\S+)$/m;
	return $body =~ $re ? $1 : undef;
}

# --- load, then scrape ------------------------------------------------------------------
my ($rc, $out, $err) = $proxy->pgbench('-n', '-S', '-c', '2', '-t', '50', '-U', 'app',
	{ env => { PGPASSWORD => 'app_pw' } });
is($rc, 0, 'pgbench through pgslab') or diag($err);
my ($status, $head, $body) = scrape();
is($status, 200, 'GET /metrics: 200');
like($head, qr{Content-Type: text/plain; version=0\.0\.4}i, 'exposition content type');
my ($clen) = $head =~ /Content-Length: (\d+)/i;
is($clen, length($body), 'Content-Length matches the body');

my $tmp = File::Temp->newdir('pgslab042_XXXXXX', TMPDIR => 1);
open(my $fh, '>', "$tmp/metrics.txt") or die;
print $fh $body;
close $fh;
my $pt = `$promtool check metrics < $tmp/metrics.txt 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($pt);

for my $name (qw(pgslab_uptime_seconds pgslab_sysalloc_calls_total pgslab_arena_mapped_bytes
	pgslab_client_connections pgslab_log_records_total)) {
	ok(defined metric($body, $name), "$name present");
}
ok(metric($body, 'pgslab_uptime_seconds') > 0, 'uptime > 0');
ok(defined metric($body, 'pgslab_budget_slots', 'database="postgres"'), 'budget slots per database');
ok($body =~ /^pgslab_budget_free_blocks\{database="postgres",order="\d+"\} \d+$/m,
	'budget free blocks by order');
my $inf = metric($body, 'pgslab_pool_wait_seconds_bucket', 'database="postgres",user="app",le="+Inf"');
is($inf, metric($body, 'pgslab_pool_wait_seconds_count', 'database="postgres",user="app"'),
	'wait histogram: the +Inf bucket equals the count');
ok(defined metric($body, 'pgslab_pool_server_idle', 'database="postgres",user="app"'),
	'per-pool server states');
ok(defined metric($body, 'pgslab_pool_hit_ratio', 'database="postgres",user="app"'),
	'per-pool hit ratio');
ok(defined metric($body, 'pgslab_slab_active_objects', 'cache="client"'), 'per-cache slab stats');
for my $side (qw(client server)) {
	for my $name (qw(pgslab_tls_handshakes_total pgslab_tls_handshake_failures_total pgslab_tls_connections)) {
		is(metric($body, $name, qq{side="$side"}), 0, "$name\{side=\"$side\"\}: 0 without TLS");
	}
}
for my $name (qw(pgslab_prepared_statements pgslab_prepared_bytes pgslab_prepared_hits_total
	pgslab_prepared_misses_total pgslab_prepared_server_hits_total pgslab_prepared_server_misses_total
	pgslab_prepared_injected_parses_total pgslab_prepared_evictions_total)) {
	ok(defined metric($body, $name), "$name present");
}

# --- counters agree with SHOW STATS ------------------------------------------------------
my ($st) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS');
($status, $head, $body) = scrape();
is(metric($body, 'pgslab_database_transactions_total', 'database="postgres"'),
	$st->{total_xact_count}, 'transactions_total = SHOW STATS total_xact_count');
is(metric($body, 'pgslab_database_queries_total', 'database="postgres"'),
	$st->{total_query_count}, 'queries_total = total_query_count');
is(metric($body, 'pgslab_database_received_bytes_total', 'database="postgres"'),
	$st->{total_received}, 'received_bytes_total = total_received');
ok($st->{total_xact_count} >= 100, 'the pgbench transactions are counted');
# the pool figures come from one view (pool_stats_foreach): both show the same
my ($pl) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' } $proxy->admin_hash('SHOW POOLS');
($status, $head, $body) = scrape();
for my $m ([ cl_active => 'client_active' ], [ cl_waiting => 'client_waiting' ],
	    [ sv_active => 'server_active' ], [ sv_idle => 'server_idle' ],
	    [ sv_used => 'server_used' ], [ sv_login => 'server_login' ], [ hits => 'hits_total' ]) {
	is(metric($body, "pgslab_pool_$m->[1]", 'database="postgres",user="app"'), $pl->{ $m->[0] },
		"pgslab_pool_$m->[1] = SHOW POOLS $m->[0] ($pl->{$m->[0]})");
}
ok($pl->{sv_idle} >= 1, 'the pgbench servers are idle in the pool');
my ($sys) = grep { $_->{name} eq 'sysalloc_calls' } $proxy->admin_hash('SHOW MEM');
ok(metric($body, 'pgslab_sysalloc_calls_total') >= $sys->{used},
	'sysalloc_calls_total is SHOW MEM\'s counter (or later)');

# --- anything else gets a proper HTTP error ---------------------------------------------------
($status) = http("GET /other HTTP/1.1\r\n\r\n");
is($status, 404, 'unknown path: 404');
($status, $head) = http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
is($status, 405, 'POST: 405');
like($head, qr/Allow: GET, HEAD/, '... with Allow');
($status) = http("garbage\r\n\r\n");
is($status, 400, 'malformed request line: 400');
($status) = http('GET /metrics HTTP/1.1' . ("\r\nX-Pad: " . ('a' x 100)) x 60 . "\r\n\r\n");
is($status, 431, 'oversized request head: 431');
($status, $head, $body) = http("HEAD /metrics HTTP/1.1\r\n\r\n");
ok($status == 200 && $body eq '', 'HEAD: 200 without a body');
($status) = http("GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
is($status, 200, 'query string ignored');

# --- a slow or hostile scraper cannot stall the pooler ------------------------------------------
my @idle = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport) } 1 .. 4;
my $slow = $idle[0];
print $slow 'GET /met';  # and never finish
is($proxy->safe_psql('postgres', 'SELECT 42', user => 'app', password => 'app_pw'), 42,
	'queries go on while scrapers hang');
($status) = scrape();
is($status, 200, 'another scrape is served meanwhile');
my $t0 = time;
$slow->blocking(1);
my $got = sysread($slow, my $buf, 100);
ok(defined $got && $got == 0 && time - $t0 <= 8, 'a stalled request is closed after the timeout');
close $_ for @idle;
my @flood = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport) } 1 .. 40;
ok($proxy->is_running, 'pgslab survives a connection flood past the limit');
close $_ for grep { defined } @flood;
# the flood's connections are reaped as their EOFs are read: retry briefly
for (1 .. 50) {
	($status) = scrape();
	last if $status == 200;
	select(undef, undef, undef, 0.05);
}
is($status, 200, 'served again after the flood');

is($proxy->stop, 0, 'pgslab exits cleanly');
$node->stop;
done_testing();
