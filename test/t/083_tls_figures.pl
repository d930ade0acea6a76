# 083_tls_figures.pl -- issue 13: TLS handshake figures by side, exact, in SHOW TLS and
# /metrics; the tls column of SHOW CLIENTS and SHOW SERVERS in PgBouncer's format.

use strict;
use warnings;

use File::Copy qw(copy);
use Test::More;
use Time::HiRes qw(time);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::TLS qw(make_certs);
use PgSlab::Test::Wire;

my $certdir = PgSlab::Test::Cluster::make_temp_dir('pgslab_tls_figs');
my $c = make_certs($certdir);
my $node = PgSlab::Test::Cluster->new(name => 'c083');
{
	my $dd = $node->data_dir;
	copy($c->{server_crt}, "$dd/server.crt") or die $!;
	copy($c->{server_key}, "$dd/server.key") or die $!;
	my @pw = getpwnam('pgslab_pg');
	chown($pw[2], $pw[3], "$dd/server.crt", "$dd/server.key") if $> == 0 && @pw;
	chmod 0600, "$dd/server.key";
	$node->append_conf('postgresql.conf', "ssl = on\n");
}
$node->start;

my $mport = PgSlab::Test::Cluster::get_free_port();
my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p083',
	settings => { client_tls_sslmode => 'prefer', client_tls_key_file => $c->{server_key},
		client_tls_cert_file => $c->{server_crt}, server_tls_sslmode => 'require',
		pool_mode => 'session', metrics_listen => "127.0.0.1:$mport" });
$proxy->start;

# The console over the Unix socket: no TLS, so it counts nowhere.
sub console { return $proxy->admin_hash($_[0], host => $proxy->socket_dir) }

sub tls_rows { return { map { $_->{side} => $_ } console('SHOW TLS') } }

sub scrape { return $proxy->metrics }

sub prom
{
	my ($body, $name, $side) = @_;
	return $body =~ /^\Q$name\E\{side="\Q$side\E"\} (\d+)$/m ? $1 : undef;
}

my $t = tls_rows();
is_deeply([ map { [ @{ $t->{$_} }{qw(side sslmode protocols handshakes handshake_failures connections)} ] }
		qw(client server) ],
	[ [ 'client', 'prefer', 'secure', 0, 0, 0 ], [ 'server', 'require', 'secure', 0, 0, 0 ] ],
	'SHOW TLS at start: modes, protocols, nothing counted');

# three TLS logins, one after another (session mode: one server connection)
for my $i (1 .. 3) {
	my ($rc, $out, $err) = $proxy->psql('postgres',
		'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', params => { sslmode => 'require' });
	ok($rc == 0 && $out =~ /^t$/m, "TLS login $i, TLS to the server too") or diag($err);
}
# a plain login counts nowhere on the client side
my ($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'disable' });
is($rc, 0, 'a plain login') or diag($err);

# garbage right after 'S': one client-side failure
{
	my $s = raw_connect('127.0.0.1', $proxy->port);
	raw_send($s, pack('NN', 8, 80877103));
	is(raw_read_n($s, 1, time + 5), 'S', "SSLRequest answered 'S'");
	syswrite($s, "\x16\x03\x01\x00\x05garbage-that-is-no-ClientHello\r\n");
	my $closed = 0;
	my $t0 = time;
	while (time - $t0 < 10) {
		my $rin = '';
		vec($rin, fileno($s), 1) = 1;
		next unless select(my $rout = $rin, undef, undef, 0.2);
		my $n = sysread($s, my $chunk, 4096);
		if (!$n) {
			$closed = 1;
			last;
		}
	}
	ok($closed, 'garbage handshake: connection closed');
	close $s;
}

# one TLS client stays connected
my $keep = $proxy->connect_dbi('postgres', params => { sslmode => 'require' });
my ($one) = $keep->selectrow_array('SELECT 1');
is($one, 1, 'a TLS client stays connected');

my @sv = grep { $_->{database} eq 'postgres' } console('SHOW SERVERS');
my ($pool) = grep { $_->{database} eq 'postgres' } console('SHOW POOLS');
my $nsv = scalar(@sv);
ok($nsv >= 1, "$nsv server connection(s) open");
$t = tls_rows();
is_deeply([ @{ $t->{client} }{qw(handshakes handshake_failures connections)} ], [ 4, 1, 1 ],
	'SHOW TLS client: 4 handshakes (3 psql + the kept one), 1 failure (garbage), 1 open');
is_deeply([ @{ $t->{server} }{qw(handshakes handshake_failures connections)} ], [ $nsv, 0, $nsv ],
	"SHOW TLS server: one handshake per server connection opened ($nsv), none failed, all open");

my $body = scrape();
is_deeply([ map { prom($body, $_->[0], $_->[1]) } [ 'pgslab_tls_handshakes_total', 'client' ],
		[ 'pgslab_tls_handshake_failures_total', 'client' ], [ 'pgslab_tls_connections', 'client' ],
		[ 'pgslab_tls_handshakes_total', 'server' ], [ 'pgslab_tls_handshake_failures_total', 'server' ],
		[ 'pgslab_tls_connections', 'server' ] ],
	[ 4, 1, 1, $nsv, 0, $nsv ], '/metrics: the same figures, by side');
my ($logins) = $body =~ /^pgslab_pool_server_logins_total\{database="postgres",user="[^"]*"\} (\d+)$/m;
is($logins, $nsv, 'server handshakes = server logins');

# the tls column: PgBouncer's protocol/cipher/ECDH=<curve>
my ($cl) = grep { $_->{database} eq 'postgres' && $_->{tls} ne '' } console('SHOW CLIENTS');
like($cl ? $cl->{tls} : '', qr{^TLSv1\.3/TLS_AES_256_GCM_SHA384/ECDH=X25519$},
	'SHOW CLIENTS tls: TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519');
@sv = grep { $_->{database} eq 'postgres' } console('SHOW SERVERS');
# PostgreSQL offers only its ssl_ecdh_curve (default prime256v1)
is(join(",", map { $_->{tls} } @sv), join(",", ("TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=prime256v1") x @sv),
	'SHOW SERVERS tls: the same format, the curve PostgreSQL chose (ssl_ecdh_curve)');

$keep->disconnect;
# the kept client's close is seen when its socket closes
my $open = 1;
for (1 .. 50) {
	$open = tls_rows()->{client}{connections};
	last if $open == 0;
	select(undef, undef, undef, 0.1);
}
is($open, 0, 'SHOW TLS client connections back to 0 after the disconnect');
is($proxy->stop, 0, 'pgslab exits cleanly');
done_testing();
