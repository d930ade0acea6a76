# 073_pgbouncer_compat.pl -- issue 15: behaviours PgBouncer's own release suite checks
# (test_no_database, test_no_user, test_admin, test_limits), asserted here through DBD::Pg,
# psql and raw sockets: login failures and their log lines, client connection limits and
# their counts, pool-size precedence, min_pool_size of a forced-user database, the reserve
# pool, server_lifetime 0, console details.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use DBD::Pg qw(:async);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c073');
$node->start;
$node->create_user($_, "${_}_pw") for qw(app u1 u2 u3 u4 forced);
my $cport = $node->port;

sub poll_until
{
	my ($cb, $secs) = @_;
	my $deadline = time + ($secs // 10);
	for (my $i = 0; $i < 1000; $i++) {
		return 1 if $cb->();
		return 0 if time >= $deadline;
		sleep(0.05);
	}
	return 0;
}

sub slurp { PgSlab::Test::Cluster::_slurp($_[0]) }

# backends of <user>; <sleeping>: only those running our pg_sleep
sub backends
{
	my ($user, $sleeping) = @_;
	my $busy = $sleeping ? " AND state = 'active' AND query LIKE 'SELECT pg_sleep%'" : '';
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE usename = '$user' AND backend_type = 'client backend'$busy");
	$n =~ s/\s+//g;
	return $n;
}

my $db = "host=127.0.0.1 port=$cport dbname=postgres";
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	databases => {
		postgres  => $db,
		limited   => "$db max_db_client_connections=2",
		small     => "$db pool_size=3",
		forcedmin => "$db user=forced min_pool_size=2",
		forcedbig => "$db user=forced pool_size=3",
		nosuchpg  => "host=127.0.0.1 port=$cport dbname=no_such_pg_db",
		tiny      => "$db max_db_connections=2",
		closed    => "host=127.0.0.1 port=1 dbname=postgres",
	},
	users => {
		u1 => 'pool_size=1',
		u4 => 'max_user_client_connections=2',
		cfgonly => 'pool_size=7',
		u3 => 'transaction_timeout=1',
		u2 => 'pool_size=1 reserve_pool_size=1',
	},
	settings => { pool_mode => 'session', default_pool_size => 5, log_connections => 1,
		log_disconnections => 1, reserve_pool_timeout => 1 },
	# force_user logs in with the auth_file's secret: a plain one for "forced"
	userlist => [ @{ userlist_from_cluster($node, qw(app u1 u2 u3 u4 pgsuper)) },
		[ 'forced', 'forced_pw' ], [ 'ghost', 'ghost_pw' ] ]);
$proxy->start;
my $log = $proxy->logfile;

# --- min_pool_size of a forced-user database: filled before any client ----------------------------
ok(poll_until(sub { backends('forced') == 2 }, 10) && backends('forced') == 2,
	'forcedmin: min_pool_size 2 opened without a client');
ok($proxy->wait_for_log(qr/new connection to server \(from 127\.0\.0\.1:\d+\)/),
	'"new connection to server (from ADDR:PORT)"');


sub conn
{
	my ($dbname, $user, $pw) = @_;
	return eval { $proxy->connect_dbi($dbname, user => $user, password => $pw // "${user}_pw") };
}

sub fails_with
{
	my ($dbname, $user, $pw, $re, $name) = @_;
	my $dbh = conn($dbname, $user, $pw);
	ok(!$dbh, $name);
	like($DBI::errstr // '', $re, "... $name: error text");
	$dbh->disconnect if $dbh;
}

# --- unknown database: authentication first, then PgBouncer's words ----------------------------
fails_with('nosuchdb', 'app', 'wrong', qr/SASL authentication failed/,
	'unknown database, wrong password: an auth failure (no hint the database is missing)');
fails_with('nosuchdb', 'app', undef, qr/no such database: nosuchdb/,
	'unknown database, right password: no such database');
ok($proxy->wait_for_log(qr/closing because: no such database: nosuchdb \(age=/),
	'... logged as "closing because"');
fails_with('nosuchdb', 'nobody', 'x', qr/SASL authentication failed/,
	'unknown database and unknown user: the same auth failure');
fails_with('postgres', 'nobody', 'x', qr/SASL authentication failed/, 'unknown user (SCRAM)');
ok($proxy->wait_for_log(qr/closing because: SASL authentication failed/), '... logged');

# the server refuses the login: its severity and message in the log, and to the client
fails_with('nosuchpg', 'app', undef, qr/database "no_such_pg_db" does not exist/,
	'a database PostgreSQL does not have: its error');
ok($proxy->wait_for_log(qr/server login failed: FATAL database "no_such_pg_db" does not exist/),
	'... "server login failed: FATAL ..." in the log');
ok($proxy->wait_for_log(qr/closing because: database "no_such_pg_db" does not exist/),
	'... and the client\'s close');

# hostile: a login abandoned at every step leaves no count behind
for my $cut (0, 1, 2) {
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, startup_packet(user => 'u1', database => 'limited')) if $cut >= 1;
	read_outcome($s, 2) if $cut >= 2;
	close $s;
}

# --- max_db_client_connections ------------------------------------------------------------------
{
	my @c = map { conn('limited', 'app') } 1 .. 2;
	ok($c[0] && $c[1], 'limited: 2 clients allowed');
	my ($row) = grep { $_->{name} eq 'limited' } $proxy->admin_hash('SHOW DATABASES');
	is($row->{current_client_connections}, 2, 'SHOW DATABASES: current_client_connections 2');
	is($row->{max_client_connections}, 2, '... max_client_connections 2');
	fails_with('limited', 'app', undef, qr/client connections exceeded \(max_db_client_connections\)/,
		'a third is refused');
	fails_with('limited', 'app', undef, qr/max_db_client_connections/, '... and again');
	fails_with('limited', 'app', 'wrong', qr/SASL authentication failed/,
		'a wrong password at a full database: an auth failure first');
	$c[1]->disconnect;
	ok(poll_until(sub { my $d = conn('limited', 'app'); $c[1] = $d; $d }),
		'after one leaves, a new client gets in');
	$_->disconnect for grep { $_ } @c;
	ok(poll_until(sub { my ($r) = grep { $_->{name} eq 'limited' }
			$proxy->admin_hash('SHOW DATABASES'); $r->{current_client_connections} == 0 }),
		'all gone: the count is back to 0');

	# the global setting, live; the console's admin users are exempt
	$proxy->admin('SET max_db_client_connections = 1');
	my $a = conn('postgres', 'app');
	ok($a, 'global limit 1: one client');
	fails_with('postgres', 'u3', undef, qr/max_db_client_connections/, '... a second is refused');
	my ($pg) = grep { $_->{name} eq 'pgslab' } $proxy->admin_hash('SHOW DATABASES');
	is($pg->{max_client_connections}, 1, 'the console row shows the global limit');
	my @adm = map { scalar $proxy->admin('SHOW VERSION') } 1 .. 2;
	ok($adm[1], 'admin users still reach the console');
	$a->disconnect;
	$proxy->admin('SET max_db_client_connections = 0');
}

# --- max_user_client_connections ---------------------------------------------------------------
{
	my @c = (conn('postgres', 'u4'), conn('small', 'u4'));
	ok($c[0] && $c[1], 'u4: 2 clients (over two databases)');
	my ($u) = grep { $_->{name} eq 'u4' } $proxy->admin_hash('SHOW USERS');
	is($u->{current_client_connections}, 2, 'SHOW USERS: current_client_connections 2');
	is($u->{max_user_client_connections}, 2, '... max_user_client_connections 2');
	fails_with('postgres', 'u4', undef,
		qr/client connections exceeded \(max_user_client_connections\)/, 'a third is refused');
	$_->disconnect for @c;
	ok(poll_until(sub { my ($r) = grep { $_->{name} eq 'u4' } $proxy->admin_hash('SHOW USERS');
			$r->{current_client_connections} == 0 }), 'the count goes back to 0');
	my @names = map { $_->{name} } $proxy->admin_hash('SHOW USERS');
	ok(grep({ $_ eq 'ghost' } @names), 'SHOW USERS lists an auth_file user nobody used');
	ok(grep({ $_ eq 'cfgonly' } @names), '... and a [users] entry');
	is(scalar(grep { $_ eq 'ghost' } @names), 1, '... once');
	my @again = map { $_->{name} } $proxy->admin_hash('SHOW USERS');
	is_deeply([ sort @again ], [ sort @names ], '... and listing them creates nothing new');
	ok(!grep({ $_ eq 'nobody' } @names), '... never a name that only failed to log in');
	$proxy->admin('SET max_user_client_connections = 1');
	my $a = conn('postgres', 'u3');
	fails_with('small', 'u3', undef, qr/max_user_client_connections/, 'global limit 1: refused');
	$a->disconnect;
	$proxy->admin('SET max_user_client_connections = 0');
}

# --- pool sizes: the pool user's [users] pool_size, then the database's, then the default -------
sub sleepers
{
	my ($dbname, $user, $n, $secs) = @_;
	my @h;
	for (1 .. $n) {
		my $d = conn($dbname, $user) or next;
		$d->do("SELECT pg_sleep($secs)", { pg_async => PG_ASYNC });
		push @h, $d;
	}
	return @h;
}

sub finish { for my $d (@_) { $d->pg_result; $d->disconnect } }

{
	# the most backends seen at once while the clients run (bounded polling)
	my $max_over = sub {
		my ($user, $secs) = @_;
		my ($max, $deadline) = (0, time + $secs);
		for (my $i = 0; $i < 200 && time < $deadline; $i++) {
			my $n = backends($user, 1);
			$max = $n if $n > $max;
			sleep(0.1);
		}
		return $max;
	};
	my @h = sleepers('small', 'u1', 3, 1.5);
	is($max_over->('u1', 3), 1, '[users] pool_size 1 beats the database\'s pool_size 3');
	finish(@h);
	@h = sleepers('forcedbig', 'u1', 4, 3);
	is($max_over->('forced', 5), 3,
		'with force_user, the login user\'s entry does not count: the database\'s pool_size 3');
	finish(@h);
}

# --- the reserve: [users] reserve_pool_size, logged as PgBouncer does ----------------------------
{
	my @h = sleepers('postgres', 'u2', 3, 4);
	ok(poll_until(sub { backends('u2', 1) == 2 }, 10), 'pool_size 1 + reserve 1: a second server after reserve_pool_timeout');
	ok($proxy->wait_for_log(qr/taking connection from reserve_pool/), '... "taking connection from reserve_pool"');
	is(backends('u2', 1), 2, '... and no more than the reserve');
	finish(@h);
}

# --- server_lifetime 0: a server is used once ------------------------------------------------------
{
	$proxy->admin('SET server_lifetime = 0');
	my $d = conn('postgres', 'u3');
	my ($pid1) = $d->selectrow_array('SELECT pg_backend_pid()');
	$d->disconnect;
	ok(poll_until(sub { backends('u3') == 0 }), 'server_lifetime 0: the server is closed once idle');
	$d = conn('postgres', 'u3');
	my ($pid2) = $d->selectrow_array('SELECT pg_backend_pid()');
	isnt($pid2, $pid1, '... the next client gets a new one');
	$d->disconnect;
	$proxy->admin('SET server_lifetime = 3600');
}

# --- max_db_connections: a late pool gets a slot from idle pools -------------------------------
{
	my @c = map { conn('tiny', $_) } qw(u1 u2);
	$_->do('SELECT 1') for @c;
	$_->disconnect for @c;     # session mode: their servers stay, idle
	ok(poll_until(sub { my ($r) = grep { $_->{name} eq 'tiny' } $proxy->admin_hash('SHOW DATABASES');
			$r->{current_connections} == 2 }), 'tiny: both slots held by idle servers');
	my $d = eval {
		$proxy->connect_dbi('tiny', user => 'u4', password => 'u4_pw',
			params => { connect_timeout => 10 });
	};
	ok($d && eval { $d->selectrow_array('SELECT 1') }, 'a third pool gets a slot: an idle server is closed for it')
		or diag($DBI::errstr // $@);
	$d->disconnect if $d;
}

# --- timeouts: transaction_timeout per user, query_timeout while waiting, connect failed ----------
{
	my $d = conn('postgres', 'u3');
	$d->begin_work;
	$d->do('SELECT 1');
	ok($proxy->wait_for_log(qr/u3\S* closing because: transaction timeout/, timeout => 10),
		'[users] transaction_timeout 1: the transaction is cut');
	ok(!eval { $d->do('SELECT 1'); 1 }, '... the client is gone');
	my $ok = conn('postgres', 'u1');
	$ok->begin_work;
	sleep(1.5);
	ok(eval { $ok->do('SELECT 1'); 1 }, 'other users have no transaction_timeout');
	$ok->rollback;
	$ok->disconnect;

	$proxy->admin('SET query_timeout = 1');
	my $w = eval { $proxy->connect_dbi('closed', user => 'u1', password => 'u1_pw',
		params => { connect_timeout => 10 }) };
	ok(!$w, 'a database nobody listens for: the client is refused');
	like($DBI::errstr // '', qr/query_timeout/, '... with query_timeout (it counts during login too)');
	ok($proxy->wait_for_log(qr/closing because: connect failed: /), '"connect failed: ..." in the log');
	$proxy->admin('SET query_timeout = 0');
}

# --- the "options" startup parameter, by PgBouncer's rules ----------------------------------------
{
	sub with_options
	{
		my ($opt, $sql) = @_;
		my $d = eval { $proxy->connect_dbi('postgres', user => 'app', password => 'app_pw',
			params => { options => $opt }) };
		return (undef, $DBI::errstr) unless $d;
		my ($v) = $d->selectrow_array($sql);
		$d->disconnect;
		return ($v, undef);
	}
	my ($v, $e) = with_options('  -c    datestyle=German,\\ YMD', 'SHOW datestyle');
	is($v, 'German, YMD', 'options -c with an escaped space') or diag($e);
	($v, $e) = with_options('-ctimezone=Europe/Lisbon  --datestyle=German,\\ YMD', 'SHOW timezone');
	is($v, 'Europe/Lisbon', '-cNAME=V and --NAME=V') or diag($e);
	($v, $e) = with_options('-c t\\imezone=\\E\\u\\r\\o\\pe/Lisbon', 'SHOW timezone');
	is($v, 'Europe/Lisbon', 'backslash escapes in names and values') or diag($e);
	($v, $e) = with_options('-c timezone=UTC -c    dat\\estyle\\=\\Ge\\rman,\\ YMD', 'SHOW datestyle');
	is($v, 'German, YMD', 'an escaped = still separates name and value (as PostgreSQL)') or diag($e);
	($v, $e) = with_options('-c application_name=a=b', 'SHOW application_name');
	is($v, 'a=b', 'the first = separates; later ones belong to the value') or diag($e);
	for my $bad ('-d', '-c timezone', 'timezone=UTC', '-c =x') {
		($v, $e) = with_options($bad, 'SELECT 1');
		like($e // '', qr/unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed/,
			"options '$bad' refused");
	}
	($v, $e) = with_options('-c enable_seqscan=off', 'SELECT 1');
	like($e // '', qr/unsupported startup parameter in options: enable_seqscan/,
		'an untracked parameter in options is refused');
	($v, $e) = with_options('-c timezone=' . ('x' x 5000), 'SELECT 1');
	like($e // '', qr/options value too long/, 'hostile: an overlong tracked value is refused');
	$proxy->admin("SET ignore_startup_parameters = 'options,extra_float_digits'");
	($v, $e) = with_options('-c extra_float_digits=' . ('1' x 6000) . ' -c enable_seqscan=off -c timezone=UTC', 'SHOW timezone');
	is($v, 'UTC', 'ignore_startup_parameters=options: unknown ones skipped, tracked ones applied') or diag($e);
	$proxy->admin("SET ignore_startup_parameters = ''");
}

# --- an idle server that reports an error (terminated backend) is closed at once -------------------
{
	my $d = conn('postgres', 'app');
	$d->do('SELECT 1');
	$d->disconnect;     # session mode: the server stays, idle
	ok(poll_until(sub { backends('app') >= 1 }), 'app: an idle server');
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'");
	ok($proxy->wait_for_log(qr/app\S* closing because: server error while idle/, timeout => 10),
		'a terminated idle server is closed on its FATAL, not at its EOF');
	$d = conn('postgres', 'app');
	ok($d && eval { $d->do('SELECT 1'); 1 }, '... the next client gets a fresh server') or diag($DBI::errstr);
	$d->disconnect if $d;
}

# --- server_fast_close: RECONNECT ends an idle session at once -----------------------------------
{
	my $d = conn('postgres', 'u1');
	$d->do('SELECT 1');
	$proxy->admin('RECONNECT postgres');
	sleep(1);
	ok(eval { $d->do('SELECT 1'); 1 }, 'server_fast_close off: the session keeps its server after RECONNECT');
	$d->disconnect;
	$d = conn('postgres', 'u1');
	$d->do('SELECT 1');
	$proxy->admin('SET server_fast_close = 1');
	$proxy->admin('RECONNECT postgres');
	ok($proxy->wait_for_log(qr/closing because: database configuration changed/, timeout => 10),
		'server_fast_close on: "closing because: database configuration changed"');
	ok(!eval { $d->do('SELECT 1'); 1 }, '... the session is ended');
	like($DBI::errstr // '', qr/database configuration changed|server closed the connection/,
		'... with PgBouncer\'s words') ;
	# ... but never inside a transaction: it ends when the transaction does
	my $closes = () = $proxy->log_content =~ /closing because: database configuration changed/g;
	$d = conn('postgres', 'u1');
	$d->do('BEGIN');
	$d->do('SELECT 1');
	$proxy->admin('RECONNECT postgres');
	sleep(2);           # the janitor has run at least once
	ok(eval { $d->do('SELECT 2'); 1 }, 'server_fast_close: an open transaction is not cut short')
	    or diag($DBI::errstr);
	ok(eval { $d->do('COMMIT'); 1 }, '... and commits') or diag($DBI::errstr);
	ok(poll_until(sub { (() = $proxy->log_content =~ /closing because: database configuration changed/g) > $closes }),
		'... then the session is ended');
	ok(!eval { $d->do('SELECT 1'); 1 }, '... and the client sees it');
	$proxy->admin('SET server_fast_close = 0');
}

# --- console ---------------------------------------------------------------------------------------
{
	my ($hdr) = $proxy->_admin_raw('SHOW PEERS');
	is_deeply($hdr, [qw(peer_id host port pool_size)], 'SHOW PEERS: PgBouncer\'s columns');
	($hdr) = $proxy->_admin_raw('SHOW PEER_POOLS');
	is_deeply($hdr, [qw(peer_id cl_active_cancel_req cl_waiting_cancel_req sv_active_cancel sv_login)],
		'SHOW PEER_POOLS: PgBouncer\'s columns');
	my %t1 = map { $_->[0] => $_->[1] } $proxy->admin('SHOW TOTALS');
	my %t2 = map { $_->[0] => $_->[1] } $proxy->admin('SHOW TOTALS');
	is($t2{total_query_count} - $t1{total_query_count}, 1,
		'SHOW TOTALS counts a console command as a query');
	is($t2{total_xact_count} - $t1{total_xact_count}, 1, '... and as a transaction');
}

$proxy->stop;
done_testing();
