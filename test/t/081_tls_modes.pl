# 081_tls_modes.pl -- issue 13: every libpq sslmode against every client_tls_sslmode (switched by
# RELOAD while a TLS client stays connected), through psql; what fails says why.  Then the
# same switched by the console's SET, which takes effect at once (client and server side).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::TLS qw(make_certs);

my $certdir = PgSlab::Test::Cluster::make_temp_dir('pgslab_tls_modes');
my $c = make_certs($certdir);
my $node = PgSlab::Test::Cluster->new(name => 'c081');
$node->start;

my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p081',
	settings => { client_tls_sslmode => 'prefer', client_tls_key_file => $c->{server_key},
		client_tls_cert_file => $c->{server_crt}, client_tls_ca_file => $c->{ca},
		server_tls_sslmode => 'disable', pool_mode => 'session' });
$proxy->start;
my $keep = $proxy->connect_dbi('postgres', params => { sslmode => 'require' });

# What a psql with <sslmode> gets: 'ok' or the error.
sub attempt
{
	my ($sslmode) = @_;
	my ($rc, $out, $err) = $proxy->psql('postgres', 'SHOW ssl_library', params => { sslmode => $sslmode,
		sslrootcert => $c->{ca}, sslcert => $c->{client_crt}, sslkey => $c->{client_key} });
	return $rc ? "error: $err" : 'ok';
}

# pgslab mode => { libpq mode => expected (ok, or a regex of the error) }
my @matrix = (
	[ disable => { disable => 'ok', allow => 'ok', prefer => 'ok',
		require => qr/server does not support SSL/, 'verify-full' => qr/server does not support SSL/ } ],
	[ allow => { disable => 'ok', allow => 'ok', prefer => 'ok', require => 'ok', 'verify-full' => 'ok' } ],
	[ prefer => { disable => 'ok', allow => 'ok', prefer => 'ok', require => 'ok', 'verify-full' => 'ok' } ],
	[ require => { disable => qr/SSL required/, allow => 'ok', prefer => 'ok', require => 'ok',
		'verify-full' => 'ok' } ],
	[ 'verify-full' => { disable => qr/SSL required/, allow => 'ok', prefer => 'ok', require => 'ok',
		'verify-full' => 'ok' } ],
);
for my $row (@matrix) {
	my ($mode, $want) = @$row;
	$proxy->set(client_tls_sslmode => $mode);
	$proxy->reload;
	sleep 0.5;
	for my $lib (sort keys %$want) {
		my $got = attempt($lib);
		if (ref $want->{$lib}) {
			like($got, $want->{$lib}, "client_tls_sslmode=$mode, libpq sslmode=$lib: refused");
		} else {
			is($got, 'ok', "client_tls_sslmode=$mode, libpq sslmode=$lib: connects");
		}
	}
	my ($v) = eval { $keep->selectrow_array('SELECT 5') };
	is($v, 5, "after RELOAD to $mode the TLS client connected first still works");
}

# Without a client certificate, verify-ca refuses even a TLS client.
$proxy->set(client_tls_sslmode => 'verify-ca');
$proxy->reload;
sleep 0.5;
my ($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'require' });
isnt($rc, 0, 'client_tls_sslmode=verify-ca: a TLS client without a certificate is refused');

# A key that does not load makes the reload fail and keeps the old files.
$proxy->set(client_tls_key_file => "$certdir/missing.key");
$proxy->reload;
ok($proxy->wait_for_log(qr/reload failed.*missing\.key/), 'RELOAD with a missing key file fails and says so');
($rc, $out, $err) = $proxy->psql('postgres', 'SELECT 1', params => { sslmode => 'require',
	sslcert => $c->{client_crt}, sslkey => $c->{client_key} });
is($rc, 0, '... and the TLS settings in use stay') or diag($err);

# SET over the console takes effect at once, as in PgBouncer (no RELOAD): new
# contexts for clients, and the servers of the old server-side settings go.
$proxy->set(client_tls_key_file => $c->{server_key}, client_tls_sslmode => 'prefer');
$proxy->reload;
sleep 0.5;
is(attempt('disable'), 'ok', 'RELOAD: the key file is back, prefer');
$proxy->admin("SET client_tls_sslmode = 'disable'");
like(attempt('require'), qr/server does not support SSL/, 'SET client_tls_sslmode = disable: TLS refused at once');
$proxy->admin("SET client_tls_sslmode = 'require'");
like(attempt('disable'), qr/SSL required/, 'SET client_tls_sslmode = require: a plain startup refused at once');
is(attempt('require'), 'ok', '... and a TLS client connects');
ok($proxy->wait_for_log(qr/login attempt: db=postgres user=\S+ tls=TLSv1\.[23]\/\S+ replication=no/),
	'the login line names the TLS version and cipher, as PgBouncer');

# A setting whose contexts cannot be made is stored with a notice, and the
# running contexts stay (a new key and certificate take two SETs).
my ($src, $sout, $serr) = $proxy->psql('pgslab', "SET client_tls13_ciphers = 'unknown'",
	user => $proxy->admin_user, password => $proxy->{admin_password});
is($src, 0, 'SET client_tls13_ciphers = unknown succeeds');
like($serr, qr/NOTICE:\s+TLS settings could not be applied, still using old configuration/,
	'... with PgBouncer\'s notice');
ok($proxy->wait_for_log(qr/failed to set the TLSv1\.3 cipher suites/), '... and the reason in the log');
is(attempt('require'), 'ok', '... and TLS clients still connect with the old contexts');
$proxy->admin("SET client_tls13_ciphers = 'TLS_AES_256_GCM_SHA384'");
is(attempt('require'), 'ok', 'a good value after it applies');

# Server side: an idle server of the old settings closes at once.
$proxy->safe_psql('postgres', 'SELECT 1', params => { sslmode => 'require' });
$proxy->admin("SET server_tls_sslmode = 'prefer'");
ok($proxy->wait_for_log(qr/closing because: database configuration changed/),
	'SET server_tls_sslmode: the idle server of the old setting closes');
is(attempt('require'), 'ok', '... and a new one serves the next client');

$keep->disconnect;
ok($proxy->wait_for_log(qr/closing because: obsolete connection/),
	'the server busy during the SET closes when released (PgBouncer\'s words)');

is($proxy->stop, 0, 'pgslab exits cleanly');
done_testing();
