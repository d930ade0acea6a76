# 040_admin_show.pl -- admin console: every SHOW command's columns and types, values under load, access control.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

# documented helpers the module does not export
*spawn_command = \&PgSlab::Test::Cluster::spawn_command;
*wait_pid = \&PgSlab::Test::Cluster::wait_pid;

my $node = PgSlab::Test::Cluster->new(name => 'c040');
$node->start;
$node->create_user('app', 'app_pw');
$node->create_user('watcher', 'watcher_pw');
$node->pgbench('-i', '-s', '1', '-q');
$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app');

my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	settings => { pool_mode => 'transaction', default_pool_size => 4, stats_users => 'watcher',
		stats_period => 1 },
	userlist => userlist_from_cluster($node, 'app', 'watcher', 'pgsuper'));
$proxy->start;

# Console handle: simple query protocol only (no server-side prepare).
sub console
{
	my (%o) = @_;
	return $proxy->connect_dbi('pgslab', attrs => { pg_server_prepare => 0 }, %o);
}

# Column names, type names and rows of one console command.
sub show
{
	my ($dbh, $sql) = @_;
	my $sth = $dbh->prepare($sql);
	$sth->execute;
	my @names = @{ $sth->{NAME} // [] };
	my @types = @{ $sth->{pg_type} // [] };
	my $rows = @names ? $sth->fetchall_arrayref({}) : [];
	return (\@names, \@types, $rows);
}

my $adm = console();

# --- every SHOW command: PgBouncer's columns, in order, with their types -----------------
my @sock = qw(type user database replication state addr port local_addr local_port
	connect_time request_time wait wait_us close_needed ptr link remote_pid tls
	application_name prepared_statements id);
my @sockt = qw(text text text text text text int4 text int4 text text int4 int4 int4 text text
	int4 text text int4 int8);
my @stats_cols = qw(server_assignment_count xact_count query_count received sent xact_time
	query_time wait_time client_parse_count server_parse_count bind_count client_login_count);
my %expect = (
	VERSION => [ [qw(version)], [qw(text)] ],
	CONFIG => [ [qw(key value default changeable)], [qw(text text text text)] ],
	DATABASES => [ [qw(name host port database force_user pool_size min_pool_size
		reserve_pool_size server_lifetime pool_mode load_balance_hosts max_connections
		current_connections max_client_connections current_client_connections paused
		disabled)],
		[qw(text text int4 text text int4 int4 int4 int4 text text int4 int4 int4 int4 int4
		int4)] ],
	USERS => [ [qw(name pool_size reserve_pool_size pool_mode max_user_connections
		current_connections max_user_client_connections current_client_connections)],
		[qw(text text text text int4 int4 int4 int4)] ],
	POOLS => [ [qw(database user cl_active cl_waiting cl_active_cancel_req
		cl_waiting_cancel_req sv_active sv_active_cancel sv_being_canceled sv_idle sv_used
		sv_tested sv_login maxwait maxwait_us pool_mode load_balance_hosts hits misses
		hit_rate)],
		[ qw(text text), ('int4') x 13, qw(text text int8 int8 float8) ] ],
	CLIENTS => [ [@sock], [@sockt] ],
	SERVERS => [ [@sock], [@sockt] ],
	SOCKETS => [ [ @sock, qw(recv_pos pkt_pos pkt_remain send_pos send_remain pkt_avail
		send_avail) ], [ @sockt, ('int4') x 7 ] ],
	ACTIVE_SOCKETS => [ [ @sock, qw(recv_pos pkt_pos pkt_remain send_pos send_remain
		pkt_avail send_avail) ], [ @sockt, ('int4') x 7 ] ],
	STATS => [ [ 'database', (map { "total_$_" } @stats_cols),
		qw(avg_server_assignment_count avg_xact_count avg_query_count avg_recv avg_sent
		avg_xact_time avg_query_time avg_wait_time avg_client_parse_count
		avg_server_parse_count avg_bind_count avg_client_login_count) ],
		[ 'text', ('numeric') x 24 ] ],
	STATS_TOTALS => [ [qw(database server_assignment_count xact_count query_count
		bytes_received bytes_sent xact_time query_time wait_time client_parse_count
		server_parse_count bind_count client_login_count)], [ 'text', ('numeric') x 12 ] ],
	STATS_AVERAGES => [ [qw(database server_assignment_count xact_count query_count
		bytes_received bytes_sent xact_time query_time wait_time avg_client_parse_count
		avg_server_parse_count avg_bind_count avg_client_login_count)],
		[ 'text', ('numeric') x 12 ] ],
	TOTALS => [ [qw(name value)], [qw(text numeric)] ],
	LISTS => [ [qw(list items)], [qw(text int4)] ],
	MEM => [ [qw(name size used free memtotal)], [qw(text int8 int8 int8 int8)] ],
	STATE => [ [qw(key value)], [qw(text text)] ],
	DNS_HOSTS => [ [qw(hostname ttl addrs)], [qw(text int8 text)] ],
	DNS_ZONES => [ [qw(zonename serial count)], [qw(text int8 int4)] ],
	SLABS => [ [qw(name obj_size objs_per_slab active_objs total_objs slabs allocs frees hits
		misses hit_rate grows reaps high_water bytes)],
		[ 'text', ('int8') x 9, 'float8', ('int8') x 4 ] ],
	LOG => [ [qw(records written dropped dropped_important pending bytes queue_high_water
		writes write_errors buffer_allocs buffer_reuses buffer_reuse_rate)],
		[ ('int8') x 11, 'float8' ] ],
	BUDDY => [ [qw(type database user slots used free blocks frag_index fair_share demand
		grows shrinks lent taken)],
		[ qw(text text text int8 int8 int8 text float8), ('int8') x 6 ] ],
	WAITS => [ [qw(database user hits misses hit_rate waits avg_wait_us wait_lt_100us
		wait_lt_1ms wait_lt_10ms wait_lt_100ms wait_lt_1s wait_lt_10s wait_ge_10s)],
		[ 'text', 'text', 'int8', 'int8', 'float8', ('int8') x 9 ] ],
	LATENCY => [ [qw(database user queries query_p50_us query_p95_us query_p99_us xacts
		xact_p50_us xact_p95_us xact_p99_us waits wait_p50_us wait_p95_us wait_p99_us)],
		[ 'text', 'text', ('int8') x 12 ] ],
);
# one pooled client, so CLIENTS/SERVERS/POOLS have rows
my $app = $proxy->connect_dbi('postgres', user => 'app', password => 'app_pw',
	params => { application_name => 'app040' });
$app->do('SELECT 1');
my %res;
for my $cmd (sort keys %expect) {
	my ($names, $types, $rows) = show($adm, "SHOW $cmd");
	is_deeply($names, $expect{$cmd}[0], "SHOW $cmd: columns in order");
	is_deeply($types, $expect{$cmd}[1], "SHOW $cmd: column types");
	$res{$cmd} = $rows;
}
is($res{VERSION}[0]{version}, 'pgslab 0.1.0', 'SHOW VERSION');
is(scalar @{ $res{DNS_ZONES} }, 0, 'SHOW DNS_ZONES is empty');
is_deeply([ map { "$_->{key}=$_->{value}" } @{ $res{STATE} } ],
	[qw(active=yes paused=no suspended=no)], 'SHOW STATE rows');
is_deeply([ map { $_->{list} } @{ $res{LISTS} } ],
	[qw(databases users peers pools peer_pools free_clients used_clients login_clients
	free_servers used_servers dns_names dns_zones dns_queries dns_pending)], 'SHOW LISTS rows');
my ($cfg) = grep { $_->{key} eq 'default_pool_size' } @{ $res{CONFIG} };
is_deeply($cfg, { key => 'default_pool_size', value => '4', default => '20',
	changeable => 'yes' }, 'SHOW CONFIG row');
my ($lp) = grep { $_->{key} eq 'listen_port' } @{ $res{CONFIG} };
is($lp->{changeable}, 'no', 'listen_port is not changeable');
my ($sys) = grep { $_->{name} eq 'sysalloc_calls' } @{ $res{MEM} };
ok($sys && $sys->{used} =~ /^\d+$/ && $sys->{used} > 0, 'SHOW MEM: sysalloc_calls in "used"');
ok((grep { $_->{name} eq 'client' && $_->{size} > 0 && $_->{used} >= 2 } @{ $res{MEM} }),
	'SHOW MEM: the client cache row');
ok((grep { $_->{name} eq 'arena' } @{ $res{MEM} }), 'SHOW MEM: arena row');
ok((grep { $_->{name} eq 'client' && $_->{active_objs} >= 2 } @{ $res{SLABS} }),
	'SHOW SLABS: client cache');
ok($res{LOG}[0]{records} > 0, 'SHOW LOG counts records');
my ($lat) = grep { $_->{user} eq 'app' } @{ $res{LATENCY} };
ok($lat && $lat->{queries} >= 1 && $lat->{xacts} >= 1, 'SHOW LATENCY counts the pool\'s queries');
ok($lat && $lat->{query_p50_us} <= $lat->{query_p95_us}
	&& $lat->{query_p95_us} <= $lat->{query_p99_us}, 'SHOW LATENCY: p50 <= p95 <= p99');
ok((grep { $_->{type} eq 'domain' && $_->{database} eq 'postgres' } @{ $res{BUDDY} }),
	'SHOW BUDDY: the database\'s budget domain');
my ($db) = grep { $_->{name} eq 'postgres' } @{ $res{DATABASES} };
is($db->{pool_size}, 4, 'SHOW DATABASES pool_size');
is($db->{current_client_connections}, 1, 'SHOW DATABASES current_client_connections');
ok((grep { $_->{name} eq 'pgslab' } @{ $res{DATABASES} }), 'SHOW DATABASES lists the console');
my ($u) = grep { $_->{name} eq 'app' } @{ $res{USERS} };
is($u->{pool_size}, '', 'SHOW USERS pool_size empty when unset (text, as PgBouncer)');
my ($appc) = grep { $_->{application_name} eq 'app040' } @{ $res{CLIENTS} };
ok($appc, 'SHOW CLIENTS shows the pooled client with its application_name');
is($appc->{user}, 'app', '... its user');
is($appc->{state}, 'idle', '... idle between transactions');
like($appc->{connect_time}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, '... connect_time');
my ($con) = grep { $_->{database} eq 'pgslab' } @{ $res{CLIENTS} };
ok($con && $con->{user} eq 'pgsuper', 'SHOW CLIENTS lists the console client (database pgslab)');
ok((grep { $_->{type} eq 'S' && $_->{database} eq 'postgres' && $_->{remote_pid} > 0 }
	@{ $res{SERVERS} }), 'SHOW SERVERS: a server with its backend pid');
ok((grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' } @{ $res{POOLS} }),
	'SHOW POOLS: the app pool');
$app->disconnect;

# --- syntax: case, trailing semicolon, aliases, errors -------------------------------
is(($proxy->admin('show version;'))[0][0], 'pgslab 0.1.0', 'lower case with ;');
is(($proxy->admin('  ShOw   VeRsIoN  ;  '))[0][0], 'pgslab 0.1.0', 'mixed case, blanks');
is(($proxy->admin('SELECT version'))[0][0], 'pgslab 0.1.0', 'SELECT x is SHOW x');
is(($proxy->admin('SHOW client_encoding'))[0][0], 'UTF8', 'driver probe: SHOW client_encoding');
my ($rc, $out, $err) = $proxy->psql('pgslab', 'SHOW NOSUCH');
like($err, qr/invalid command 'SHOW NOSUCH', use SHOW HELP;/, 'unknown SHOW: error');
($rc, $out, $err) = $proxy->psql('pgslab', 'SHOW HELP');
is($rc, 0, 'SHOW HELP succeeds');
like($err, qr/NOTICE:\s+Console usage/, 'SHOW HELP: NOTICE');
like($err, qr/SHOW HELP\|CONFIG\|DATABASES/, '... with the usage text');
like($err, qr/PREPARED_STATEMENTS\|PREPARED_STATS\|TLS \(pgslab\)/, '... naming SHOW PREPARED_STATS and SHOW TLS');
{
	my @tls = $proxy->admin_hash('SHOW TLS');
	is(join(';', map { join(',', @$_{qw(side sslmode protocols handshakes handshake_failures connections)}) } @tls),
		'client,disable,secure,0,0,0;server,prefer,secure,0,0,0',
		'SHOW TLS: one row per side, no TLS configured for clients, none used');
	my @ps = $proxy->admin_hash('SHOW PREPARED_STATS');
	is(join(',', sort keys %{ $ps[0] // {} }),
		'binds,bytes,client_names,evictions,hit_rate,hits,injected_parses,misses,parses,'
		    . 'server_hit_rate,server_hits,server_misses,server_statements,statements',
		'SHOW PREPARED_STATS: one row with the registry figures');
}
{
	my @warn;
	local $SIG{__WARN__} = sub { push @warn, @_ };
	my $h = console(attrs => { pg_server_prepare => 0, PrintWarn => 1 });
	my $sth = $h->prepare('SHOW HELP');
	$sth->execute;
	is($sth->{pg_cmd_status} // 'SHOW', 'SHOW', 'SHOW HELP completes with SHOW');
	ok((grep { /Console usage/ } @warn), 'DBD::Pg receives the usage NOTICE');
	$h->disconnect;
}
# --- access control ------------------------------------------------------------------
my $st = console(user => 'watcher', password => 'watcher_pw');
my (undef, undef, $rows) = show($st, 'SHOW POOLS');
ok(scalar @$rows, 'stats_users may SHOW');
for my $cmd ('PAUSE', 'RESUME', 'KILL postgres', 'RELOAD', 'SET default_pool_size = 5',
	'SHUTDOWN', 'DISABLE postgres', 'RECONNECT') {
	my $ok = eval { $st->do($cmd); 1 };
	my $e = $@;
	ok(!$ok && $st->state eq '42501', "stats user: $cmd refused with 42501");
	like($e, qr/permission denied .*not in admin_users/, "... saying why ($cmd)");
}
$st->disconnect;
ok(!eval { console(user => 'app', password => 'app_pw'); 1 }, 'ordinary user cannot open the console');
like($@, qr/neither admin_users nor stats_users/, '... with the reason');
ok(eval { $proxy->connect_dbi('pgbouncer', attrs => { pg_server_prepare => 0 })
	->selectrow_array('SHOW VERSION') }, 'the console answers as "pgbouncer" too');

# --- values under pgbench load ------------------------------------------------------------
my $tmp = File::Temp->newdir('pgslab040_XXXXXX', TMPDIR => 1);
# extended protocol (pgbench -M extended sends Parse/Bind/Execute): a clear error
open(my $sfh, '>', "$tmp/show.sql") or die;
print $sfh "SHOW POOLS;\n";
close $sfh;
($rc, $out, $err) = $proxy->pgbench('-n', '-M', 'extended', '-t', '1', '-f', "$tmp/show.sql",
	'pgslab');
isnt($rc, 0, 'extended protocol refused');
like($err, qr/extended query protocol not supported by admin console/, '... with a clear error');

my %benv = (PGHOST => $proxy->host, PGPORT => $proxy->port, PGUSER => 'app',
	PGPASSWORD => 'app_pw', PGDATABASE => 'postgres');
my $bpid = spawn_command([ pg_bindir() . '/pgbench', '-n', '-S', '-c', '4', '-T', '3' ],
	env => \%benv, stdout_file => "$tmp/bench.out", stderr_file => "$tmp/bench.err");
my ($max_sv, $max_cl, $sum_ok) = (0, 0, 0);
for (1 .. 200) {
	my ($pool) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' }
		$proxy->admin_hash('SHOW POOLS');
	if ($pool) {
		$max_sv = $pool->{sv_active} if $pool->{sv_active} > $max_sv;
		$max_cl = $pool->{cl_active} if $pool->{cl_active} > $max_cl;
		$sum_ok ||= $pool->{cl_active} + $pool->{cl_waiting} == 4;
	}
	last if $max_sv > 0 && $sum_ok && $_ > 20;
	select(undef, undef, undef, 0.02);
}
ok($max_sv >= 1, "sv_active moves under load (max $max_sv)");
ok($max_cl >= 1, "cl_active moves under load (max $max_cl)");
ok($sum_ok, 'cl_active + cl_waiting = pgbench clients');
is(wait_pid($bpid, 30), 0, 'pgbench run ok');
my ($pool) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' }
	$proxy->admin_hash('SHOW POOLS');
is($pool->{cl_active} + $pool->{cl_waiting} + $pool->{sv_active}, 0,
	'after the run: no clients, no active servers');
ok($pool->{hits} > 0 && $pool->{hit_rate} > 0, 'pool hit rate');

# --- STATS count exactly the transactions pgbench reports ------------------------------------
# A custom script (the -S statement): pgbench then runs no queries of its own.
open(my $fh, '>', "$tmp/select.sql") or die;
print $fh "\\set aid random(1, 100000)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n";
close $fh;
sub xacts
{
	my ($s) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS');
	return $s;
}
my $before = xacts();
($rc, $out, $err) = $proxy->pgbench('-n', '-f', "$tmp/select.sql", '-c', '3', '-t', '40',
	'-U', 'app', { env => { PGPASSWORD => 'app_pw' } });
my ($processed) = $out =~ m{processed: (\d+)/};
is($processed, 120, 'pgbench processed 120 transactions') or diag($err);
my $after = xacts();
is($after->{total_xact_count} - $before->{total_xact_count}, $processed,
	'total_xact_count increased by exactly the transactions pgbench reports');
is($after->{total_query_count} - $before->{total_query_count}, $processed,
	'total_query_count likewise (one query per transaction)');
is($after->{total_client_login_count} - $before->{total_client_login_count}, 4,
	'total_client_login_count: one per pgbench client plus its initial connection');
my ($tot) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS_TOTALS');
is($tot->{xact_count}, $after->{total_xact_count}, 'STATS_TOTALS agrees with STATS');
my %totals = map { $_->[0] => $_->[1] } $proxy->admin('SHOW TOTALS');
# as PgBouncer, TOTALS also counts each console command as one transaction of one query
my $console = $totals{total_xact_count} - $after->{total_xact_count};
cmp_ok($console, '>', 0, 'TOTALS: the pool\'s transactions plus the console\'s commands');
is($totals{total_query_count} - $after->{total_query_count}, $console,
	'... the same console count in total_query_count (one database)');
ok(exists $totals{avg_xact_count} && exists $totals{total_client_login_count}, 'TOTALS names');
# averages appear once a stats period (1 s here) has passed over traffic
$bpid = spawn_command([ pg_bindir() . '/pgbench', '-n', '-f', "$tmp/select.sql", '-c', '2',
	'-T', '3' ], env => \%benv, stdout_file => "$tmp/bench2.out", stderr_file => "$tmp/bench2.err");
my $avg_ok = 0;
for (1 .. 60) {
	my ($a) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS_AVERAGES');
	last if $avg_ok = ($a && $a->{xact_count} > 0 && $a->{query_time} > 0);
	select(undef, undef, undef, 0.1);
}
is(wait_pid($bpid, 30), 0, 'second pgbench run ok');
ok($avg_ok, 'STATS_AVERAGES xact_count > 0 after a stats period with traffic');

is($proxy->stop, 0, 'pgslab exits cleanly');
$node->stop;
done_testing();
