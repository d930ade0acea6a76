package PgSlab::Test::TLS;

# Throw-away certificates for TLS tests, made with the openssl CLI: a CA,
# a server certificate for CN=localhost with SANs localhost and 127.0.0.1,
# a client certificate, and a second CA that signs nothing the tests trust.

use strict;
use warnings;

use Carp;
use Exporter 'import';
use PgSlab::Test::Cluster;

our @EXPORT_OK = qw(make_certs server_cert);

sub _openssl
{
	my ($dir, @args) = @_;
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ 'openssl', @args ],
		timeout => 60, cwd => $dir);
	croak "openssl @args failed: $err" if $rc;
	return $out;
}

sub _key
{
	my ($dir, $name) = @_;
	_openssl($dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
		'-out', "$name.key");
	chmod 0600, "$dir/$name.key";
}

sub _ca
{
	my ($dir, $name, $cn) = @_;
	_key($dir, $name);
	_openssl($dir, 'req', '-x509', '-new', '-key', "$name.key", '-sha256', '-days', '2',
		'-subj', "/CN=$cn", '-addext', 'basicConstraints=critical,CA:TRUE',
		'-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', "$name.crt");
}

=item server_cert($dir, $name, $cn, $san, $ca)

Makes F<$name.key> and F<$name.crt> in C<$dir>, signed by CA C<$ca>
(F<$ca.crt>/F<$ca.key>), with subjectAltName C<$san> (C<undef> for none).

=cut

sub server_cert
{
	my ($dir, $name, $cn, $san, $ca) = @_;
	_key($dir, $name);
	_openssl($dir, 'req', '-new', '-key', "$name.key", '-subj', "/CN=$cn", '-out', "$name.csr");
	my $ext = "$dir/$name.ext";
	open(my $fh, '>', $ext) or croak "$ext: $!";
	print $fh "basicConstraints=CA:FALSE\n";
	print $fh "subjectAltName=$san\n" if defined $san;
	close $fh;
	_openssl($dir, 'x509', '-req', '-in', "$name.csr", '-CA', "$ca.crt", '-CAkey', "$ca.key",
		'-CAcreateserial', '-days', '2', '-sha256', '-extfile', $ext, '-out', "$name.crt");
	return ("$dir/$name.crt", "$dir/$name.key");
}

=item make_certs($dir)

Returns a hashref of paths: C<ca>, C<server_crt>, C<server_key>,
C<client_crt>, C<client_key> (CN=app), C<other_ca> (an untrusted CA).

=cut

sub make_certs
{
	my ($dir) = @_;
	_ca($dir, 'ca', 'pgslab test CA');
	_ca($dir, 'other_ca', 'pgslab untrusted CA');
	server_cert($dir, 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1', 'ca');
	server_cert($dir, 'client', 'app', undef, 'ca');
	return {
		ca         => "$dir/ca.crt",
		other_ca   => "$dir/other_ca.crt",
		server_crt => "$dir/server.crt",
		server_key => "$dir/server.key",
		client_crt => "$dir/client.crt",
		client_key => "$dir/client.key",
	};
}

1;
