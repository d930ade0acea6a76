# 017_bad_input.pl -- hostile and broken clients on raw sockets, while pgbench keeps running cleanly.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

# --- raw protocol helpers ------------------------------------------------------------------

sub raw_connect
{
	my ($host, $port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
		Proto => 'tcp', Timeout => 5) or die "connect $host:$port: $!";
	binmode $s;
	return $s;
}

sub startup_packet
{
	my (@kv) = @_;
	my $body = pack('N', 196608) . join('', map { "$_\0" } @kv) . "\0";
	return pack('N', 4 + length $body) . $body;
}

# Write everything; false if the peer closed (EPIPE/ECONNRESET).
sub raw_send
{
	my ($s, $data) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length $data) {
		my $n = syswrite($s, $data, length($data) - $off, $off);
		return 0 unless $n;
		$off += $n;
	}
	return 1;
}

sub raw_read_n
{
	my ($s, $n, $deadline) = @_;
	my $buf = '';
	my $sel = IO::Select->new($s);
	while (length $buf < $n) {
		my $left = $deadline - time;
		return undef if $left <= 0 || !$sel->can_read($left);
		my $r = sysread($s, $buf, $n - length $buf, length $buf);
		return undef unless $r;		# EOF or ECONNRESET
	}
	return $buf;
}

# One backend message: (type, body); ('EOF') when closed, ('TIMEOUT').
sub read_msg
{
	my ($s, $timeout) = @_;
	my $deadline = time + ($timeout // 5);
	return ('TIMEOUT') unless IO::Select->new($s)->can_read($deadline - time);
	my $hdr = raw_read_n($s, 5, $deadline);
	return ('EOF') unless defined $hdr;
	my ($type, $len) = unpack('a1 N', $hdr);
	return ('BADLEN', $len) if $len < 4 || $len > 1024 * 1024;
	my $body = $len > 4 ? raw_read_n($s, $len - 4, $deadline) : '';
	return ('EOF') unless defined $body;
	return ($type, $body);
}

# ErrorResponse/NoticeResponse fields: { S => 'FATAL', C => '08P01', M => ... }
sub parse_fields
{
	my ($body) = @_;
	my %f;
	$f{$1} = $2 while $body =~ /\G([^\0])([^\0]*)\0/gc;
	return \%f;
}

# Reads until an ErrorResponse, ReadyForQuery, an authentication request
# that needs an answer, EOF or timeout.  After an ErrorResponse it waits
# up to 3 s for the connection to close.
sub read_outcome
{
	my ($s, $timeout) = @_;
	my %o = (msgs => [], error => undef, eof => 0, ready => 0, timeout => 0);
	while (1) {
		my ($t, $b) = read_msg($s, $timeout);
		push @{ $o{msgs} }, $t;
		if ($t eq 'EOF' || $t eq 'BADLEN') { $o{eof} = 1; last }
		if ($t eq 'TIMEOUT') { $o{timeout} = 1; last }
		if ($t eq 'E') {
			$o{error} = parse_fields($b);
			# Skip whatever else is sent (e.g. a second error) until EOF.
			for (1 .. 5) {
				my ($t2) = read_msg($s, 3);
				push @{ $o{msgs} }, $t2;
				if ($t2 eq 'EOF') { $o{eof} = 1; last }
				last if $t2 eq 'TIMEOUT';
			}
			last;
		}
		if ($t eq 'Z') { $o{ready} = 1; last }
		if ($t eq 'K') { @o{qw(pid key)} = unpack('N N', $b) }
		if ($t eq 'R') {
			my $code = unpack('N', $b);
			$o{auth} = $code;
			$o{auth_body} = substr($b, 4);
			last if $code == 3 || $code == 5 || $code == 10 || $code == 11;
		}
	}
	return \%o;
}

sub pbkdf2_sha256
{
	my ($pw, $salt, $iter) = @_;
	my $u = hmac_sha256($salt . pack('N', 1), $pw);
	my $out = $u;
	for (2 .. $iter) {
		$u = hmac_sha256($u, $pw);
		$out ^= $u;
	}
	return $out;
}

# Startup (extra startup parameters in @kv) and a SCRAM-SHA-256 exchange;
# returns the read_outcome at the end (error, or ReadyForQuery).
sub scram_login
{
	my ($s, $user, $password, @kv) = @_;
	raw_send($s, startup_packet(user => $user, database => 'postgres', @kv));
	my $o = read_outcome($s, 5);
	return $o unless defined $o->{auth} && $o->{auth} == 10 && !$o->{error};
	my $nonce = encode_base64(join('', map { chr(int rand 256) } 1 .. 18), '');
	my $cfb = "n=,r=$nonce";
	my $cf = "n,,$cfb";
	my $mech = "SCRAM-SHA-256\0";
	raw_send($s, 'p' . pack('N', 4 + length($mech) + 4 + length $cf) . $mech
		. pack('N', length $cf) . $cf);
	$o = read_outcome($s, 5);
	return $o unless defined $o->{auth} && $o->{auth} == 11 && !$o->{error};
	my $sf = $o->{auth_body};
	my ($r) = $sf =~ /r=([^,]+)/;
	my ($salt) = $sf =~ /s=([^,]+)/;
	my ($iter) = $sf =~ /i=(\d+)/;
	my $salted = pbkdf2_sha256($password, decode_base64($salt), $iter);
	my $ck = hmac_sha256('Client Key', $salted);
	my $cfwp = "c=biws,r=$r";
	my $sig = hmac_sha256("$cfb,$sf,$cfwp", sha256($ck));
	my $final = "$cfwp,p=" . encode_base64($ck ^ $sig, '');
	raw_send($s, 'p' . pack('N', 4 + length $final) . $final);
	return read_outcome($s, 5);
}

sub describe
{
	my ($o) = @_;
	my $e = $o->{error};
	return sprintf('messages [%s], error %s', join(',', @{ $o->{msgs} }),
		$e ? "$e->{S} $e->{C} \"$e->{M}\"" : 'none');
}

# Asserts that the outcome is a FATAL error with the given SQLSTATE (and
# message pattern, if given) followed by the server closing the socket.
sub fatal_ok
{
	my ($o, $code, $msg_re, $name) = @_;
	my $e = $o->{error};
	my $ok = $e && ($e->{V} // $e->{S}) eq 'FATAL' && $e->{C} eq $code
	    && (!$msg_re || $e->{M} =~ $msg_re) && $o->{eof};
	ok($ok, "$name: FATAL $code" . ($msg_re ? " /$msg_re/" : '') . ', then disconnected')
	    or diag('got ' . describe($o));
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
    or diag('got ' . describe($o));

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
ok($o->{ready}, 'login after a declined SSLRequest') or diag('got ' . describe($o));
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
	qr/^password authentication failed for user "app"$/, 'wrong password');

$s = raw_connect($host, $port);
fatal_ok(scram_login($s, 'nobody', 'x'), '28P01', qr/password authentication failed/,
	'unknown user');

$s = raw_connect($host, $port);
raw_send($s, startup_packet(database => 'postgres'));
$o = read_outcome($s, 5);
ok($o->{error} && $o->{error}{C} =~ /^(28000|08P01)$/ && $o->{eof},
	'startup packet without a user: FATAL 28000/08P01, disconnected') or diag('got ' . describe($o));

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
    or diag('got ' . describe($o));

# --- after login ------------------------------------------------------------------------------------
$s = raw_connect($host, $port);
$o = scram_login($s, 'app', 'app_pw');
ok($o->{ready}, 'raw SCRAM login succeeds') or diag('got ' . describe($o));
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
    or diag('got ' . describe($o));

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
