# 080_tls.pl -- issue 13: TLS towards clients and servers (SSLRequest, handshake in the loop,
# sslmodes, certificates, hostile handshakes, reload, direct TLS), with psql, pgbench and DBD::Pg.

use strict;
use warnings;

use File::Copy qw(copy);
use IO::Socket::INET;
use IO::Socket::SSL;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::TLS qw(make_certs server_cert);
use PgSlab::Test::Wire;

my $certdir = PgSlab::Test::Cluster::make_temp_dir('pgslab_tls_certs');
my $c = make_certs($certdir);

# The cluster: ssl=on with the test server certificate (its own copies, owned by the
# server's OS user as PostgreSQL demands); user "tlsonly" may log in over TLS only.
my $node = PgSlab::Test::Cluster->new(name => 'c080',
	hba => [ 'hostnossl all tlsonly 127.0.0.1/32 reject', 'hostssl all app 127.0.0.1/32 cert' ]);
{
	my $dd = $node->data_dir;
	copy($c->{server_crt}, "$dd/server.crt") or die $!;
	copy($c->{server_key}, "$dd/server.key") or die $!;
	copy($c->{ca}, "$dd/root.crt") or die $!;
	my @pw = getpwnam('pgslab_pg');
	if ($> == 0 && @pw) {
		chown($pw[2], $pw[3], "$dd/server.crt", "$dd/server.key", "$dd/root.crt");
	}
	chmod 0600, "$dd/server.key";
	$node->append_conf('postgresql.conf', "ssl = on\nssl_ca_file = 'root.crt'\n");
}
$node->start;
$node->create_user('app', 'app_pw');
$node->create_user('tlsonly', 'tlsonly_pw');
my $cport = $node->port;
my ($rc, $out, $err) = $node->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i directly on the cluster') or diag($err);

my %client_tls = (
	client_tls_sslmode   => 'require',
	client_tls_key_file  => $c->{server_key},
	client_tls_cert_file => $c->{server_crt},
	client_tls_ca_file   => $c->{ca},
);
my %server_tls = (
	server_tls_sslmode => 'verify-full',
	server_tls_ca_file => $c->{ca},
);

sub alive_ok
{
	my ($proxy, $name) = @_;
	my ($r, $o, $e) = $proxy->psql('postgres', 'SELECT 42', params => { sslmode => 'require' });
	ok($r == 0 && $o =~ /^42$/m, "$name: pgslab still serves a TLS client") or diag($e);
}

# Read until EOF or <limit> seconds; returns (bytes, closed).
sub read_to_eof
{
	my ($s, $limit) = @_;
	my ($buf, $t0) = ('', time);
	while (time - $t0 < $limit) {
		my $rin = '';
		vec($rin, fileno($s), 1) = 1;
		next unless select(my $rout = $rin, undef, undef, 0.2);
		my $n = sysread($s, my $chunk, 65536);
		return ($buf, 1) if !$n;
		$buf .= $chunk;
	}
	return ($buf, 0);
}

sub ssl_request { pack('NN', 8, 80877103) }

my $mport = PgSlab::Test::Cluster::get_free_port();

# --- client side: psql, pgbench, DBD::Pg over TLS; server side verify-full -----------------------------
my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p080',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		tlsonly  => "host=127.0.0.1 port=$cport dbname=postgres user=tlsonly password=tlsonly_pw",
	},
	settings => { %client_tls, %server_tls, pool_mode => 'transaction',
		client_login_timeout => 4, metrics_listen => "127.0.0.1:$mport" });
$proxy->start;

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'require' });
ok($rc == 0 && $out =~ /^1$/m, 'psql sslmode=require through pgslab') or diag($err);

($rc, $out, $err) = $proxy->psql('postgres',
	'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
	params => { sslmode => 'verify-full', sslrootcert => $c->{ca} });
ok($rc == 0, 'psql sslmode=verify-full (host 127.0.0.1, IP SAN) through pgslab') or diag($err);
like($out, qr/^t\|TLSv1\.[23]$/m, 'pg_stat_ssl through pgslab: the server leg is encrypted too');

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1',
	host => 'localhost', params => { sslmode => 'verify-full', sslrootcert => $c->{ca},
		hostaddr => '127.0.0.1' });
ok($rc == 0, 'psql sslmode=verify-full with host name localhost') or diag($err);

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1',
	host => 'wrong.example', params => { sslmode => 'verify-full', sslrootcert => $c->{ca},
		hostaddr => '127.0.0.1' });
isnt($rc, 0, 'psql sslmode=verify-full against a wrong host name fails');
like($err, qr/does not match host name/, '... because the certificate does not match');

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1',
	params => { sslmode => 'verify-ca', sslrootcert => $c->{other_ca} });
isnt($rc, 0, 'psql sslmode=verify-ca with an untrusted CA fails');
like($err, qr/certificate verify failed/, '... because the certificate does not verify');

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'disable' });
isnt($rc, 0, 'a plain startup under client_tls_sslmode=require is refused');
like($err, qr/SSL required/, "... with PgBouncer's words: SSL required");

($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', host => $proxy->socket_dir);
ok($rc == 0 && $out =~ /^1$/m, 'the Unix socket needs no TLS under require (as PgBouncer)') or diag($err);

($rc, $out, $err) = $proxy->psql('tlsonly', 'SELECT current_user', params => { sslmode => 'require' });
ok($rc == 0 && $out =~ /^tlsonly$/m, 'a user the server admits over hostssl only logs in through pgslab')
    or diag($err);

# SCRAM pass-through (the superuser's verifier in the userlist, no password in [databases])
# with TLS on both legs.
($rc, $out, $err) = $proxy->psql('postgres',
	'SELECT s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()',
	params => { sslmode => 'require' });
ok($rc == 0 && $out =~ /^t$/m, 'SCRAM pass-through login to the server over TLS') or diag($err);

my @cl = grep { $_->{tls} ne '' } $proxy->admin_hash('SHOW SERVERS', params => { sslmode => 'require' });
ok(@cl >= 1 && $cl[0]{tls} =~ m{^TLSv1\.[23]/[\w-]+/ECDH=\w+$},
	'SHOW SERVERS tls column: protocol/cipher/ECDH=curve, as PgBouncer')
    or diag(explain([ $proxy->admin_hash('SHOW SERVERS') ]));

($rc, $out, $err) = $proxy->pgbench('-n', '-S', '-c', '4', '-j', '2', '-t', '200',
	{ env => { PGSSLMODE => 'require' }, timeout => 120 });
ok($rc == 0 && $out =~ /number of failed transactions: 0 /, 'pgbench -S over TLS (4 clients x 200)')
    or diag("$err\n$out");

my $dbh = eval { $proxy->connect_dbi('postgres', params => { sslmode => 'verify-full',
	sslrootcert => $c->{ca} }) };
ok($dbh, 'DBD::Pg sslmode=verify-full through pgslab') or diag($@);
if ($dbh) {
	my ($v) = $dbh->selectrow_array('SELECT length(repeat(?::text, 1000000))', undef, 'x');
	is($v, 1000000, 'DBD::Pg over TLS: a query answered');
	my ($big) = $dbh->selectrow_array(q{SELECT repeat('abcdefgh', 8 * 1024 * 1024)});
	is(length($big // ''), 64 * 1024 * 1024, 'a 64 MiB value through TLS on both sides');
}

{
	my $py = <<'PY';
import sys, psycopg2
conn = psycopg2.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3],
                        password=sys.argv[4], dbname='postgres', sslmode='verify-full',
                        sslrootcert=sys.argv[5])
cur = conn.cursor()
cur.execute("SELECT %s::int + 1", (41,))
print("answer", cur.fetchone()[0])
cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
print("server_ssl", cur.fetchone()[0])
conn.close()
PY
	my ($prc, $pout, $perr) = PgSlab::Test::Cluster::run_command(
		[ '/usr/bin/python3', '-c', $py, $proxy->host, $proxy->port, $node->superuser,
		  $node->superuser_password, $c->{ca} ], timeout => 60);
	ok($prc == 0 && $pout =~ /^answer 42$/m && $pout =~ /^server_ssl True$/m,
		'python3 psycopg2 sslmode=verify-full through pgslab') or diag("$perr\n$pout");
}

# --- hostile clients (pgslab keeps serving) ------------------------------------------------------------
{
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request() . startup_packet(user => 'app', database => 'postgres'));
	my ($got, $closed) = read_to_eof($s, 10);
	ok($closed && substr($got, 0, 1) eq 'E' && $got =~ /received unencrypted data after SSL request/,
		'startup pipelined after SSLRequest: refused in clear, never processed');
	close $s;
}
alive_ok($proxy, 'after a pipelined startup');

my $fast = 0;
for my $i (1 .. 30) {
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	my $a = raw_read_n($s, 1, time + 5);
	raw_send($s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	my ($got, $closed) = read_to_eof($s, 3.5);
	$fast++ if $a eq 'S' && $closed;
	close $s;
}
is($fast, 30, "garbage right after 'S', 30 times: each connection closed at once (before client_login_timeout)");
alive_ok($proxy, 'after garbage handshakes');

{
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	is(raw_read_n($s, 1, time + 5), 'S', "SSLRequest answered 'S'");
	close $s;                                     # EOF right after 'S'
	$s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	raw_read_n($s, 1, time + 5);
	raw_send($s, pack('CnnN', 0x16, 0x0301, 200, 0x01000100));   # half a ClientHello, then EOF
	close $s;
	$s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	raw_read_n($s, 1, time + 5);
	raw_send($s, pack('CnnN', 0x17, 0x0303, 5, 0) . "x");      # a bogus application-data record
	my ($got, $closed) = read_to_eof($s, 3.5);
	ok($closed, 'a bogus record instead of a ClientHello: closed at once');
	close $s;
}
alive_ok($proxy, 'after EOF after S, EOF mid-handshake and a bogus record');

{
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, startup_packet(user => 'app', database => 'postgres'));
	my $o = read_outcome($s);
	ok(!$o->{ready} && $o->{error} && $o->{error}{C} eq '08P01' && $o->{error}{M} eq 'SSL required',
		'raw plain startup under require: 08P01 SSL required') or diag(describe_outcome($o));
	close $s;
}

{
	# A second SSLRequest inside TLS is a protocol violation: closed.
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	raw_read_n($s, 1, time + 5);
	my $ok = IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_NONE);
	ok($ok, 'TLS handshake by hand (IO::Socket::SSL)') or diag(IO::Socket::SSL::errstr());
	if ($ok) {
		print $s ssl_request();
		my $buf = '';
		my $n = sysread($s, $buf, 100);
		ok(!$n, 'a second SSLRequest inside TLS closes the connection without an answer');
	}
	close $s;
}

{
	# A handshake that never finishes meets client_login_timeout (4 s).
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, ssl_request());
	raw_read_n($s, 1, time + 5);
	my ($got, $closed) = read_to_eof($s, 30);
	ok($closed, 'a stalled handshake is closed by client_login_timeout');
	close $s;
}
alive_ok($proxy, 'after every hostile handshake');

my ($login) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS_TOTALS');
ok(1, 'console still answers');

# --- direct TLS (PostgreSQL 17 sslnegotiation=direct, ALPN "postgresql") --------------------------------
{
	my $s = IO::Socket::SSL->new(PeerAddr => $proxy->host, PeerPort => $proxy->port,
		SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => $c->{ca}, SSL_verifycn_name => '127.0.0.1',
		SSL_alpn_protocols => ['postgresql'], Timeout => 10);
	ok($s, 'direct TLS with ALPN postgresql: handshake') or diag(IO::Socket::SSL::errstr());
	if ($s) {
		is($s->alpn_selected, 'postgresql', 'ALPN postgresql selected');
		my $o = password_login($s, $node->superuser, $node->superuser_password, database => 'postgres');
		ok($o->{ready}, 'direct TLS: login and ReadyForQuery') or diag(describe_outcome($o));
		close $s;
	}
	$s = IO::Socket::SSL->new(PeerAddr => $proxy->host, PeerPort => $proxy->port,
		SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 10);
	my $refused = !$s;
	if ($s) {
		my $n = sysread($s, my $buf, 10);    # pgslab fails it after the handshake
		$refused = !$n;
		close $s;
	}
	ok($refused, 'direct TLS without ALPN is refused');
}
alive_ok($proxy, 'after direct TLS');

# --- reload: a new certificate, live connections stay ----------------------------------------------------
{
	my $keep = $proxy->connect_dbi('postgres', params => { sslmode => 'require' });
	my ($pid_before) = $keep->selectrow_array('SELECT 1');
	my @sv0 = map { $_->{id} // $_->{ptr} } $proxy->admin_hash('SHOW SERVERS');
	server_cert($certdir, 'server2', 'pgslab-reloaded', 'DNS:localhost,IP:127.0.0.1', 'ca');
	copy("$certdir/server2.crt", $c->{server_crt}) or die $!;
	copy("$certdir/server2.key", $c->{server_key}) or die $!;
	$proxy->admin('RELOAD', params => { sslmode => 'require' });
	my $s = IO::Socket::SSL->new(PeerAddr => $proxy->host, PeerPort => $proxy->port,
		SSL_verify_mode => SSL_VERIFY_NONE, SSL_alpn_protocols => ['postgresql'], Timeout => 10);
	is($s ? $s->peer_certificate('cn') : 'no connection', 'pgslab-reloaded',
		'after RELOAD a new client gets the new certificate');
	close $s if $s;
	my ($r2) = eval { $keep->selectrow_array('SELECT 2') };
	is($r2, 2, 'a TLS client connected before RELOAD keeps working');
	my @sv1 = map { $_->{id} // $_->{ptr} } $proxy->admin_hash('SHOW SERVERS');
	is_deeply([ sort @sv1 ], [ sort @sv0 ], 'unchanged server TLS settings: no server connection recycled');
	$keep->disconnect;
}

{
	my $body = $proxy->metrics;
	my ($hs) = $body =~ /^pgslab_tls_handshakes_total\{side="client"\} (\d+)$/m;
	my ($hf) = $body =~ /^pgslab_tls_handshake_failures_total\{side="client"\} (\d+)$/m;
	ok(($hs // 0) > 10 && ($hf // 0) >= 30,
		"Prometheus: TLS handshakes (${\($hs // 'none')}) and failures (${\($hf // 'none')}) counted");
}

# --- allocator calls per transaction over TLS (plain: 0, see 019) ---------------------------------------
sub sysalloc_calls
{
	my ($p) = @_;
	my ($row) = grep { $_->{name} eq 'sysalloc_calls' } $p->admin_hash('SHOW MEM',
		params => { sslmode => 'require' });
	return $row ? $row->{used} : undef;
}
{
	my @b = ('-n', '-S', '-c', '4', '-j', '2');
	my %o = (env => { PGSSLMODE => 'require' }, timeout => 120);
	$proxy->pgbench(@b, '-t', '300', {%o});
	my $a0 = sysalloc_calls($proxy);
	my ($r1, $o1) = $proxy->pgbench(@b, '-t', '200', {%o});
	my $a1 = sysalloc_calls($proxy);
	my ($r2, $o2) = $proxy->pgbench(@b, '-t', '2200', {%o});
	my $a2 = sysalloc_calls($proxy);
	ok($r1 == 0 && $r2 == 0, 'pgbench -S over TLS for the allocator count');
	my $per_txn = (($a2 - $a1) - ($a1 - $a0)) / (4 * 2000);
	my $per_login = (($a1 - $a0) - 800 * $per_txn) / 5;
	diag(sprintf('TLS: %.2f system-allocator calls per transaction (both legs), about %.0f per TLS '
		. 'client login (handshake + console login)', $per_txn, $per_login));
	# OpenSSL's per-record blocks come back from sysalloc's magazines (SHOW MEM openssl_buffers)
	ok($per_txn < 0.05, "TLS: no system-allocator call per transaction ($per_txn)");
	my ($ob) = grep { $_->{name} eq 'openssl_buffers' } $proxy->admin_hash('SHOW MEM',
		params => { sslmode => 'require' });
	ok($ob && $ob->{used} > 8000, "SHOW MEM openssl_buffers: blocks reused ($ob->{used}), "
		. "$ob->{free} waiting, $ob->{memtotal} bytes");
}

# --- client certificates: verify-ca / verify-full set by RELOAD ----------------------------------------
{
	$proxy->set(client_tls_sslmode => 'verify-full');
	$proxy->reload;
	my %cert = (sslcert => $c->{client_crt}, sslkey => $c->{client_key});
	my $ok = 0;
	for (1 .. 50) {
		my ($r, $o, $e) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'require' });
		if ($r != 0) { $ok = 1; last }
		sleep 0.1;
	}
	ok($ok, 'client_tls_sslmode=verify-full after RELOAD: a client without certificate is refused');
	my ($r, $o, $e) = $proxy->psql('postgres', 'SELECT 7', params => { sslmode => 'require', %cert });
	ok($r == 0 && $o =~ /^7$/m, 'a client with a certificate from client_tls_ca_file logs in') or diag($e);
	my ($r3) = grep { defined } ($proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'require',
		sslcert => $c->{server_crt}, sslkey => $c->{server_key} }))[0];
	is($r3, 0, 'any certificate the CA signed will do (name checks are for auth_type=cert)');
	$proxy->set(client_tls_sslmode => 'require');
	$proxy->reload;
}

# A login failure cached under old server TLS settings is forgotten when SET changes them
# (PgBouncer's test_server_ssl_set_disable, in our terms): "tlsonly" may come over TLS only.
$proxy->admin("SET server_login_retry = 60");
$proxy->admin("SET server_tls_sslmode = 'disable'");
my (undef, undef, $e1) = $proxy->psql('tlsonly', 'SELECT 1', params => { sslmode => 'require' });
like($e1, qr/pg_hba\.conf rejects connection/, 'server_tls_sslmode = disable: the server refuses the hostssl-only user');
my (undef, undef, $e2) = $proxy->psql('tlsonly', 'SELECT 1', params => { sslmode => 'require' });
like($e2, qr/server login has been failing/, '... and the next client gets the cached error (server_login_retry)');
$proxy->admin("SET server_tls_sslmode = 'verify-full'");
my ($r3, $o3, $e3) = $proxy->psql('tlsonly', 'SELECT current_user', params => { sslmode => 'require' });
ok($r3 == 0 && $o3 =~ /^tlsonly$/m, 'after SET back to verify-full the next client is served at once')
    or diag($e3);

is($proxy->stop, 0, 'pgslab exits cleanly');

# --- server side: client certificate to the server, verify-ca, a changed setting recycles servers -------
{
	my $p2 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p080_srv',
		databases => { certdb => "host=127.0.0.1 port=$cport dbname=postgres user=app" },
		settings => { server_tls_sslmode => 'verify-ca', server_tls_ca_file => $c->{ca},
			server_tls_cert_file => $c->{client_crt}, server_tls_key_file => $c->{client_key},
			pool_mode => 'session' });
	$p2->start;
	my $s = raw_connect($p2->host, $p2->port);
	raw_send($s, ssl_request());
	is(raw_read_n($s, 1, time + 5), 'N', "client_tls_sslmode=disable: SSLRequest answered 'N'");
	close $s;
	my ($r, $o, $e) = $p2->psql('certdb',
		'SELECT current_user, s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()');
	ok($r == 0 && $o =~ /^app\|t$/m,
		'server_tls_cert_file/key_file: pgslab logs in to the server with a client certificate (hostssl cert)')
	    or diag($e);
	my @sv0 = map { $_->{id} } $p2->admin_hash('SHOW SERVERS');
	ok(@sv0 >= 1, 'a server connection is pooled');
	$p2->reload;                                   # nothing changed
	sleep 0.3;
	my @sv1 = map { $_->{id} } $p2->admin_hash('SHOW SERVERS');
	is_deeply(\@sv1, \@sv0, 'RELOAD with unchanged TLS settings keeps the server connections');
	$p2->set(server_tls_ca_file => $c->{other_ca});
	$p2->reload;
	my $gone = 0;
	for (1 .. 50) {
		my @sv = map { $_->{id} } $p2->admin_hash('SHOW SERVERS');
		if (!grep { $_ eq $sv0[0] } @sv) { $gone = 1; last }
		sleep 0.1;
	}
	ok($gone, 'a changed server_tls_ca_file recycles the idle server connections');
	($r, $o, $e) = $p2->psql('certdb', 'SELECT 1');
	isnt($r, 0, 'server_tls_sslmode=verify-ca with an untrusted CA: the server login fails');
	ok($p2->wait_for_log(qr/certificate verify failed/), '... and the log says why');
	is($p2->stop, 0, 'pgslab (server TLS) exits cleanly');
}

# --- hostile servers: garbage after 'S', an invalid answer, EOF after 'S' ------------------------------
{
	my @kids;
	my %port;
	for my $kind ('garbage', 'invalid', 'eof') {
		my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5,
			ReuseAddr => 1) or die "listen: $!";
		$port{$kind} = $l->sockport;
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if (!$pid) {
			my $t0 = time;
			while (time - $t0 < 60) {
				my $c = $l->accept or last;
				sysread($c, my $buf, 8);
				syswrite($c, $kind eq 'garbage' ? "S\x15\x03\x03\x00\x02\x02\x28HTTP/1.1 400 Bad\r\n\r\n"
					: $kind eq 'invalid' ? 'E' : 'S');
				sleep 0.2;
				close $c;
			}
			POSIX::_exit(0);
		}
		close $l;
		push @kids, $pid;
	}
	my $p4 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p080_fake',
		databases => { map { ($_ => "host=127.0.0.1 port=$port{$_} dbname=x user=x password=x") }
			keys %port },
		settings => { server_tls_sslmode => 'require', query_wait_timeout => 5,
			server_login_retry => 1 });
	$p4->start;
	for my $kind (sort keys %port) {
		my ($r, $o, $e) = $p4->psql($kind, 'SELECT 1', timeout => 30);
		isnt($r, 0, "a server answering the SSLRequest with $kind: the client gets an error");
		my @v = $p4->admin('SHOW VERSION');
		ok(@v, "... and pgslab keeps serving");
	}
	ok($p4->wait_for_log(qr/TLS handshake failed/), 'the log names the failed server handshake');
	ok($p4->wait_for_log(qr/invalid answer to SSLRequest/), 'the log names the invalid answer');
	is($p4->stop, 0, 'pgslab (hostile servers) exits cleanly');
	kill 'TERM', @kids;
	waitpid($_, 0) for @kids;
}

# --- server side against a server without TLS: require refuses, prefer falls back -----------------------
{
	my $plain = PgSlab::Test::Cluster->new(name => 'c080_plain');
	$plain->start;
	my $pport = $plain->port;
	my $p3 = PgSlab::Test::Proxy->new(cluster => $plain, name => 'p080_plain',
		settings => { server_tls_sslmode => 'require' });
	$p3->start;
	my ($r, $o, $e) = $p3->psql('postgres', 'SELECT 1');
	isnt($r, 0, 'server_tls_sslmode=require against a server without TLS: refused');
	ok($p3->wait_for_log(qr/server refused SSL/), "... with PgBouncer's words: server refused SSL");
	$p3->set(server_tls_sslmode => 'prefer');
	$p3->reload;
	my $ok = 0;
	for (1 .. 50) {
		($r, $o, $e) = $p3->psql('postgres', 'SELECT s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()');
		if ($r == 0) { $ok = 1; last }
		sleep 0.2;
	}
	ok($ok && $o =~ /^f$/m, 'server_tls_sslmode=prefer (the default) falls back to plain') or diag($e);
	is($p3->stop, 0, 'pgslab (plain server) exits cleanly');
}

done_testing();
