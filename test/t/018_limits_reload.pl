# 018_limits_reload.pl -- max_client_conn, SIGHUP reload of pool sizes, and the shutdown signals.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use DBD::Pg qw(:async);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

# --- setup ------------------------------------------------------------------------------------

my $node = PgSlab::Test::Cluster->new(name => 'c018');
$node->start;
$node->create_user('app', 'app_pw');
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p018',
	settings => {
		pool_mode         => 'transaction',
		default_pool_size => 2,
		max_client_conn   => 5,
	},
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my ($host, $port) = ($proxy->host, $proxy->port);
my %app = (user => 'app', password => 'app_pw');

my $direct = $node->connect_dbi('postgres');
sub app_backends
{
	return $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
		WHERE usename = 'app' AND backend_type = 'client backend'});
}

sub reloads { scalar(() = $proxy->log_content =~ /configuration reloaded/g) }

# --- max_client_conn ------------------------------------------------------------------------------
my @held = map { $proxy->connect_dbi('postgres', %app) } 1 .. 5;
is(scalar(grep { $_->selectrow_array('SELECT 1') == 1 } @held), 5,
	'max_client_conn = 5: five clients connected and working');

my $s = raw_connect($host, $port);
print $s startup_packet(user => 'app', database => 'postgres');
my ($t, $b) = read_msg($s, 5);
my $e = $t eq 'E' ? parse_fields($b) : {};
is($t, 'E', 'sixth client gets an ErrorResponse');
is($e->{C}, '53300', '... SQLSTATE 53300');
is($e->{M}, 'no more connections allowed (max_client_conn)', '... with the PgBouncer message');
is($e->{V} // $e->{S}, 'FATAL', '... severity FATAL');
($t) = read_msg($s, 3);
is($t, 'EOF', '... and is disconnected');
close $s;

my $sixth = eval { $proxy->connect_dbi('postgres', %app) };
ok(!$sixth, 'sixth DBD::Pg client refused');
like($DBI::errstr // '', qr/no more connections allowed \(max_client_conn\)/,
	'... with the max_client_conn message');

(shift @held)->disconnect;
my $again;
for (1 .. 40) {
	last if $again = eval { $proxy->connect_dbi('postgres', %app) };
	sleep(0.05);
}
ok($again && $again->selectrow_array('SELECT 2') == 2,
	'after one client leaves, a new one gets in');
push @held, $again if $again;
my $nb = app_backends();
ok($nb <= 2, "five idle clients in transaction mode hold at most default_pool_size (2) backends ($nb)");

# Raising max_client_conn by SIGHUP takes effect.
my $n0 = reloads();
$proxy->set(max_client_conn => 50);
$proxy->reload;
ok($proxy->wait_for_log(qr/(?:configuration reloaded.*){${\($n0 + 1)}}/s),
	'SIGHUP: pgslab logged the reload');
my @more = map { eval { $proxy->connect_dbi('postgres', %app) } } 1 .. 3;
is(scalar(grep { defined } @more), 3, 'after reload to max_client_conn = 50: 8 clients connected');
$_->disconnect for grep { defined } @more, @held;
@held = @more = ();

# --- default_pool_size by SIGHUP ----------------------------------------------------------------------
# Runs $n concurrent "SELECT pg_sleep($secs)" clients; returns (peak active
# app backends seen in pg_stat_activity, peak app backends in total, elapsed s, #ok).
sub concurrent_sleepers
{
	my ($n, $secs) = @_;
	my @h = map { $proxy->connect_dbi('postgres', %app) } 1 .. $n;
	my $t0 = time;
	$_->do("SELECT pg_sleep($secs)", { pg_async => PG_ASYNC }) for @h;
	my %pending = map { $_ => $h[$_] } 0 .. $#h;
	my ($peak_active, $peak_total, $nok) = (0, 0, 0);
	while (%pending && time - $t0 < 20) {
		my ($a, $tot) = $direct->selectrow_array(q{SELECT
			count(*) FILTER (WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'),
			count(*) FROM pg_stat_activity
			WHERE usename = 'app' AND backend_type = 'client backend'});
		$peak_active = $a if $a > $peak_active;
		$peak_total = $tot if $tot > $peak_total;
		for my $k (keys %pending) {
			next unless $pending{$k}->pg_ready;
			$nok++ if eval { $pending{$k}->pg_result; 1 };
			delete $pending{$k};
		}
		sleep(0.05);
	}
	my $dt = time - $t0;
	$_->disconnect for @h;
	return ($peak_active, $peak_total, $dt, $nok);
}

my ($pa, $pt, $dt, $nok) = concurrent_sleepers(5, 1);
is($nok, 5, 'pool size 2: five pg_sleep(1) clients all succeed');
is($pa, 2, 'pool size 2: at most and at least 2 backends run the sleeps');
ok($pt <= 2, "pool size 2: no more than 2 app backends exist ($pt)");
ok($dt >= 2.5, sprintf('pool size 2: five 1 s sleeps take >= 3 rounds (%.1fs)', $dt));

$n0 = reloads();
$proxy->set(default_pool_size => 5);
$proxy->reload;
ok($proxy->wait_for_log(qr/(?:configuration reloaded.*){${\($n0 + 1)}}/s),
	'SIGHUP with default_pool_size = 5 applied');
($pa, $pt, $dt, $nok) = concurrent_sleepers(5, 1);
is($nok, 5, 'pool size 5: five pg_sleep(1) clients all succeed');
is($pa, 5, 'pool size 5: 5 backends run the sleeps at once (pg_stat_activity)');
ok($dt < 2.5, sprintf('pool size 5: the five sleeps ran in parallel (%.1fs)', $dt));

# Shrinking: the servers beyond the new size are closed (PgBouncer's
# janitor does this within a maintenance tick) and only 3 run at once.
$n0 = reloads();
$proxy->set(default_pool_size => 3);
$proxy->reload;
$proxy->wait_for_log(qr/(?:configuration reloaded.*){${\($n0 + 1)}}/s);
my $shrunk_to;
for (1 .. 50) {
	$shrunk_to = app_backends();
	last if $shrunk_to <= 3;
	sleep(0.1);
}
ok($shrunk_to <= 3, "pool size 5 -> 3: idle servers beyond the new size are closed ($shrunk_to left after 5 s)");
($pa, $pt, $dt, $nok) = concurrent_sleepers(5, 1);
is($nok, 5, 'pool size 3: five clients succeed');
is($pa, 3, 'pool size 3 after a second SIGHUP: 3 backends run the sleeps');

# A broken config on reload keeps the old one running.
open(my $fh, '>>', $proxy->ini_path) or die;
print $fh "\n[pgbouncer]\ndefault_pool_size = not_a_number\n";
close $fh;
kill 'HUP', $proxy->pid;
sleep(0.5);
ok($proxy->is_running, 'pgslab survives a reload with an invalid config');
is($proxy->safe_psql('postgres', 'SELECT 11', %app), '11', '... and keeps serving');
$proxy->write_config;

# --- shutdown signals ------------------------------------------------------------------------------------
# SIGINT: wait for in-flight work on servers, then exit.
my $h = $proxy->connect_dbi('postgres', %app);
$h->do('SELECT pg_sleep(1.5), 42', { pg_async => PG_ASYNC });
sleep(0.3);
my $t0 = time;
$proxy->kill_signal('INT');
sleep(0.3);
ok(!eval { $proxy->connect_dbi('postgres', %app); 1 }, 'SIGINT: new clients refused');
my $res = eval { $h->pg_result; 1 };
ok($res, 'SIGINT: the running query completes') or diag($@);
my $st = $proxy->wait_exit(timeout => 10);
is($st, 0, sprintf('SIGINT: pgslab exits with status 0 after the query (%.1fs)', time - $t0));
ok(!eval { $h->do('SELECT 1'); 1 }, 'SIGINT: the remaining client was disconnected at exit');
like($h->errstr // '', qr/shutting down|server closed|terminat|connection/i, '... with a connection error');

# SIGTERM: wait until every client has disconnected.
$proxy->start;
$h = $proxy->connect_dbi('postgres', %app);
is($h->selectrow_array('SELECT 1'), 1, 'restarted pgslab serves');
$proxy->kill_signal('TERM');
sleep(0.5);
ok($proxy->is_running, 'SIGTERM: still running while a client is connected');
is(eval { $h->selectrow_array('SELECT 12') }, 12, 'SIGTERM: the connected client keeps working');
ok(!eval { $proxy->connect_dbi('postgres', %app); 1 }, 'SIGTERM: new clients refused');
$h->disconnect;
$st = $proxy->wait_exit(timeout => 10);
is($st, 0, 'SIGTERM: exits with status 0 once the last client left');

# SIGQUIT: immediate.
$proxy->start;
$h = $proxy->connect_dbi('postgres', %app);
$h->do('SELECT pg_sleep(5)', { pg_async => PG_ASYNC });
sleep(0.3);
$t0 = time;
$proxy->kill_signal('QUIT');
$st = $proxy->wait_exit(timeout => 10);
ok(defined $st && time - $t0 < 2, sprintf('SIGQUIT: exits at once (%.1fs)', time - $t0));
ok(!eval { $h->pg_result; 1 }, 'SIGQUIT: the client in a query gets an error');

# A second SIGINT (or SIGTERM) during a shutdown is a fast exit, as PgBouncer.
$proxy->start;
$h = $proxy->connect_dbi('postgres', %app);
$h->do('BEGIN');
is($h->selectrow_array('SELECT 13'), 13, 'a client holds a server in a transaction');
$proxy->kill_signal('INT');
sleep(0.5);
ok($proxy->is_running, 'one SIGINT: still running while the transaction is open');
is(eval { $h->selectrow_array('SELECT 14') }, 14, '... and the transaction goes on');
$t0 = time;
$proxy->kill_signal('INT');
$st = $proxy->wait_exit(timeout => 10);
ok(defined $st && $st == 0 && time - $t0 < 3, sprintf('second SIGINT: exits at once (%.1fs)', time - $t0));
like($proxy->log_content, qr/got SIGINT while shutting down, fast exit/, '... and says so');
$h = undef;

# SHUTDOWN WAIT_FOR_SERVERS: the TCP socket closes, the Unix one stays for the
# console only; who waits for a server, or starts a transaction, is closed
# ("server shutting down"); the open transaction ends normally, then exit.
$proxy->set(default_pool_size => 2);
$proxy->start;
my ($in_tx, $idle, $waiter) = map { $proxy->connect_dbi('postgres', %app) } 1 .. 3;
$in_tx->do('BEGIN');
$in_tx->selectrow_array('SELECT 1');
my $other = $proxy->connect_dbi('postgres', %app);
$other->do('BEGIN');
$other->selectrow_array('SELECT 1');          # both servers (pool size 2) in use
$waiter->do('SELECT 15', { pg_async => PG_ASYNC });   # waits for a server
sleep(0.5);
my ($pl) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW POOLS');
is($pl->{cl_waiting}, 1, 'one client waits for a server');
$proxy->admin('SHUTDOWN WAIT_FOR_SERVERS');
ok(!eval { $waiter->pg_result; 1 }, 'WAIT_FOR_SERVERS: the waiting client is closed');
like($waiter->errstr // '', qr/server shutting down/, '... "server shutting down"');
ok(!eval { $idle->selectrow_array('SELECT 16'); 1 }, 'a connected client starting a transaction is closed');
like($idle->errstr // '', qr/server shutting down/, '... "server shutting down"');
is(eval { $in_tx->selectrow_array('SELECT 17') }, 17, 'the open transaction goes on');
ok(!eval { $proxy->connect_dbi('postgres', %app); 1 }, 'TCP: new clients refused');
ok(!eval { $proxy->connect_dbi('postgres', %app, host => $proxy->socket_dir); 1 },
	'Unix socket: a database login refused');
like($DBI::errstr // '', qr/pooler is shutting down/, '... "pooler is shutting down"');
my ($ver) = eval { $proxy->admin('SHOW VERSION', host => $proxy->socket_dir) };
like($ver->[0] // '', qr/pgslab|PgBouncer/, 'Unix socket: the console still answers') or diag($@);
$in_tx->do('COMMIT');
ok($proxy->is_running, 'one transaction still open: running');
$other->do('COMMIT');
$st = $proxy->wait_exit(timeout => 10);
is($st, 0, 'exits once no server is in use');
ok(!-S $proxy->socket_dir . '/.s.PGSQL.' . $proxy->port, '... and the Unix socket is gone');

# SHUTDOWN WAIT_FOR_CLIENTS keeps serving the clients it has, opening servers
# for them if needed.
$proxy->start;
$h = $proxy->connect_dbi('postgres', %app);
$h->selectrow_array('SELECT 1');
$proxy->admin('SHUTDOWN WAIT_FOR_CLIENTS');
$proxy->kill_signal('USR2');
ok($proxy->wait_for_log(qr/got SIGUSR2 while shutting down, ignoring/), 'SIGUSR2 (RESUME) during a shutdown is ignored');
$proxy->admin('RECONNECT', host => $proxy->socket_dir);
sleep(0.3);
is(eval { $h->selectrow_array('SELECT 18') }, 18, 'WAIT_FOR_CLIENTS: a client gets a new server')
	or diag($h->errstr);
$h->disconnect;
$st = $proxy->wait_exit(timeout => 10);
is($st, 0, 'exits once the last client left');

# query_wait_notify: a client waiting longer gets PgBouncer's notice, once.
$proxy->set(default_pool_size => 1, query_wait_notify => 1);
$proxy->start;
$h = $proxy->connect_dbi('postgres', %app);
$h->do('SELECT pg_sleep(3.5)', { pg_async => PG_ASYNC });
sleep(0.3);
my ($qrc, $qout, $qerr) = $proxy->psql('postgres', 'SELECT 19', %app, timeout => 30);
is($qout, '19', 'query_wait_notify: the waiting client gets its result');
my @notices = $qerr =~ /NOTICE:  No server connection available in postgres backend, client being queued/g;
is(scalar(@notices), 1, '... after one notice (queued 3 s, notify after 1 s)') or diag($qerr);
($qrc, $qout, $qerr) = $proxy->psql('postgres', 'SELECT 20', %app, timeout => 30);
is("$qout|$qerr", '20|', 'a client that does not wait gets no notice');
$h->pg_result;
$h->disconnect;
is($proxy->stop, 0, 'stops cleanly');
$direct->disconnect;

done_testing();
