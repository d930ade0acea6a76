# 081_tls_modes.pl -- issue 13: every libpq sslmode against every client_tls_sslmode (switched by
# RELOAD while a TLS client stays connected), through psql; what fails says why.

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

$keep->disconnect;
is($proxy->stop, 0, 'pgslab exits cleanly');
done_testing();
