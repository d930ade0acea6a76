# 017_bad_input.pl -- hostile and broken clients on raw sockets, while pgbench keeps running cleanly.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

# Asserts that the outcome is a FATAL error with the given SQLSTATE (and
# message pattern, if given) followed by the server closing the socket.
sub fatal_ok
{
	my ($o, $code, $msg_re, $name) = @_;
	my $e = $o->{error};
	my $ok = $e && ($e->{V} // $e->{S}) eq 'FATAL' && $e->{C} eq $code
	    && (!$msg_re || $e->{M} =~ $msg_re) && $o->{eof};
	ok($ok, "$name: FATAL $code" . ($msg_re ? " /$msg_re/" : '') . ', then disconnected')
	    or diag('got ' . describe_outcome($o));
}

# --- setup ------------------------------------------------------------------------------------

my $node = PgSlab::Test::Cluster->new(name => 'c017');
$node->start;
$node->create_user('app', 'app_pw');
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p017',
	settings => {
		pool_mode            => 'transaction',
		default_pool_size    => 5,
		max_client_conn      => 200,
		client_login_timeout => 2,
	},
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my ($host, $port) = ($proxy->host, $proxy->port);

my ($rc, $out, $err) = $proxy->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i through pgslab') or diag($err);

# pgbench runs in the background during the whole bad-input phase.
my $bench_out = $proxy->basedir . '/bench.out';
my $bench_err = $proxy->basedir . '/bench.err';
my $bench_t0 = time;
my $bench_pid = PgSlab::Test::Cluster::spawn_command(
	[ pg_bindir() . '/pgbench', '-n', '-c', '4', '-j', '2', '-T', '10', 'postgres' ],
	env => { PGHOST => $host, PGPORT => $port, PGUSER => $node->superuser,
		PGPASSWORD => $node->superuser_password, PGCONNECT_TIMEOUT => 10,
		LC_ALL => 'C' },
	stdout_file => $bench_out, stderr_file => $bench_err);
sleep(0.5);

# --- startup-phase garbage ------------------------------------------------------------------
my $s = raw_connect($host, $port);
raw_send($s, "GET / HTTP/1.1\r\nHost: pgslab\r\n\r\n");
fatal_ok(read_outcome($s, 5), '08P01', undef, 'HTTP request instead of a startup packet');

$s = raw_connect($host, $port);
raw_send($s, "\xde\xad\xbe\xef" x 4096);
fatal_ok(read_outcome($s, 5), '08P01', undef, '16 KiB of binary garbage');

$s = raw_connect($host, $port);
raw_send($s, pack('N N', 8, 0x12345678));
fatal_ok(read_outcome($s, 5), '08P01', undef, 'startup packet with an unknown protocol code');

$s = raw_connect($host, $port);
raw_send($s, pack('N N', 0x80000000, 196608) . "user\0app\0");
fatal_ok(read_outcome($s, 5), '08P01', undef, 'startup packet claiming 2 GiB');

$s = raw_connect($host, $port);
raw_send($s, pack('N', 3));
fatal_ok(read_outcome($s, 5), '08P01', undef, 'startup packet length 3 (< 8)');

# Truncated packet, then close: nobody to answer; checked for leaks below.
for (1 .. 5) {
	$s = raw_connect($host, $port);
	raw_send($s, pack('N N', 100, 196608) . "user\0ap");
	close $s;
}
# Truncated packet, then half-close: pgslab must close its side too.
$s = raw_connect($host, $port);
raw_send($s, pack('N N', 100, 196608) . "user\0ap");
shutdown($s, 1);
my $o = read_outcome($s, 5);
ok($o->{eof}, 'truncated startup packet + half-close: connection closed')
    or diag('got ' . describe_outcome($o));

# Truncated packet, then silence: client_login_timeout (2 s) disconnects it.
my $slow = raw_connect($host, $port);
raw_send($slow, pack('N N', 100, 196608) . "user\0ap");
my $slow_t0 = time;

# SSLRequest is declined with 'N' and the login continues in clear text.
$s = raw_connect($host, $port);
raw_send($s, pack('N N', 8, 80877103));
my $deadline = time + 5;
my $answer = raw_read_n($s, 1, $deadline);
is($answer, 'N', 'SSLRequest answered with N');
$o = scram_login($s, 'app', 'app_pw');
ok($o->{ready}, 'login after a declined SSLRequest') or diag('got ' . describe_outcome($o));
close $s;

# --- startup parameters, database, user, password ----------------------------------------------
$s = raw_connect($host, $port);
raw_send($s, startup_packet(user => 'app', database => 'postgres', foo_bar => 'x'));
fatal_ok(read_outcome($s, 5), '08P01', qr/^unsupported startup parameter: foo_bar$/,
	'unknown startup parameter');

$s = raw_connect($host, $port);
fatal_ok(scram_login($s, 'app', 'app_pw', database => 'no_such_db'), '3D000',
	qr/no_such_db/, 'unknown database');

$s = raw_connect($host, $port);
fatal_ok(scram_login($s, 'app', 'not the password'), '28P01',
	qr/^SASL authentication failed$/, 'wrong password (PgBouncer\'s words for SCRAM)');

$s = raw_connect($host, $port);
fatal_ok(scram_login($s, 'nobody', 'x'), '28P01', qr/^SASL authentication failed$/,
	'unknown user: the same words as a wrong password');

$s = raw_connect($host, $port);
raw_send($s, startup_packet(database => 'postgres'));
$o = read_outcome($s, 5);
ok($o->{error} && $o->{error}{C} =~ /^(28000|08P01)$/ && $o->{eof},
	'startup packet without a user: FATAL 28000/08P01, disconnected') or diag('got ' . describe_outcome($o));

# --- authentication-phase garbage ------------------------------------------------------------------
$s = raw_connect($host, $port);
raw_send($s, startup_packet(user => 'app', database => 'postgres'));
$o = read_outcome($s, 5);
is($o->{auth}, 10, 'SASL authentication requested');
my $big = 'x' x (1024 * 1024);
raw_send($s, 'p' . pack('N', 4 + 14 + 4 + length $big) . "SCRAM-SHA-256\0"
	. pack('N', length $big) . $big);
fatal_ok(read_outcome($s, 5), '08P01', undef, 'oversized (1 MiB) password packet');

$s = raw_connect($host, $port);
raw_send($s, startup_packet(user => 'app', database => 'postgres'));
read_outcome($s, 5);
raw_send($s, 'p' . pack('N', 0x7ffffff0) . "SCRAM-SHA-256\0");
fatal_ok(read_outcome($s, 5), '08P01', undef, 'password packet claiming 2 GiB');

$s = raw_connect($host, $port);
raw_send($s, startup_packet(user => 'app', database => 'postgres'));
read_outcome($s, 5);
raw_send($s, 'Q' . pack('N', 13) . "SELECT 1;\0");
fatal_ok(read_outcome($s, 5), '08P01', undef, 'Query message instead of the password');

$s = raw_connect($host, $port);
raw_send($s, startup_packet(user => 'app', database => 'postgres'));
read_outcome($s, 5);
raw_send($s, 'p' . pack('N', 4 + 14 + 4 + 10) . "SCRAM-SHA-256\0" . pack('N', 10) . 'garbage!!!');
$o = read_outcome($s, 5);
ok($o->{error} && $o->{error}{C} =~ /^(08P01|28P01)$/ && $o->{eof},
	'malformed SCRAM client-first message: FATAL 08P01/28P01, disconnected')
    or diag('got ' . describe_outcome($o));

# --- after login ------------------------------------------------------------------------------------
$s = raw_connect($host, $port);
$o = scram_login($s, 'app', 'app_pw');
ok($o->{ready}, 'raw SCRAM login succeeds') or diag('got ' . describe_outcome($o));
raw_send($s, 'Q' . pack('N', 0x7fffffff));
fatal_ok(read_outcome($s, 5), '08P01', undef, 'after login: message header claiming 2 GiB');

$s = raw_connect($host, $port);
scram_login($s, 'app', 'app_pw');
raw_send($s, 'Q' . pack('N', 2));
fatal_ok(read_outcome($s, 5), '08P01', undef, 'after login: message length 2 (< 4)');

$s = raw_connect($host, $port);
scram_login($s, 'app', 'app_pw');
raw_send($s, "\x01" . pack('N', 8) . 'abcd');
fatal_ok(read_outcome($s, 5), '08P01', undef, 'after login: unknown message type 0x01');

# A burst of 40 simultaneous garbage connections.
my @burst = map { raw_connect($host, $port) } 1 .. 40;
raw_send($_, "\x00\x00\x00\x09\x00\x03\x00\x00\xff garbage") for @burst;
my $burst_ok = grep { my $x = read_outcome($_, 5); $x->{error} && $x->{eof} } @burst;
is($burst_ok, 40, 'burst of 40 garbage clients: every one gets an error and is closed');
close $_ for @burst;

# Slow client: closed by client_login_timeout.
$o = read_outcome($slow, 10);
my $slow_dt = time - $slow_t0;
ok($o->{eof} && $slow_dt < 6, sprintf('half-sent startup packet closed by client_login_timeout (after %.1fs)', $slow_dt))
    or diag('got ' . describe_outcome($o));

my $bad_phase_end = time;
my $st = PgSlab::Test::Cluster::wait_pid($bench_pid, 30);
ok(defined $st, 'background pgbench finished');
kill 'KILL', $bench_pid unless defined $st;
ok($bad_phase_end < $bench_t0 + 10, 'bad clients ran while pgbench was running');
my $bout = PgSlab::Test::Cluster::_slurp($bench_out);
is($st, 0, 'pgbench exit status 0') or diag(PgSlab::Test::Cluster::_slurp($bench_err));
like($bout, qr/number of failed transactions: 0 /, 'pgbench: zero failed transactions')
    or diag($bout);
my ($done) = $bout =~ /number of transactions actually processed: (\d+)/;
ok(($done // 0) > 0, 'pgbench processed transactions (' . ($done // 0) . ')');

# --- pgslab survived and leaked nothing -----------------------------------------------------------
ok($proxy->is_running, 'pgslab still running');
is($proxy->safe_psql('postgres', 'SELECT current_user', user => 'app', password => 'app_pw'),
	'app', 'a new client works after the abuse');
my ($clients) = grep { $_->{name} eq 'client' } $proxy->admin_hash('SHOW MEM');
my $used = -1;
for (1 .. 50) {
	($clients) = grep { $_->{name} eq 'client' } $proxy->admin_hash('SHOW MEM');
	$used = $clients ? $clients->{used} : -1;
	last if $used == 1;
	sleep(0.1);
}
is($used, 1, 'SHOW MEM: only the console client is left (no leaked client objects)');
my ($login) = grep { $_->{name} eq 'client_login' } $proxy->admin_hash('SHOW MEM');
is($login && $login->{used}, 0, 'SHOW MEM: no leaked client_login objects');
my @pools = grep { $_->{user} eq 'app' } $proxy->admin_hash('SHOW POOLS');
is($pools[0] && $pools[0]{cl_active} + $pools[0]{cl_waiting}, 0, 'no client left in the app pool');

is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
